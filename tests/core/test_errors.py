"""Tests of kenning_hil.core.errors' text helpers: every face and every folded framework error
uses one_line, every OSError message os_reason."""

import pytest

from kenning_hil.core.errors import ConfigurationError, one_line, os_reason


def test_one_line_folds_white_space_and_caps_the_length():
    error = ValueError("first line\n   second\tline  \n\n third")
    assert one_line(error) == "first line second line third"
    assert one_line(error, 10) == "first line…"
    assert one_line(error, 100) == "first line second line third"
    assert one_line(ConfigurationError("")) == "ConfigurationError"  # never an empty message
    assert one_line("  already\ntext ") == "already text"


def test_one_line_can_keep_only_the_first_line():
    """A framework's error whose later lines are its own dump (ONNX's checker, ONNX Runtime)."""
    error = RuntimeError("\n  [ONNXRuntimeError] : 10 : INVALID_GRAPH  \nnode 3\n  dump")
    assert one_line(error, first_line=True) == "[ONNXRuntimeError] : 10 : INVALID_GRAPH"
    assert one_line(RuntimeError(" \n "), first_line=True) == "RuntimeError"


def test_os_reason_names_the_reason_and_the_file(tmp_path):
    missing = tmp_path / "nope" / "file.json"
    with pytest.raises(OSError) as info:
        missing.read_text()
    assert os_reason(info.value) == f"No such file or directory: {missing}"
    assert os_reason(OSError("socket closed")) == "socket closed"


def test_os_reason_of_an_error_caught_with_an_oserror(tmp_path):
    """A decode error caught beside the OSError of the same read is said as one_line."""
    binary = tmp_path / "spec.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UnicodeDecodeError) as info:
        binary.read_text(encoding="utf-8")
    assert os_reason(info.value) == one_line(info.value)
    assert "can't decode byte 0xff" in os_reason(info.value)

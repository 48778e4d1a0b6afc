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


def test_os_reason_names_the_reason_and_the_file(tmp_path):
    missing = tmp_path / "nope" / "file.json"
    with pytest.raises(OSError) as info:
        missing.read_text()
    assert os_reason(info.value) == f"No such file or directory: {missing}"
    assert os_reason(OSError("socket closed")) == "socket closed"

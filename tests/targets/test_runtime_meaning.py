"""What a target's `runtime` names is decided by its kind up front: a Runtime class for a
host target, firmware for a QEMU board, and for tcp/serial boards a class exactly when the
name is a registered runtime or a dotted path (a `kenning-hil serve` at the other end)."""

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.runtime import Runtime
from kenning_hil.run.harness import client_runtime
from kenning_hil.runtimes.echo import EchoRuntime
from kenning_hil.targets import Target
from kenning_hil.targets.description import parse_target
from kenning_hil.targets.kinds import RuntimeMeaning, get_kind_class


def target(**fields) -> Target:
    return Target(parse_target(fields, "board.yaml", "board"))


def test_each_kind_says_what_its_runtime_names():
    assert get_kind_class("host").runtime_meaning is RuntimeMeaning.PYTHON_CLASS
    assert get_kind_class("qemu").runtime_meaning is RuntimeMeaning.FIRMWARE
    assert get_kind_class("tcp").runtime_meaning is RuntimeMeaning.BY_NAME
    assert get_kind_class("serial").runtime_meaning is RuntimeMeaning.BY_NAME


@pytest.mark.parametrize("fields", [
    {"kind": "host", "runtime": "echo"},
    {"kind": "tcp", "address": "127.0.0.1:1", "runtime": "echo"},
    {"kind": "serial", "port": "/dev/ttyACM0", "runtime": "kenning_hil.runtimes.echo.EchoRuntime"},
])
def test_a_runtime_class_drives_the_target_from_the_host(fields):
    board = target(**fields)
    assert board.runtime_class() is EchoRuntime
    assert board.accepted_formats() == EchoRuntime.input_formats
    assert type(client_runtime(board, None, Runtime)) is EchoRuntime


@pytest.mark.parametrize("fields", [
    {"kind": "tcp", "address": "127.0.0.1:1", "runtime": "firmware-int8"},
    {"kind": "serial", "port": "/dev/ttyACM0", "runtime": "firmware-int8"},
    # a QEMU board runs firmware even when the name is also a registered runtime
    {"kind": "qemu", "machine": "mps2-an386", "runtime": "echo"},
])
def test_firmware_is_driven_by_the_base_runtime(fields):
    board = target(**fields, formats=["tflite"])
    assert board.runtime_class() is None
    assert board.accepted_formats() == ["tflite"]
    assert type(client_runtime(board, None, Runtime)) is Runtime


def test_a_host_runtime_that_names_nothing_is_unavailable_with_the_reason():
    board = target(kind="host", runtime="no-such-runtime")
    available, reason = board.availability()
    assert not available
    assert reason.startswith("unknown runtime type 'no-such-runtime' (known: ")
    with pytest.raises(ConfigurationError, match="unknown runtime type 'no-such-runtime'"):
        client_runtime(board, None, Runtime)


def test_a_dotted_path_on_a_board_is_a_class_and_must_import():
    board = target(kind="tcp", address="127.0.0.1:1", runtime="no_such_package.BoardRuntime")
    available, reason = board.availability()
    assert not available
    assert "no_such_package" in reason and "\n" not in reason
    with pytest.raises(ConfigurationError, match="no_such_package"):
        client_runtime(board, None, Runtime)


def test_a_runtime_name_must_name_a_runtime_class():
    board = target(kind="host", runtime="kenning_hil.datasets.digits.DigitsDataset")
    available, reason = board.availability()
    assert (available, reason) == (False, "runtime type 'kenning_hil.datasets.digits."
                                          "DigitsDataset' is not a Runtime")

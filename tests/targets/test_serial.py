"""`kind: serial` end to end over a real pseudo-terminal pair (socat): a `kenning-hil serve
--serial` on one end, the target on the other; flashing once per board and firmware, reset
at every session, a model run through the UART framing."""

import shutil
import time
from pathlib import Path

import pytest

from kenning_hil.run.compile_cache import CompileCache
from kenning_hil.run.harness import Harness
from kenning_hil.targets import SessionManager, Target
from kenning_hil.targets.description import parse_target
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")

MODEL = Path(__file__).resolve().parents[2] / "models" / "digits" / "digits-mlp.onnx"


@pytest.fixture
def serial_server(pty_pair, tmp_path):
    log = tmp_path / "serve.log"
    proc = start_logged(
        server_command("--runtime", "onnxruntime", "--serial", pty_pair[0]), log
    )
    wait_for_line(proc, log, r"listening on", 20, "serial server")
    yield pty_pair[1]
    stop(proc)


def test_serial_board_flashes_once_resets_each_session_and_runs(serial_server, tmp_path):
    firmware = tmp_path / "firmware.bin"
    firmware.write_bytes(b"v1")
    actions = tmp_path / "actions.txt"
    board = Target(parse_target({
        "kind": "serial", "port": serial_server, "runtime": "onnxruntime", "formats": ["onnx"],
        "firmware": str(firmware),
        "flash": f"sh -c 'echo flash {{firmware}} {{port}} >> {actions}'",
        "reset": f"sh -c 'echo reset {{instance}} >> {actions}'",
        "timeouts": {"request": 10},
    }, "board.yaml", "board"))
    assert board.availability() == (True, "1/1 ports present")
    # two test processes' worth of sessions: the lease is not kept, so each use reconnects
    sessions = SessionManager(tmp_path / "work", tmp_path / "locks", 20, workers=2)
    harness = Harness(sessions, CompileCache(tmp_path / "cache"), tmp_path / "results")
    request = harness.request(MODEL, "digits", samples=20)
    first = harness.run(board, request, "serial::first")
    second = harness.run(board, request, "serial::second")
    for result in (first, second):
        assert result.samples == 20 and result.accuracy >= 0.9
        assert result.latency.source == "target_inference_step"
    assert actions.read_text().splitlines() == [
        f"flash {firmware} {serial_server}", "reset 0", "reset 0"]
    # a new firmware is flashed again, once
    firmware.write_bytes(b"v2")
    time.sleep(0.01)
    harness.run(board, request, "serial::third")
    assert actions.read_text().splitlines()[-2:] == [
        f"flash {firmware} {serial_server}", "reset 0"]
    sessions.close_all()


def test_failing_flash_names_the_board_and_command(pty_pair, tmp_path):
    board = Target(parse_target({
        "kind": "serial", "port": pty_pair[1], "formats": ["onnx"],
        "flash": "sh -c 'echo no probe found >&2; exit 3'",
    }, "board.yaml", "board"))
    sessions = SessionManager(tmp_path / "work", tmp_path / "locks", 5)
    with pytest.raises(Exception) as info, sessions.use(board):
        pass
    assert str(info.value).startswith(
        f"target 'board' instance {pty_pair[1]}: flash command failed with code 3: "
        f"no probe found (log ")


def test_unavailable_when_a_command_tool_or_the_firmware_is_missing(pty_pair, tmp_path):
    """availability names what is missing: a flash or reset tool not on PATH, else the
    firmware (relative to the description's file) absent."""
    def board(**keys) -> Target:
        return Target(parse_target({"kind": "serial", "port": pty_pair[1], "formats": ["onnx"],
                                    **keys}, str(tmp_path / "board.yaml"), "board"))

    no_tool = board(reset="khil-no-such-reset-tool {port}")
    assert no_tool.availability() == (
        False, "reset tool 'khil-no-such-reset-tool' not found on PATH")
    no_firmware = board(firmware="fw.bin", flash="true {firmware}")
    assert no_firmware.availability() == (False, f"firmware {tmp_path / 'fw.bin'} not found")
    (tmp_path / "fw.bin").write_bytes(b"v1")
    assert no_firmware.availability() == (True, "1/1 ports present")

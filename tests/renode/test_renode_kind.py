"""The `renode` target kind against the Renode stand-in (tests/renode/standin: Renode's
monitor over TCP, QEMU netduinoplus2 behind it): the digits int8 model end to end and
bit-exact through monitor control, the server-socket terminal, the protocol session and
teardown; the .resc path; Renode's failures (a refused LoadELF, an unknown platform, a
monitor that stops answering, Renode exiting mid-session) each a clear error within the
timeout; no orphans when the worker dies; and availability without Renode."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from kenning_hil.core.errors import KenningHILError
from kenning_hil.run.outcome import infrastructure_category
from kenning_hil.sim.renode import EXECUTED_INSTRUCTIONS
from kenning_hil.targets.errors import TargetError
from tests.sim.test_qemu_target import Reference, run_on_board

from .conftest import REPO, pid_alive, renode_target

pytestmark = pytest.mark.sim
pytest_plugins = ["pytester"]

RESC = REPO / "renode" / "stm32f4_discovery.resc"


@pytest.mark.parametrize("name, stride, board", [
    ("renode-stm32f4", 18, "stm32f4-discovery"),  # 100 digits
    ("renode-stm32f2", 180, "stm32f205"),  # 10: the second board, kept cheap
])
def test_digits_int8_end_to_end_bit_exact_with_instruction_counts(
        standin, tmp_path, sessions, digits_int8, name, stride, board):
    """Digits through the renode kind give LiteRT reference kernels' int8 outputs, byte for
    byte; each inference has the firmware's instruction count and Renode's counter over the
    PROCESS request, which holds the inference and a little more."""
    from kenning_hil.datasets.digits import PIXEL_MAX, load_digits_arrays

    reference = Reference(digits_int8)
    pixels, _ = load_digits_arrays()
    inputs = [reference.quantize(p.astype(np.float32) / PIXEL_MAX) for p in pixels[::stride]]
    expected = [reference(x) for x in inputs]
    target = renode_target(tmp_path, name)
    with sessions.use(target) as session:
        renode = session.handle
        assert session.info["board"] == board
        outputs = run_on_board(session, digits_int8, inputs)
        stats = session.protocol.download_statistics()
        pid = renode.pid
    got = [np.frombuffer(o, np.int8).reshape(e.shape) for o, e in zip(outputs, expected)]
    differing = [i for i, (g, e) in enumerate(zip(got, expected)) if not np.array_equal(g, e)]
    assert not differing, f"outputs of {len(differing)} of {len(inputs)} differ"
    firmware = stats["target_inference_instructions"]
    executed = stats[EXECUTED_INSTRUCTIONS]
    assert len(firmware) == len(executed) == len(inputs)
    for counted, around in zip(firmware, executed):
        # the firmware times the interpreter; the CPU's counter adds the request's frame
        assert 1_000 < counted < around < counted + 20_000, (counted, around)
    sessions.close_all()
    assert not pid_alive(pid)


def test_a_resc_script_sets_the_board_up(standin, tmp_path, sessions):
    target = renode_target(tmp_path, platform=None, uart=None, script=str(RESC))
    assert target.kind.setup_commands(REPO / "fw.elf", 4321)[:3] == [
        f"$elf=@{REPO}/fw.elf", "$uart_port=4321", f"include @{RESC}"]
    with sessions.use(target) as session:
        assert session.handle.executed_instructions() > 1_000  # booted, waiting for frames


def test_a_failing_loadelf_says_renodes_words_and_the_command(standin, tmp_path, sessions):
    not_elf = tmp_path / "firmware.elf"
    not_elf.write_text("not an ELF\n")
    target = renode_target(tmp_path, firmware=str(not_elf))
    started = time.monotonic()
    with pytest.raises(TargetError) as failed:
        with sessions.use(target):
            pass
    assert time.monotonic() - started < 30
    assert str(failed.value) == (
        f"Renode of target 'renode-stm32f4' instance 0 (pid {_pid(failed.value)}): "
        f"'sysbus LoadELF @{not_elf}' failed: Error while loading ELF {not_elf}: the file is "
        f"not an ELF file")


def _pid(error: Exception) -> str:
    return str(error).split("(pid ", 1)[1].split(")", 1)[0]


@pytest.mark.parametrize("repl_text, words", [
    ("cpu: CPU.CortexM @ sysbus\n    cpuType: \"cortex-m4\"\n"
     "usart1: UART.NoSuchUART @ sysbus <0x40011000, +0x100>\n",
     "Error E05: Could not resolve type 'UART.NoSuchUART' of 'usart1'"),
    ("cpu: CPU.CortexM @ sysbus\n    cpuType: \"cortex-m33\"\n"
     "usart1: UART.STM32_UART @ sysbus <0x40011000, +0x100>\n",
     "stand-in: no QEMU machine is equivalent to platform"),
])
def test_an_unknown_platform_fails_at_loadplatformdescription(
        standin, tmp_path, sessions, repl_text, words):
    repl = tmp_path / "board.repl"
    repl.write_text(repl_text)
    target = renode_target(tmp_path, platform=str(repl))
    with pytest.raises(TargetError, match=r"'machine LoadPlatformDescription @\S+board.repl' "
                       r"failed: " + words.replace("(", r"\(").replace(".", r"\.")):
        with sessions.use(target):
            pass


def test_a_monitor_that_stops_answering_is_an_error_within_the_timeout(
        standin, tmp_path, sessions, monkeypatch):
    monkeypatch.setenv("RENODE_STANDIN_FAIL", "hang:start")
    target = renode_target(tmp_path, timeouts={"boot": 30, "request": 2})
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"instance 0 \(pid \d+\): the monitor did not answer "
                       r"'start' in time$"):
        with sessions.use(target):
            pass
    # the request timeout, the stand-in's start and the teardown (quit unanswered, SIGTERM)
    assert time.monotonic() - started < 15


def test_renode_exiting_mid_session_names_renode_and_its_exit(
        standin, tmp_path, sessions, monkeypatch, digits_int8):
    monkeypatch.setenv("RENODE_STANDIN_FAIL", "exit-after:3000")  # during the model upload
    target = renode_target(tmp_path, timeouts={"boot": 30, "request": 10})
    started = time.monotonic()
    with pytest.raises(KenningHILError) as failed:
        with sessions.use(target) as session:
            run_on_board(session, digits_int8, [])
    assert time.monotonic() - started < 30
    message = str(failed.value)
    assert "target 'renode-stm32f4' instance 0 (Renode pid" in message
    assert "Renode exited with code 3 (Renode output: " in message
    assert "stand-in: exiting mid-session on demand" in message
    assert infrastructure_category(failed.value) == "emulator"  # an E in pytest, not an F


DIES = """
import os, sys, time
from pathlib import Path
from kenning_hil.targets import SessionManager, Target, load_target_file
manager = SessionManager(Path(sys.argv[2]), lock_dir=Path(sys.argv[3]))
with manager.use(Target(load_target_file(Path(sys.argv[1])))) as session:
    print(session.handle.pid, flush=True)
    time.sleep(600)
"""


def test_a_killed_worker_takes_renode_and_its_board_along(standin, tmp_path):
    import psutil

    target = renode_target(tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-c", DIES, target.description.source, str(tmp_path / "w"),
         str(tmp_path / "l")], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        renode_pid = int(worker.stdout.readline())
        family = [renode_pid] + [p.pid for p in psutil.Process(renode_pid).children(True)]
        assert len(family) >= 2  # Renode (the stand-in) and its QEMU
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in family if pid_alive(p)]
    finally:
        worker.kill()


# ------------------------------------------------------------------------------ availability


def test_without_renode_the_target_is_unavailable_and_its_tests_skip(
        tmp_path, monkeypatch, pytester):
    import os

    path = os.environ["PATH"]
    monkeypatch.delenv("RENODE_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    target = renode_target(tmp_path)
    assert target.availability() == (False, "renode not found on PATH; set RENODE_BIN")
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("RENODE_BIN", "/nonexistent/renode")
    assert target.availability() == (
        False, "/nonexistent/renode not found (renode not found on PATH; set RENODE_BIN)")
    pytester.makeini(f"[pytest]\nhil_target_dir = {REPO / 'targets'}\n"
                     f"hil_lock_dir = {tmp_path / 'locks'}\n")
    pytester.makepyfile(test_board="def test_board(hil, target):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--target=renode-stm32f4",
                                           "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*target 'renode-stm32f4' is not available here: "
                                 "/nonexistent/renode not found*"])
    listing = subprocess.run(
        [sys.executable, "-m", "kenning_hil.cli", "targets", "--target-dir", str(REPO / "targets")],
        capture_output=True, text=True, cwd=tmp_path)
    assert "renode-stm32f4" in listing.stdout
    assert "renode not found on PATH; set RENODE_BIN" in listing.stdout


# ------------------------------------------------------------------------------ nightly suite


def test_nightly_suite_on_renode_records_then_meets_its_baseline(standin, pytester, tmp_path):
    """`pytest -m nightly suites/nightly.yaml --target=renode-stm32f4`, the way the nightly
    job runs it: first recording the baseline, then compared with it; latency in the
    firmware's instructions, Renode's counter beside it."""
    import json
    import shutil

    pytester.makeini(f"[pytest]\nhil_target_dir = {REPO / 'targets'}\n"
                     f"hil_lock_dir = {tmp_path / 'locks'}\nhil_report = results\n"
                     f"hil_compile_cache = compile-cache\n")
    shutil.copy(REPO / "suites" / "nightly.yaml", pytester.path / "nightly.yaml")
    (pytester.path / "models").symlink_to(REPO / "models")
    args = ["-p", "no:cacheprovider", "-m", "nightly", "nightly.yaml",
            "--target=renode-stm32f4", "--samples", "20", "--baseline", "baselines"]
    first = pytester.runpytest_subprocess(*args, "--update-baseline", timeout=300)
    first.assert_outcomes(passed=1)
    assert list((pytester.path / "baselines").rglob("*.json"))
    again = pytester.runpytest_subprocess(*args, timeout=300)
    again.assert_outcomes(passed=1)
    [record] = [json.loads(p.read_text())
                for p in (pytester.path / "results" / "tests").glob("*.json")]
    assert record["target"] == "renode-stm32f4" and record["samples"] == 20
    assert record["metrics"]["accuracy"] >= 0.95
    latency = record["latency"]
    assert latency["unit"] == "instructions"
    assert latency["source"] == "target_inference_instructions"
    assert len(record["measurements"][EXECUTED_INSTRUCTIONS]) == 20
    unselected = pytester.runpytest_subprocess(*args[:2], "-m", "not nightly", *args[4:])
    unselected.assert_outcomes()

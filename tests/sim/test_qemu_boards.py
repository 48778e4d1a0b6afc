"""The firmware boots on both QEMU boards and answers over the emulated UART; QemuInstance
reports clear errors and leaves no QEMU process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from kenning_hil.core.protocol import Flag
from kenning_hil.sim.firmware_build import FIRMWARE_DIR
from kenning_hil.sim.qemu import QemuError, QemuInstance

from .conftest import require_simulation

pytestmark = pytest.mark.sim


def qemu_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "qemu" in p.name()]


def test_board_answers_connect_ping(board, client):
    answer = client.connect()
    assert answer.success
    assert answer.flags & Flag.IS_ZEPHYR and not answer.flags & Flag.IS_KENNING
    assert board.url.startswith("socket://127.0.0.1:")
    assert "-icount" in board.command() and "shift=0" in board.command()


def test_pty_serial_backend(firmware_elf):
    from .frame_client import FrameClient

    with QemuInstance("mps2-an386", firmware_elf("mps2-an386"), serial="pty") as board:
        assert board.url.startswith("/dev/pts/")
        client = FrameClient(board.url)
        try:
            assert client.connect().success
        finally:
            client.close()


def test_missing_elf_names_machine_and_build_command(tmp_path):
    require_simulation()
    with pytest.raises(QemuError, match="mps2-an386 does not exist; build it with 'make -C "
                                        "firmware BOARD=mps2-an386'"):
        QemuInstance("mps2-an386", tmp_path / "none.elf").start()


def test_missing_qemu_names_the_package(firmware_elf):
    instance = QemuInstance("mps2-an386", firmware_elf("mps2-an386"),
                            qemu_binary="qemu-system-nonexistent")
    with pytest.raises(QemuError, match="install the Debian package qemu-system-arm"):
        instance.start()


def test_qemu_exiting_early_is_reported_with_its_output(firmware_elf):
    instance = QemuInstance("no-such-machine", firmware_elf("mps2-an386"))
    with pytest.raises(QemuError) as error:
        instance.start()
    message = str(error.value)
    assert "QEMU no-such-machine running" in message and "exited with code 1" in message
    assert "unsupported machine type" in message  # QEMU's own words
    assert not qemu_children()


def test_stop_leaves_no_process(firmware_elf):
    instances = [QemuInstance(b, firmware_elf(b)).start() for b in ("mps2-an386", "mps3-an547")]
    pids = [i.pid for i in instances]
    assert all(psutil.pid_exists(pid) for pid in pids)
    for instance in instances:
        instance.stop()
        instance.stop()  # idempotent
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)
    assert not qemu_children()


def test_qemu_dies_with_the_python_process_that_started_it(firmware_elf):
    """PR_SET_PDEATHSIG: a killed test runner (SIGKILL: no atexit, no finally) leaves no QEMU."""
    elf = firmware_elf("mps2-an386")
    script = (
        "import sys, time\n"
        "from kenning_hil.sim.qemu import QemuInstance\n"
        f"q = QemuInstance('mps2-an386', {str(elf)!r}).start()\n"
        "print(q.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=FIRMWARE_DIR.parent)
    try:
        qemu_pid = int(runner.stdout.readline())
        assert psutil.pid_exists(qemu_pid)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        deadline = time.monotonic() + 5
        while psutil.pid_exists(qemu_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not psutil.pid_exists(qemu_pid)
    finally:
        runner.kill()
        runner.wait()

"""Progress of long work: a bar with rate and ETA on a real pseudo-terminal while a model is
uploaded to a QEMU board, one line per finished phase (and no carriage returns) when the
output is not a terminal, nothing with --no-progress; upload progress counts the bytes the
target has read, not those the host has written."""

import os
import select
import socket
import subprocess
import sys
import time

# numpy before pytester's first run: pytester drops modules imported during a test, numpy
# cannot be imported twice in a process, and the plugin's reporting imports it after each test
import numpy  # noqa: F401
import pytest

from kenning_hil.protocols.uart import SerialTransport
from kenning_hil.protocols.upload_progress import UploadWatch, wire_size
from kenning_hil.run.progress import BAR, LINES, OFF, Progress
from tests.skips import require_simulation

pytest_plugins = ["pytester"]

KWS = "mlperf_tiny/kws_ref_model.tflite"  # 53,936 B: about 7 s through QEMU's UART
UPLOAD_LINE = "upload kws to qemu-m4: 53.9 kB in "


def _kws_suite(project, models_dir) -> None:
    if not (models_dir / KWS).is_file():
        pytest.skip(f"MLPerf Tiny model {models_dir / KWS} not found")
    require_simulation("target qemu-m4")
    (project.path / "kws.yaml").write_text(
        f"models:\n  kws: {{model: {models_dir / KWS}, dataset: random, samples: 2}}\n")


def _pytest_command(project, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "kws.yaml",
            "--target=qemu-m4", *args]


def _run_on_pty(command: list[str], cwd, timeout: float = 300) -> str:
    """Runs `command` with a real pseudo-terminal as its stdin, stdout and stderr; returns
    everything it wrote there."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(command, cwd=cwd, stdin=terminal, stdout=terminal,
                               stderr=terminal, close_fds=True)
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: the process closed its terminal
                    break
                if not data:
                    break
                output += data
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(controller)
    return output.decode("utf-8", errors="replace")


@pytest.mark.slow  # boots QEMU, uploads 54 kB over its UART (~20 s)
def test_bar_on_a_terminal_during_a_qemu_model_upload(hil_project, models_dir):
    _kws_suite(hil_project, models_dir)
    out = _run_on_pty(_pytest_command(hil_project), hil_project.path)
    assert "1 passed" in out, out[-3000:]
    # tqdm redraws one line: the upload's states, each after a carriage return
    states = [part for part in out.split("\r") if part.startswith("upload kws to qemu-m4:")]
    percents = [int(state.split(":", 1)[1].split("%", 1)[0]) for state in states
                if "%|" in state]
    assert len(percents) >= 3, states
    assert percents == sorted(percents) and percents[-1] == 100, percents
    assert any(0 < p < 100 for p in percents), percents  # seen mid-upload, not only at the end
    assert any("53.9k" in state and "B/s" in state for state in states), states  # size, rate


@pytest.mark.slow  # boots QEMU, uploads 54 kB over its UART (~20 s)
def test_lines_without_carriage_returns_when_not_a_terminal(hil_project, models_dir):
    _kws_suite(hil_project, models_dir)
    done = subprocess.run(_pytest_command(hil_project), cwd=hil_project.path,
                          capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert "1 passed" in log, log[-3000:]
    assert "\r" not in log
    uploads = [line for line in log.splitlines() if line.startswith(UPLOAD_LINE)]
    assert len(uploads) == 1, log[-3000:]
    assert uploads[0].endswith(" kB/s)")  # "... 53.9 kB in 7.3 s (7.4 kB/s)"
    # the same run's table: the MLPerf Tiny columns of a board (report/footprint.py)
    header = next(line for line in log.splitlines() if line.startswith("test "))
    assert "arena peak" in header and "RAM (model + arena)" in header and "code" in header
    row = next(line for line in log.splitlines() if line.startswith("kws.yaml::kws-none"))
    assert " of 3.5 MiB (" in row and " of 4.0 MiB (" in row, row  # qemu-m4's memory


def test_no_progress_flag_and_ini_key(hil_project):
    """--no-progress and hil_progress = false turn it off; the fixture says what is in force."""
    hil_project.makepyfile(test_setting="""
        def test_setting(hil_progress, pytestconfig):
            print("hil_progress =", hil_progress)
    """)
    on = hil_project.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    on.stdout.fnmatch_lines(["*hil_progress = True"])
    off = hil_project.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--no-progress")
    off.stdout.fnmatch_lines(["*hil_progress = False"])
    ini = hil_project.path / "tox.ini"
    ini.write_text("[pytest]\nhil_progress = false\n")
    from_ini = hil_project.runpytest_subprocess("-p", "no:cacheprovider", "-s", "-c", str(ini))
    from_ini.stdout.fnmatch_lines(["*hil_progress = False"])
    ini.write_text("[pytest]\nhil_progress = maybe\n")
    bad = hil_project.runpytest_subprocess("-p", "no:cacheprovider", "-c", str(ini))
    bad.stderr.fnmatch_lines(["*invalid truth value 'maybe'*"])  # pytest's own ini check


def test_progress_modes_follow_the_stream(tmp_path):
    class Terminal:
        def __init__(self, tty):
            self.tty, self.text = tty, ""

        def isatty(self):
            return self.tty

        def write(self, text):
            self.text += text

        def flush(self):
            pass

    assert Progress.for_stream(Terminal(True)).mode == BAR
    assert Progress.for_stream(Terminal(True), log=True).mode == LINES  # an xdist worker
    assert Progress.for_stream(Terminal(False)).mode == LINES
    assert Progress.for_stream(Terminal(True), enabled=False).mode == OFF
    log = Terminal(False)
    progress = Progress.for_stream(log)
    with progress.phase("upload m to t", 2000) as phase:
        phase.update_to(1000)
    assert log.text == ""  # a phase shorter than MIN_LINE_SECONDS is not long work
    assert phase.line(2.0) == "upload m to t: 1.0 kB in 2.0 s (500 B/s)"
    assert phase.line(2.0, failed=True) == (
        "upload m to t: stopped after 1.0 kB of 2.0 kB in 2.0 s (500 B/s)")


def test_upload_progress_counts_what_the_reader_took(tmp_path):
    """All bytes are written at once (the kernel queues them); the progress moves only as
    the far end reads them: here a real TCP peer that reads half, then the rest."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    transport = SerialTransport(f"socket://127.0.0.1:{port}")
    peer, _ = server.accept()
    try:
        total = 40_000
        wire = wire_size(total, transport.max_frame_size)
        reports = []
        watch = UploadWatch(transport, total, lambda done, whole: reports.append(done))
        transport.send(b"\0" * wire)  # returns before anybody read a byte
        # until the peer's kernel acknowledges them, bytes count in both queues: wait for it
        deadline = time.monotonic() + 10
        while transport.unread() != wire and time.monotonic() < deadline:
            time.sleep(0.01)
        assert transport.unread() == wire
        assert watch.done() == 0
        taken = 0
        while taken < wire // 2:
            taken += len(peer.recv(wire // 2 - taken))
        assert watch.done() == pytest.approx(total / 2, abs=total * 0.01)
        while taken < wire:
            taken += len(peer.recv(wire - taken))
        assert transport.unread() == 0
        assert watch.done() == total
    finally:
        transport.close()
        peer.close()
        server.close()

"""A simulator process with a UART: what a QEMU board (sim/qemu.py) and a Renode board
(sim/renode.py) share. A subclass says how its simulator is started and when the board's
UART is up; `SimulatorProcess` runs the process with its output in a log file, explains an
exit from that log, and stops it.

No orphans: the simulator runs in its own process group, is sent SIGKILL by the kernel if the
Python process that started it dies (PR_SET_PDEATHSIG), and every instance still running at
interpreter exit is stopped by an atexit hook.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import ClassVar

from kenning_hil.core.errors import KenningHILError

_live_instances: weakref.WeakSet[SimulatorProcess] = weakref.WeakSet()
_live_lock = threading.Lock()

_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGKILL) -> list[str]:
    """A command prefix: the kernel sends `sig` to the child when the thread that started it
    exits (PR_SET_PDEATHSIG, set by util-linux's `setpriv`, which then execs the command in
    the same process). Elsewhere, or without setpriv: no prefix, no such guard.

    Not a preexec_fn: Python code between fork and exec forbids vfork, so a plain fork runs
    every library's fork handlers in the child. With TensorFlow loaded, gRPC's restarted its
    poller thread there, and closing the inherited descriptors before exec took its epoll fd:
    a target server died with SIGABRT ("epoll_wait error: Bad file descriptor") before it
    was ready; an earlier QEMU start died with SIGSEGV before exec."""
    if _SETPRIV is None:
        return []
    return [_SETPRIV, "--pdeathsig", signal.Signals(sig).name.removeprefix("SIG"), "--"]




class SimulatorProcess:
    """One simulated board's process: `start()` launches it and waits for its UART (`url`),
    `stop()` ends it; `log()` is what it printed. Subclasses give `command()`, `describe()`
    and the steps of `start()` (`_prepare`, `_come_up`)."""

    simulator: ClassVar[str] = "simulator"  # its name in messages: "QEMU", "Renode"
    error: ClassVar[type[KenningHILError]] = KenningHILError  # what this class raises

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._log_path: Path | None = None

    def describe(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    # -- the steps of start(), per simulator ---------------------------------------------------

    def _prepare(self) -> None:
        """Before launching: raises `error` when the simulator or what it runs is missing."""

    def _log_prefix(self) -> str:
        return f"{self.simulator.lower()}-"

    def _come_up(self) -> str:
        """Once launched: waits until the board's UART can be connected to; returns its url."""
        raise NotImplementedError

    def _ask_to_quit(self, process: subprocess.Popen, timeout: float) -> None:
        """Before SIGTERM in `stop()`: the simulator's own way to quit (none by default)."""

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self):
        """Starts the simulator and waits until the board's UART is up; returns self. A start
        that fails because the simulator exited says so, with its exit code and output."""
        if self.running:
            return self
        self._prepare()
        fd, log_name = tempfile.mkstemp(prefix=self._log_prefix(), suffix=".log")
        self._log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log_file:
            self.process = subprocess.Popen(
                [*die_with_parent(), *self.command()],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with _live_lock:
            _live_instances.add(self)
        try:
            self.url = self._come_up()
        except self.error as exc:
            error = exc if self.running else self._exited_error("while starting")
            self.stop()
            raise error from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        """Ends the simulator (its own way to quit, then SIGTERM, then SIGKILL after
        `timeout`) and removes its log; returns its exit code."""
        process = self.process
        if process is None:
            return None
        self._ask_to_quit(process, timeout)
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                process.wait()
        with _live_lock:
            _live_instances.discard(self)
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, like a crashed simulator (for fault tests); `stop()` still cleans up."""
        if self.running:
            self._signal_group(signal.SIGKILL)
            assert self.process is not None
            self.process.wait()

    def _signal_group(self, sig: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- diagnostics ---------------------------------------------------------------------------

    def log(self) -> str:
        """What the simulator printed so far (stdout and stderr)."""
        if self._log_path is None:
            return ""
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self, limit: int = 800) -> str:
        text = self.log().strip()
        return f": {text[-limit:]}" if text else ""

    def _exit_notes(self, log: str) -> list[str]:
        """What the simulator's output says about its exit, before the output itself."""
        return []

    def exit_details(self, limit: int = 300) -> str:
        """What to add to "<simulator> exited": the notes of `_exit_notes`, and the end of
        its output (one line per line it printed)."""
        log = self.log()
        notes = self._exit_notes(log)
        text = " | ".join(line.strip() for line in log.splitlines() if line.strip())
        details = f" ({'; '.join(notes)})" if notes else ""
        return details + (f" ({self.simulator} output: {text[-limit:]})" if text else "")

    def _exited_error(self, when: str) -> KenningHILError:
        assert self.process is not None
        code = self.process.wait()
        return self.error(
            f"{self.describe()} exited with code {code} {when}{self.exit_details(800)}"
        )


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        instances = list(_live_instances)
    for instance in instances:
        try:
            instance.stop(timeout=1.0)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass

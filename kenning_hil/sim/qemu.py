"""QEMU-simulated boards: one `QemuInstance` is one `qemu-system-arm` process running a
firmware ELF, with the board's UART on a loopback TCP socket (or a pty) that pyserial opens.

    with QemuInstance("mps2-an386", "firmware/build/mps2-an386/kenning-hil.elf") as board:
        port = serial.serial_for_url(board.url)      # socket://127.0.0.1:PORT

Timing: `-icount shift=0` by default, so every guest instruction advances QEMU's virtual
clock by exactly 1 ns and the firmware's timer counts instructions deterministically.

No orphans: QEMU runs in its own process group, is sent SIGKILL by the kernel if the Python
process that started it dies (PR_SET_PDEATHSIG), and every instance still running at
interpreter exit is stopped by an atexit hook.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

from kenning_hil.core.errors import KenningHILError

DEFAULT_QEMU = "qemu-system-arm"
# QEMU announces where a server chardev listens / which pty it opened on stderr.
_TCP_ANNOUNCE = re.compile(r"waiting for connection on: disconnected:tcp:([0-9.]+):(\d+)")
_PTY_ANNOUNCE = re.compile(r"char device redirected to (\S+) \(label serial0\)")
_PR_SET_PDEATHSIG = 1

_live_instances: weakref.WeakSet[QemuInstance] = weakref.WeakSet()
_live_lock = threading.Lock()


class QemuError(KenningHILError):
    """QEMU or the firmware it should run is missing, or QEMU failed to start or died."""


def _libc_prctl():
    """libc's prctl, looked up once in this process (Linux only, else None)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Looked up here, not in the child: between fork and exec the child must not dlopen (another
# thread of a test process may hold the dynamic loader's lock at fork time; a QEMU start was
# seen to die with SIGSEGV before exec, with nothing in its log).
_PRCTL = _libc_prctl()


def die_with_parent(sig: int = signal.SIGKILL):
    """A preexec_fn: the kernel sends `sig` to the child when the process that started it
    exits (PR_SET_PDEATHSIG; Linux only, elsewhere nothing)."""

    def preexec() -> None:  # pragma: no cover - runs in the child before exec
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


_die_with_parent = die_with_parent()
"""QEMU's: killed outright when the process that started it exits."""


class QemuInstance:
    """One simulated board: `start()` boots it, `url` reaches its UART, `stop()` ends it."""

    def __init__(
        self,
        machine: str,
        firmware: Path | str,
        *,
        serial: str = "tcp",
        icount_shift: int | None = 0,
        qemu_binary: str = DEFAULT_QEMU,
        extra_args: tuple[str, ...] | list[str] = (),
        start_timeout: float = 10.0,
    ):
        if serial not in ("tcp", "pty"):
            raise QemuError(f"QEMU serial backend must be 'tcp' or 'pty', got '{serial}'")
        self.machine = machine
        self.firmware = Path(firmware)
        self.serial = serial
        self.icount_shift = icount_shift
        self.qemu_binary = qemu_binary
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._log_path: Path | None = None

    def __repr__(self) -> str:
        state = f"pid {self.process.pid}" if self.running else "stopped"
        return f"QemuInstance({self.machine}, {self.firmware}, {state})"

    def describe(self) -> str:
        return f"QEMU {self.machine} running {self.firmware}"

    # -- command line --------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The qemu-system-arm command line (the serial port is bound by QEMU itself: TCP port
        0, so parallel instances never collide; the chosen port is read back from stderr)."""
        if self.serial == "tcp":
            # nodelay: QEMU writes the UART's bytes one at a time; with Nagle on, every answer
            # waits for the host's delayed ACK (about 40 ms per request instead of 1 ms)
            serial = "tcp:127.0.0.1:0,server=on,wait=on,nodelay=on"
        else:
            serial = "pty"
        cmd = [
            self.qemu_binary,
            "-M", self.machine,
            "-nographic",
            "-monitor", "none",
            "-kernel", str(self.firmware),
            "-serial", serial,
            "-net", "none",
        ]
        if self.icount_shift is not None:
            cmd += ["-icount", f"shift={self.icount_shift}"]
        return cmd + self.extra_args

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> QemuInstance:
        """Starts QEMU and waits until its UART accepts connections; returns self."""
        if self.running:
            return self
        binary = shutil.which(self.qemu_binary)
        if binary is None:
            raise QemuError(
                f"{self.qemu_binary} not found on PATH (needed to simulate {self.machine}); "
                "install the Debian package qemu-system-arm"
            )
        if not self.firmware.is_file():
            raise QemuError(
                f"firmware ELF {self.firmware} for {self.machine} does not exist; build it with "
                f"'make -C firmware BOARD={self.machine}'"
            )
        fd, log_name = tempfile.mkstemp(prefix=f"qemu-{self.machine}-", suffix=".log")
        self._log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log_file:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        with _live_lock:
            _live_instances.add(self)
        try:
            self.url = self._wait_for_serial()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_serial(self) -> str:
        deadline = time.monotonic() + self.start_timeout
        pattern = _TCP_ANNOUNCE if self.serial == "tcp" else _PTY_ANNOUNCE
        while time.monotonic() < deadline:
            match = pattern.search(self.log())
            if match:
                if self.serial == "pty":
                    return match.group(1)
                host, port = match.group(1), int(match.group(2))
                self._wait_until_listening(host, port, deadline)
                return f"socket://{host}:{port}"
            if not self.running:
                raise self._exited_error("while starting")
            time.sleep(0.01)
        raise QemuError(
            f"{self.describe()}: its UART did not come up within {self.start_timeout:g} s"
            f"{self._log_tail()}"
        )

    def _wait_until_listening(self, host: str, port: int, deadline: float) -> None:
        # Announced before or right after listen(); a connect attempt would consume the
        # wait=on handshake, so only check that the port is bound via the kernel's table.
        while time.monotonic() < deadline:
            if _tcp_port_listening(host, port):
                return
            if not self.running:
                raise self._exited_error("while starting")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminates QEMU (SIGTERM, then SIGKILL after `timeout`); returns its exit code."""
        process = self.process
        if process is None:
            return None
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

    def __enter__(self) -> QemuInstance:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- diagnostics ---------------------------------------------------------------------------

    def log(self) -> str:
        """What QEMU printed so far (stdout and stderr)."""
        if self._log_path is None:
            return ""
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _log_tail(self, limit: int = 800) -> str:
        text = self.log().strip()
        return f": {text[-limit:]}" if text else ""

    def exit_details(self, limit: int = 300) -> str:
        """What to add to "QEMU exited": its first fatal line (the register dump that
        follows says less), a note when the ELF was built for another CPU than the machine's,
        and the end of its output."""
        log = self.log()
        parts = []
        fatal = first_fatal_line(log)
        if fatal:
            parts.append(f"QEMU says: {fatal}")
        mismatch = cpu_mismatch(self.firmware, self.machine)
        if mismatch:
            parts.append(mismatch)
        text = " | ".join(line for line in log.strip().splitlines() if line.strip())
        details = f" ({'; '.join(parts)})" if parts else ""
        return details + (f" (QEMU output: {text[-limit:]})" if text else "")

    def _exited_error(self, when: str) -> QemuError:
        assert self.process is not None
        code = self.process.wait()
        return QemuError(
            f"{self.describe()} exited with code {code} {when}{self.exit_details(800)}"
        )


def first_fatal_line(log: str) -> str | None:
    """QEMU's first fatal message (``qemu: fatal: Lockup: ...``, ``qemu-system-arm: ...:
    error``), None when it printed none."""
    for line in log.splitlines():
        if "fatal:" in line or re.search(r"^qemu[\w-]*: .*\berror\b", line, re.IGNORECASE):
            return line.strip()
    return None


def cpu_mismatch(elf: Path, machine: str) -> str | None:
    """A note when `elf` was built for another Arm architecture than the CPU of `machine`
    (a firmware board), None when they match or either is unknown."""
    from kenning_hil.sim.elf_arch import CPU_ARCH, elf_arch
    from kenning_hil.sim.firmware_build import board_cpu

    cpu = board_cpu(machine)
    wanted = CPU_ARCH.get(cpu or "")
    built = elf_arch(elf)
    if wanted is None or built is None or built == wanted:
        return None
    return (f"{elf} was built for Arm{built}, but machine {machine} is a {cpu} "
            f"(Arm{wanted}): use firmware built for {machine}")


def _tcp_port_listening(host: str, port: int) -> bool:
    """True when a socket is listening on host:port (Linux: /proc/net/tcp; else assume yes)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return True
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(host), 'big')):08X}:{port:04X}"
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == want and fields[3] == "0A":  # 0A = LISTEN
            return True
    return False


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        instances = list(_live_instances)
    for instance in instances:
        try:
            instance.stop(timeout=1.0)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass

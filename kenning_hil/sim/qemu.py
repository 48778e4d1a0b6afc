"""QEMU-simulated boards: one `QemuInstance` is one `qemu-system-arm` process running a
firmware ELF, with the board's UART on a loopback TCP socket (or a pty) that pyserial opens.

    with QemuInstance("mps2-an386", "firmware/build/mps2-an386/kenning-hil.elf") as board:
        port = serial.serial_for_url(board.url)      # socket://127.0.0.1:PORT

Timing: `-icount shift=0` by default, so every guest instruction advances QEMU's virtual
clock by exactly 1 ns and the firmware's timer counts instructions deterministically.

No orphans: QEMU runs in its own process group and dies with the Python process that started
it (sim/process.py, shared with Renode boards).
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path

from kenning_hil.core.errors import KenningHILError
from kenning_hil.sim.process import SimulatorProcess

DEFAULT_QEMU = "qemu-system-arm"
# QEMU announces where a server chardev listens / which pty it opened on stderr.
_TCP_ANNOUNCE = re.compile(r"waiting for connection on: disconnected:tcp:([0-9.]+):(\d+)")
_PTY_ANNOUNCE = re.compile(r"char device redirected to (\S+) \(label serial0\)")


class QemuError(KenningHILError):
    """QEMU or the firmware it should run is missing, or QEMU failed to start or died."""


class QemuInstance(SimulatorProcess):
    """One simulated board: `start()` boots it, `url` reaches its UART, `stop()` ends it."""

    simulator = "QEMU"
    error = QemuError

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
        super().__init__()
        self.machine = machine
        self.firmware = Path(firmware)
        self.serial = serial
        self.icount_shift = icount_shift
        self.qemu_binary = qemu_binary
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout

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

    def _prepare(self) -> None:
        if shutil.which(self.qemu_binary) is None:
            raise QemuError(
                f"{self.qemu_binary} not found on PATH (needed to simulate {self.machine}); "
                "install the Debian package qemu-system-arm"
            )
        if not self.firmware.is_file():
            raise QemuError(
                f"firmware ELF {self.firmware} for {self.machine} does not exist; build it with "
                f"'make -C firmware BOARD={self.machine}'"
            )

    def _log_prefix(self) -> str:
        return f"qemu-{self.machine}-"

    def _come_up(self) -> str:
        """Reads the UART's address from QEMU's output, then waits until it listens."""
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

    def _exit_notes(self, log: str) -> list[str]:
        """QEMU's first fatal line (the register dump that follows says less), and a note
        when the ELF was built for another CPU than the machine's."""
        notes = []
        fatal = first_fatal_line(log)
        if fatal:
            notes.append(f"QEMU says: {fatal}")
        mismatch = cpu_mismatch(self.firmware, self.machine)
        if mismatch:
            notes.append(mismatch)
        return notes


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

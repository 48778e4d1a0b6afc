"""Renode-simulated boards: one `RenodeInstance` is one headless Renode process
(``renode --disable-xwt --plain --port N``) driven through its monitor on that TCP port, with
the board's UART on a server-socket terminal (``emulation CreateServerSocketTerminal``) that
the host's UART protocol connects to.

    with RenodeInstance("renode", setup=[...]) as board:   # the monitor commands of a board
        port = serial.serial_for_url(board.url)            # socket://127.0.0.1:PORT

The monitor, as Renode's documentation shows it: a prompt ``(monitor)`` before a machine
exists and ``(<machine name>)`` after ``mach create``; every command answers with its output
and a fresh prompt. The commands this module sends print nothing when they succeed
(``start`` says ``Starting emulation...``), so any other text they print is Renode's error,
raised verbatim with the command that printed it. A monitor that does not give its prompt
back within the timeout is an error naming the command too.

No orphans: Renode runs in its own process group and dies with the Python process that
started it (sim/process.py, shared with QEMU boards); `stop()` sends ``quit`` first, then
SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from kenning_hil.core.errors import KenningHILError, os_reason
from kenning_hil.core.measurements import Measurements
from kenning_hil.sim.process import SimulatorProcess
from kenning_hil.sim.qemu_uart import QemuUARTProtocol

DEFAULT_RENODE = "renode"
RENODE_BIN_ENV = "RENODE_BIN"
NOT_FOUND = f"renode not found on PATH; set {RENODE_BIN_ENV}"
# `sysbus.cpu PerformanceInMips 1000`: one instruction per nanosecond of virtual time, as
# QEMU's -icount shift=0, so the firmware's timer counts instructions on either simulator
INSTRUCTIONS_MIPS = 1000
TERMINAL_NAME = "term"

_PROMPT = re.compile(r"\(([^()\r\n]+)\) ?$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_TELNET = re.compile(rb"\xff[\xfb-\xfe].|\xff[\xf0-\xfa]", re.DOTALL)
# what the commands below print when they succeed; anything else is an error
_BENIGN = re.compile(r"^(Starting emulation\.\.\.|Pausing emulation\.\.\.)$")
_NUMBER = re.compile(r"^(0x[0-9a-fA-F]+|\d+)$")

class RenodeError(KenningHILError):
    """Renode is missing, failed to start, refused a monitor command or stopped answering."""


def renode_binary(configured: str | None = None) -> str:
    """The Renode to run: the target's `renode` key, else $RENODE_BIN, else `renode`."""
    return configured or os.environ.get(RENODE_BIN_ENV) or DEFAULT_RENODE


def free_port() -> int:
    """A loopback TCP port free right now (Renode's commands take a port number, not 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def monitor_path(path: Path | str) -> str:
    """A file argument as the monitor takes it: ``@/absolute/path`` (quoted when it has a
    space)."""
    text = str(Path(path).resolve())
    return f'@"{text}"' if " " in text else f"@{text}"


class RenodeMonitor:
    """The monitor's TCP connection: `execute` sends one command and returns its output."""

    def __init__(self, sock: socket.socket, label: str):
        self.sock = sock
        self.label = label
        self.prompt: str | None = None
        self._buffer = ""

    @classmethod
    def connect(cls, port: int, deadline: float, label: str, alive=lambda: True) -> RenodeMonitor:
        """Connects to the monitor on `port` (Renode opens it a few seconds after starting)
        and waits for its first prompt."""
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)
                break
            except OSError:
                if not alive():
                    raise RenodeError(f"{label} exited before its monitor opened") from None
                if time.monotonic() >= deadline:
                    raise RenodeError(
                        f"{label}: its monitor did not open on port {port} in time") from None
                time.sleep(0.1)
        monitor = cls(sock, label)
        monitor._read_prompt("connecting", deadline)
        return monitor

    def _read_prompt(self, command: str, deadline: float) -> str:
        """Reads until the monitor shows a prompt; returns what came before it."""
        while True:
            text = _ANSI.sub("", self._buffer).replace("\r", "")
            found = _PROMPT.search(text)
            if found:
                self.prompt = found.group(1)
                self._buffer = ""
                return text[: found.start()]
            left = deadline - time.monotonic()
            if left <= 0:
                printed = " | ".join(_said(text, command))
                raise RenodeError(
                    f"{self.label}: the monitor did not answer '{command}' in time"
                    + (f" (it printed: {printed[-300:]})" if printed else ""))
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise RenodeError(f"{self.label}: the monitor connection broke during "
                                  f"'{command}': {os_reason(exc)}") from exc
            if not data:
                printed = " | ".join(_said(text, command))
                raise RenodeError(
                    f"{self.label}: the monitor closed its connection during '{command}'"
                    + (f" (it printed: {printed[-300:]})" if printed else ""))
            self._buffer += _TELNET.sub(b"", data).decode("utf-8", "replace")

    def execute(self, command: str, timeout: float) -> list[str]:
        """Runs `command`; returns its output lines (the echo of the command left out)."""
        try:
            self.sock.sendall(command.encode() + b"\n")
        except OSError as exc:
            raise RenodeError(
                f"{self.label}: could not send '{command}' to the monitor: {os_reason(exc)}"
            ) from exc
        return _said(self._read_prompt(command, time.monotonic() + timeout), command)

    def run(self, command: str, timeout: float, expect_number: bool = False) -> list[str]:
        """`execute`, raising Renode's own words, verbatim, when it printed anything but
        the success output of the command (an empty answer, or a number when asked for)."""
        lines = self.execute(command, timeout)
        wrong = [line for line in lines if not _BENIGN.match(line)
                 and not (expect_number and _NUMBER.match(line))]
        if wrong:
            raise RenodeError(f"{self.label}: '{command}' failed: {' | '.join(wrong)}")
        return lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class RenodeInstance(SimulatorProcess):
    """One Renode process: `start()` launches it and runs `setup` (monitor commands that
    create the machine and its UART terminal on `terminal_port`) and ``start``; `url`
    reaches the UART; `stop()` quits it."""

    simulator = "Renode"
    error = RenodeError

    def __init__(
        self,
        binary: str,
        setup: list[str],
        terminal_port: int,
        *,
        description: str = "Renode",
        start_timeout: float = 60.0,
        command_timeout: float = 30.0,
        cpu: str = "sysbus.cpu",
        extra_args: list[str] | tuple[str, ...] = (),
    ):
        super().__init__()
        self.binary = binary
        self.setup = list(setup)
        self.terminal_port = terminal_port
        self.description = description
        self.start_timeout = start_timeout
        self.command_timeout = command_timeout
        self.cpu = cpu
        self.extra_args = list(extra_args)
        self.monitor: RenodeMonitor | None = None
        self.monitor_port: int | None = None

    def describe(self) -> str:
        return self.description

    def command(self) -> list[str]:
        return [self.binary, "--disable-xwt", "--plain", "--port", str(self.monitor_port),
                *self.extra_args]

    def _prepare(self) -> None:
        binary = shutil.which(self.binary)
        if binary is None:
            raise RenodeError(f"{self.binary}: {NOT_FOUND}")
        self.binary = binary
        self.monitor_port = free_port()

    def _come_up(self) -> str:
        """Connects to the monitor, sets the board up, starts it and waits until the firmware
        idles; the UART is then the server-socket terminal on `terminal_port`."""
        label = f"{self.description} (pid {self.process.pid})"
        self.monitor = RenodeMonitor.connect(
            self.monitor_port, time.monotonic() + self.start_timeout, label,
            alive=lambda: self.running)
        for command in [*self.setup, "start"]:
            self.run(command)
        self._wait_until_idle(time.monotonic() + self.start_timeout)
        return f"socket://127.0.0.1:{self.terminal_port}"

    def run(self, command: str, expect_number: bool = False) -> list[str]:
        """A monitor command (see `RenodeMonitor.run`); Renode's exit is said as such."""
        if self.monitor is None:
            raise RenodeError(f"{self.description}: not started")
        try:
            return self.monitor.run(command, self.command_timeout, expect_number)
        except RenodeError as exc:
            if self.process is not None and not _wait_exit(self.process, 0.5):
                raise self._exited_error(f"during '{command}'") from exc
            raise

    def _wait_until_idle(self, deadline: float) -> None:
        """Waits until the CPU has run and then stopped counting (the firmware sleeps in
        WFI, waiting for the host): bytes sent while it still boots may reach a UART that
        is not enabled yet, which an STM32 USART drops, cutting the first frame."""
        last = -1
        while time.monotonic() < deadline:
            count = self.executed_instructions()
            if count == last and count > 0:
                return
            last = count
            time.sleep(0.05)

    def executed_instructions(self) -> int:
        """``<cpu> ExecutedInstructions``: instructions the CPU executed since it started."""
        lines = self.run(f"{self.cpu} ExecutedInstructions", expect_number=True)
        numbers = [line for line in lines if _NUMBER.match(line)]
        if not numbers:
            raise RenodeError(f"{self.description}: '{self.cpu} ExecutedInstructions' "
                              f"printed no number")
        return int(numbers[-1], 0)

    def _ask_to_quit(self, process: subprocess.Popen, timeout: float) -> None:
        """``quit`` through the monitor; `stop()` then sends SIGTERM, then SIGKILL."""
        if process.poll() is None and self.monitor is not None:
            try:
                self.monitor.sock.sendall(b"quit\n")
            except OSError:
                pass
            _wait_exit(process, min(timeout, 3.0))
        if self.monitor is not None:
            self.monitor.close()


def _said(text: str, command: str) -> list[str]:
    """The monitor's lines in `text`, without the echo of `command`."""
    lines = [line.strip() for line in text.split("\n")]
    return [line for line in lines if line and line != command]


def _wait_exit(process: subprocess.Popen, timeout: float) -> bool:
    """True when `process` still runs after `timeout` seconds."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return True
    return False


# The monitor's count around each PROCESS request: the CPU's own instruction counter over the
# inference (plus the few instructions of the request's frame), beside the firmware's count.
EXECUTED_INSTRUCTIONS = "renode_executed_instructions"



class RenodeUARTProtocol(QemuUARTProtocol):
    """The UART protocol to a Renode board (`board`: its `RenodeInstance`): the firmware's
    instruction count per inference, as on QEMU, and Renode's own count of the CPU's
    instructions over each PROCESS request (``renode_executed_instructions``)."""

    def initialize_client(self) -> bool:
        self._executed: list[int] = []
        return super().initialize_client()

    def request_processing(self, get_time_func=time.perf_counter) -> bool:
        before = self.board.executed_instructions()
        ok = super().request_processing(get_time_func)
        if ok:
            self._executed.append(self.board.executed_instructions() - before)
        return ok

    def download_statistics(self, final: bool = False) -> Measurements:
        stats = super().download_statistics(final=final)
        if self._executed:
            stats[EXECUTED_INSTRUCTIONS] = list(self._executed)
        return stats

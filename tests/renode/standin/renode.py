"""A stand-in for Renode, for the tests of the renode target kind (Renode itself is not
installable here). Run as ``renode --disable-xwt --plain --port N`` (through a wrapper the
tests write), it speaks Renode's monitor the way Renode's documentation shows it and does
the real work behind it with QEMU:

- the monitor: a telnet-style TCP server on port N; a banner, the prompt ``(monitor)``, then
  ``(<machine>)`` after ``mach create``; the typed line echoed; each command's output, then
  the prompt again. Commands: ``mach create``, ``machine LoadPlatformDescription @f``,
  ``sysbus LoadELF @f``, ``sysbus.cpu PerformanceInMips n``, ``sysbus.cpu
  ExecutedInstructions``, ``emulation CreateServerSocketTerminal port "name" false``,
  ``connector Connect sysbus.<uart> <name>``, ``start``, ``pause``, ``quit``,
  ``$var=value`` / ``$var?=value`` (``$ORIGIN``: the included script's folder),
  ``include @script.resc``, ``using sysbus``; anything else
  is ``No such command or device``.
- the board: on ``start`` it boots the loaded ELF in QEMU on the machine EQUIVALENT to the
  platform (below), and bridges QEMU's UART to the server-socket terminal, byte for byte.
- the instruction counter: a QEMU TCG plugin (insn_counter.c, built with gcc on first use)
  adds every executed guest instruction into a shared file; ``ExecutedInstructions`` reads it.
- time: ``PerformanceInMips 1000`` is one instruction per virtual nanosecond, which is QEMU's
  ``-icount shift=0`` (500 is shift=1, ...); other values are refused.

How a .repl maps to a QEMU machine (EQUIVALENT): by the CPU type, the UART the firmware is
connected to (its Renode model and address) and the memories, which must lie inside the
QEMU machine's. The STM32F4 Discovery (STM32F407) platform runs on QEMU's netduinoplus2
(STM32F405): the same Cortex-M4, the same F4 USART IP with USART1 at 0x40011000 (QEMU's
first serial port), flash at 0x08000000 and SRAM at 0x20000000; the STM32F205 platform
runs on QEMU's netduino2 (STM32F205: the same map and USART, a Cortex-M3). A platform with no
equivalent is refused at LoadPlatformDescription, naming what did not match.

Failures on demand, from $RENODE_STANDIN_FAIL: ``hang:<command prefix>`` stops answering the
monitor from that command on; ``exit-after:<bytes>`` exits (code 3, QEMU killed) once that
many bytes went from the terminal to the board.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from kenning_hil.sim.qemu import QemuInstance  # noqa: E402

HERE = Path(__file__).resolve().parent
VERSION = "Renode, version 1.15.3.0 (kenning-hil test stand-in)"
TELNET_NEGOTIATION = bytes([255, 251, 1, 255, 251, 3])  # IAC WILL ECHO, IAC WILL SGA
MB = 1 << 20

# Renode platform -> QEMU machine: the CPU, the UART (model, address) the firmware talks to,
# and the QEMU machine's memories (base, size) that the platform's memories must fit in.
EQUIVALENT = [
    {
        "cpu": "cortex-m4",
        "uart": ("UART.STM32_UART", 0x40011000),
        "machine": "netduinoplus2",
        "memories": [(0x08000000, 1 * MB), (0x20000000, 128 << 10)],
        "vector_table": 0x08000000,  # QEMU boots the STM32 from its flash (aliased at 0)
    },
    {
        # STM32F205 on QEMU's netduino2 (an STM32F205RF): the same USART IP, USART1 first
        "cpu": "cortex-m3",
        "uart": ("UART.STM32_UART", 0x40011000),
        "machine": "netduino2",
        "memories": [(0x08000000, 1 * MB), (0x20000000, 128 << 10)],
        "vector_table": 0x08000000,
    },
]
KNOWN_TYPES = {"CPU.CortexM", "IRQControllers.NVIC", "Memory.MappedMemory", "UART.STM32_UART"}


class CommandError(Exception):
    """What Renode would print for a failed command."""


def parse_repl(path: Path) -> dict[str, dict]:
    """Peripherals of a .repl: name -> {type, address, attrs}."""
    peripherals: dict[str, dict] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.split("//")[0].rstrip()
        if not line.strip():
            continue
        head = re.match(r"^(\w+):\s*([\w.]+)\s*@\s*sysbus\s*(.*)$", line)
        if head:
            name, kind, where = head.groups()
            if kind not in KNOWN_TYPES:
                raise CommandError(f"Error E05: Could not resolve type '{kind}' of "
                                   f"'{name}' in {path}")
            address = re.search(r"0x[0-9a-fA-F]+", where)
            current = peripherals[name] = {
                "type": kind, "address": int(address.group(0), 16) if address else None,
                "attrs": {}}
            continue
        attr = re.match(r"^\s+(\w+):\s*(.+)$", line)
        if attr and current is not None:
            value = attr.group(2).strip().strip('"')
            current["attrs"][attr.group(1)] = value
    return peripherals


def equivalent_machine(path: Path, peripherals: dict[str, dict]) -> dict:
    cpus = [p for p in peripherals.values() if p["type"] == "CPU.CortexM"]
    cpu = cpus[0]["attrs"].get("cpuType") if cpus else None
    uarts = {(p["type"], p["address"]) for p in peripherals.values()
             if p["type"].startswith("UART.")}
    memories = [(p["address"], int(p["attrs"].get("size", "0"), 0))
                for p in peripherals.values() if p["type"] == "Memory.MappedMemory"]
    for candidate in EQUIVALENT:
        fits = all(any(base <= start and start + size <= base + limit
                       for base, limit in candidate["memories"]) for start, size in memories)
        if cpu == candidate["cpu"] and candidate["uart"] in uarts and fits:
            return candidate
    raise CommandError(
        f"stand-in: no QEMU machine is equivalent to platform {path} (cpu {cpu}, UARTs "
        f"{sorted((t, hex(a)) for t, a in uarts)}, memories "
        f"{[(hex(a), hex(s)) for a, s in memories]})")


def counter_plugin() -> Path:
    """insn_counter.so, built once per source version into the temporary folder."""
    source = HERE / "insn_counter.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"khil-renode-standin-{digest}" / "insn_counter.so"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", str(source), "-o", str(partial)],
                       check=True, capture_output=True)
        os.replace(partial, target)
    return target


def file_argument(argument: str) -> Path:
    """``@path`` (or a quoted ``@"path"``) as Renode's monitor takes a file."""
    text = argument.strip()
    if text.startswith("@"):
        text = text[1:]
    return Path(text.strip('"'))


class Board:
    """The emulation: one machine, its QEMU once started, its terminals."""

    def __init__(self):
        self.machine: str | None = None
        self.platform: Path | None = None
        self.peripherals: dict[str, dict] = {}
        self.equivalent: dict | None = None
        self.elf: Path | None = None
        self.icount_shift = 0
        self.terminals: dict[str, socket.socket] = {}
        self.connected: dict[str, str] = {}  # terminal -> uart
        self.qemu: QemuInstance | None = None
        self.paused = False
        self.uart: socket.socket | None = None
        self.client: socket.socket | None = None
        self.counter_file = tempfile.NamedTemporaryFile(prefix="standin-insns-", delete=False)
        self.counter_file.write(b"\0" * 8)
        self.counter_file.flush()
        self.counter = mmap.mmap(self.counter_file.fileno(), 8)
        fail = os.environ.get("RENODE_STANDIN_FAIL", "")
        self.exit_after = int(fail.split(":", 1)[1]) if fail.startswith("exit-after:") else None
        self.sent = 0

    def stop(self) -> None:
        if self.qemu is not None:
            self.qemu.stop(timeout=2.0)
        Path(self.counter_file.name).unlink(missing_ok=True)

    # -- commands ---------------------------------------------------------------------------

    def load_platform(self, path: Path) -> None:
        if not path.is_file():
            raise CommandError(f"Could not find file '{path}'")
        self.peripherals = parse_repl(path)
        self.equivalent = equivalent_machine(path, self.peripherals)
        self.platform = path

    def load_elf(self, path: Path) -> None:
        if not path.is_file():
            raise CommandError(f"Could not find file '{path}'")
        with open(path, "rb") as f:
            head = f.read(20)
        if head[:4] != b"\x7fELF":
            raise CommandError(f"Error while loading ELF {path}: the file is not an ELF file")
        if head[18:20] != (40).to_bytes(2, "little"):
            raise CommandError(f"Error while loading ELF {path}: it is not an ARM ELF")
        self.elf = path

    def performance(self, mips: float) -> None:
        for shift in range(11):
            if abs(1000 / (1 << shift) - mips) < 1e-9:
                self.icount_shift = shift
                return
        raise CommandError(f"stand-in: PerformanceInMips {mips:g} has no QEMU -icount "
                           f"equivalent (1000 / 2**shift)")

    def executed_instructions(self) -> int:
        return int.from_bytes(self.counter[:8], "little")

    def create_terminal(self, port: int, name: str) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
        except OSError as exc:
            server.close()
            raise CommandError(f"Could not create server socket terminal on port {port}: "
                               f"{exc.strerror}") from None
        server.listen(1)
        self.terminals[name] = server

    def connect(self, peripheral: str, terminal: str) -> None:
        uart = peripheral.removeprefix("sysbus.")
        if uart not in self.peripherals:
            raise CommandError(f"Could not find peripheral '{peripheral}'")
        if terminal not in self.terminals:
            raise CommandError(f"Could not find external '{terminal}'")
        wanted = self.equivalent["uart"] if self.equivalent else None
        found = self.peripherals[uart]
        if wanted is None or (found["type"], found["address"]) != wanted:
            raise CommandError(f"stand-in: only the UART at {hex(wanted[1]) if wanted else '?'}"
                               f" reaches QEMU's serial port, not {peripheral}")
        self.connected[terminal] = uart

    def start(self) -> None:
        if self.qemu is not None:
            if self.paused:
                os.killpg(self.qemu.pid, 18)  # SIGCONT
                self.paused = False
            return
        if self.equivalent is None or self.elf is None:
            raise CommandError("There is no machine to start: load a platform and an ELF first")
        offset = int(self.peripherals.get("cpu", {}).get("attrs", {}).get(
            "VectorTableOffset", "0"), 0)
        if offset != self.equivalent["vector_table"]:
            raise CommandError(f"stand-in: VectorTableOffset {hex(offset)} is not where "
                               f"{self.equivalent['machine']} boots from")
        plugin = counter_plugin()
        self.qemu = QemuInstance(
            self.equivalent["machine"], self.elf, icount_shift=self.icount_shift,
            extra_args=["-plugin", f"{plugin},counter={self.counter_file.name}"],
            start_timeout=30)
        self.qemu.start()
        host, port = self.qemu.url.removeprefix("socket://").split(":")
        self.uart = socket.create_connection((host, int(port)))
        self.uart.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._board_to_terminal, daemon=True).start()
        threading.Thread(target=self._unlink_counter_once_counting, daemon=True).start()
        for name, server in self.terminals.items():
            if name in self.connected:
                threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def pause(self) -> None:
        if self.qemu is not None and not self.paused:
            os.killpg(self.qemu.pid, 19)  # SIGSTOP
            self.paused = True

    def _unlink_counter_once_counting(self) -> None:
        """Once the guest runs, QEMU's plugin has mapped the counter file: unlinked then, no
        file outlives a kill -9 of the stand-in."""
        deadline = time.monotonic() + 30
        while self.executed_instructions() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        Path(self.counter_file.name).unlink(missing_ok=True)

    # -- the UART bridge --------------------------------------------------------------------

    def _board_to_terminal(self) -> None:
        while True:
            try:
                data = self.uart.recv(65536)
            except OSError:
                return
            if not data:
                return
            client = self.client
            if client is not None:  # nobody listening: the bytes are lost, as on a wire
                try:
                    client.sendall(data)
                except OSError:
                    pass

    def _accept(self, server: socket.socket) -> None:
        while True:
            client, _ = server.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.client = client
            while True:
                try:
                    data = client.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
                self.sent += len(data)
                if self.exit_after is not None and self.sent >= self.exit_after:
                    print("stand-in: exiting mid-session on demand", flush=True)
                    self.qemu.kill()
                    Path(self.counter_file.name).unlink(missing_ok=True)
                    os._exit(3)
                self.uart.sendall(data)
            self.client = None
            client.close()


class Monitor:
    def __init__(self, board: Board):
        self.board = board
        self.variables: dict[str, str] = {}
        fail = os.environ.get("RENODE_STANDIN_FAIL", "")
        self.hang_at = fail.split(":", 1)[1] if fail.startswith("hang:") else None

    @property
    def prompt(self) -> str:
        return f"({self.board.machine or 'monitor'}) "

    def substitute(self, line: str) -> str:
        return re.sub(r"\$(\w+)", lambda m: self.variables.get(m.group(1), m.group(0)), line)

    def execute(self, line: str) -> list[str]:
        """Output lines of one command (CommandError: the error Renode prints)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return []
        assign = re.match(r"^\$(\w+)\s*(\??=)\s*(.+)$", line)
        if assign:
            name, op, value = assign.groups()
            if op == "=" or name not in self.variables:
                self.variables[name] = self.substitute(value.strip())
            return []
        line = self.substitute(line)
        words = shlex.split(line, posix=False)
        board = self.board
        match words:
            case ["mach", "create", *name]:
                board.machine = name[0].strip('"') if name else "machine-0"
            case ["machine", "LoadPlatformDescription", path]:
                self._need_machine()
                board.load_platform(file_argument(path))
            case ["sysbus", "LoadELF", path]:
                self._need_machine()
                board.load_elf(file_argument(path))
            case ["sysbus.cpu", "PerformanceInMips", value]:
                self._need_machine()
                board.performance(float(value))
            case ["sysbus.cpu", "ExecutedInstructions"]:
                self._need_machine()
                return [hex(board.executed_instructions())]
            case ["emulation", "CreateServerSocketTerminal", port, name, *_]:
                board.create_terminal(int(port), name.strip('"'))
            case ["connector", "Connect", peripheral, terminal]:
                self._need_machine()
                board.connect(peripheral, terminal)
            case ["start"]:
                board.start()
                return ["Starting emulation..."]
            case ["pause"]:
                board.pause()
            case ["using", _]:
                pass
            case ["include", path] | ["i", path]:
                return self.include(file_argument(path))
            case _:
                raise CommandError(f"No such command or device: {words[0]}")
        return []

    def _need_machine(self) -> None:
        if self.board.machine is None:
            raise CommandError("No machine selected: use 'mach create' first")

    def include(self, path: Path) -> list[str]:
        if not path.is_file():
            raise CommandError(f"Could not find file '{path}'")
        output = []
        self.variables["ORIGIN"] = str(path.resolve().parent)  # the script's folder
        for raw in path.read_text().splitlines():
            if raw.startswith(":"):  # :name: / :description: headers
                continue
            output += self.execute(raw)
        return output

    def serve(self, client: socket.socket) -> bool:
        """One monitor connection; False when `quit` was asked."""
        client.sendall(TELNET_NEGOTIATION + f"{VERSION}\r\n\r\n{self.prompt}".encode())
        buffer = b""
        while True:
            data = client.recv(4096)
            if not data:
                return True
            buffer += re.sub(rb"\xff[\xfb-\xfe].|\xff[\xf0-\xfa]", b"", data)
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode(errors="replace").strip("\r")
                client.sendall(line.encode() + b"\r\n")  # the monitor echoes what is typed
                if line.strip() in ("quit", "q"):
                    return False
                if self.hang_at is not None and line.startswith(self.hang_at):
                    while True:  # the monitor stops answering (the process still runs)
                        time.sleep(3600)
                try:
                    output = self.execute(line)
                except CommandError as exc:
                    output = [str(exc)]
                except Exception as exc:  # noqa: BLE001 - Renode reports, it does not crash
                    output = [f"There was an error executing command '{line}': {exc}"]
                text = "".join(f"{out}\r\n" for out in output)
                client.sendall(text.encode() + self.prompt.encode())


def main(argv: list[str]) -> int:
    # SIGTERM (the kind's teardown of a hung monitor) still stops QEMU and removes the files
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    port = int(argv[argv.index("--port") + 1])
    for flag in ("--disable-xwt", "--plain"):
        if flag not in argv:
            print(f"stand-in: expected {flag} (a headless run)", flush=True)
            return 2
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    print(f"Monitor available in telnet mode on port {port}", flush=True)
    board = Board()
    monitor = Monitor(board)
    try:
        while True:
            client, _ = server.accept()
            try:
                keep = monitor.serve(client)
            except OSError:
                keep = True
            finally:
                client.close()
            if not keep:
                return 0
    finally:
        board.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

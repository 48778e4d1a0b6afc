"""`kind: renode`: a board simulated by Renode running the reference firmware, reached over
its UART on a Renode server-socket terminal (docs/renode.md).

Every test process starts its own headless Renode per pool instance it holds
(``renode --disable-xwt --plain --port N``, the binary from the `renode` key, $RENODE_BIN or
PATH) and sets the board up through the monitor (sim/renode.py), either from the platform
description named by `platform`:

    mach create
    machine LoadPlatformDescription @<platform .repl>
    sysbus LoadELF @<firmware ELF>
    sysbus.cpu PerformanceInMips 1000
    emulation CreateServerSocketTerminal <port> "term" false
    connector Connect sysbus.<uart> term
    start

or from the Renode script named by `script` (``$elf`` and ``$uart_port`` set, then
``include @<.resc>``; the script creates the machine and the ``term`` terminal on
``$uart_port``), then ``start``. A command Renode refuses fails the session with Renode's
words and the command; Renode is quit at the end of the session and dies with the worker.

Timing: at ``PerformanceInMips 1000`` one instruction takes one nanosecond of Renode's
virtual time, as under QEMU's ``-icount shift=0``, so the firmware's timer counts
instructions and reports one count per inference (``target_inference_instructions``, like
qemu). Renode's own counter of the CPU (``sysbus.cpu ExecutedInstructions``) is read around
every PROCESS request and reported beside it (``renode_executed_instructions``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kenning_hil.blocks.entries import inline_entry
from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.sim.firmware_build import (
    TOOLCHAIN,
    TOOLCHAIN_PACKAGES,
    FirmwareBuildError,
    boards,
    build_firmware,
    default_elf,
)
from kenning_hil.sim.renode import (
    INSTRUCTIONS_MIPS,
    NOT_FOUND,
    TERMINAL_NAME,
    RenodeError,
    RenodeInstance,
    RenodeUARTProtocol,
    free_port,
    monitor_path,
    renode_binary,
)
from kenning_hil.targets.errors import TargetError
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)

_built_this_process: set[Path] = set()


class RenodeKind(TargetKind):
    name = "renode"
    summary = "a board simulated by Renode running the reference firmware, UART over TCP"
    properties = {
        "board": {
            "type": "string",
            "description": "firmware board folder (firmware/boards/<board>) whose build runs "
            "on it, e.g. stm32f4-discovery",
        },
        "platform": {
            "type": "string",
            "description": "Renode platform description (.repl), relative to this file's "
            "directory or the current directory",
        },
        "script": {
            "type": "string",
            "description": "Renode script (.resc) instead of 'platform': it creates the "
            "machine, loads $elf and connects the UART to a terminal 'term' on $uart_port",
        },
        "uart": {
            "type": "string",
            "description": "the UART peripheral of the platform the firmware uses "
            "(connector Connect sysbus.<uart> term), e.g. usart1",
        },
        "firmware": {
            "type": "string",
            "description": "firmware ELF, relative to this file's directory or the current "
            "directory (default: the reference firmware built for 'board', on first use)",
        },
        "cpu": {"type": "string", "description": "the CPU peripheral (default sysbus.cpu)"},
        "renode": {
            "type": "string",
            "description": "Renode binary (default: $RENODE_BIN, else renode on PATH)",
        },
        "renode_args": {
            "type": "array",
            "items": {"type": "string"},
            "description": "extra arguments of the renode command",
        },
    }
    required = ("board",)
    private_sessions = True
    runtime_meaning = RuntimeMeaning.FIRMWARE  # the firmware runs the model
    unavailable_skips = True  # Renode is installed for nightly jobs, not everywhere

    @classmethod
    def check(cls, description) -> None:
        opts, source = description.options, description.source
        if ("platform" in opts) == ("script" in opts):
            raise ConfigurationError(
                f"{source}: a renode target needs exactly one of 'platform' (a .repl) and "
                f"'script' (a .resc)")
        if "platform" in opts and "uart" not in opts:
            raise ConfigurationError(
                f"{source}: key 'uart' is needed with 'platform': the UART peripheral the "
                f"firmware uses, e.g. usart1")
        if "firmware" not in opts and opts["board"] not in boards():
            raise ConfigurationError(
                f"{source}: key 'firmware' is needed: there is no reference firmware board "
                f"named '{opts['board']}' (boards: {', '.join(boards())})")
        if isinstance(description.instances, list):
            raise ConfigurationError(
                f"{source}: key 'instances' of a renode target is a number of simultaneous "
                f"boards, got a list")
        protocol = description.protocol or {"type": "uart"}
        if protocol.get("type") != "uart":
            raise ConfigurationError(
                f"{source}: key 'protocol.type' must be 'uart' for a renode target (Renode "
                f"exposes the board's UART), got {protocol.get('type')!r}")

    # -- configuration ----------------------------------------------------------------------

    @property
    def board(self) -> str:
        return self.description.options["board"]

    @property
    def binary(self) -> str:
        return renode_binary(self.description.options.get("renode"))

    @property
    def counts_instructions(self) -> bool:
        return self.description.timing in (None, "instructions")

    def _file(self, key: str) -> Path:
        """A file named by `key`: absolute, else the first of (this file's directory, the
        current directory) that has it."""
        path = Path(self.description.options[key]).expanduser()
        if path.is_absolute():
            return path
        candidates = [Path(self.description.source).parent / path, Path.cwd() / path]
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
        return candidates[0].resolve()

    def setup_file(self) -> Path:
        """The .repl or .resc that sets the board up."""
        return self._file("platform" if "platform" in self.description.options else "script")

    def firmware_path(self) -> Path:
        if "firmware" in self.description.options:
            return self._file("firmware")
        return default_elf(self.board)

    def availability(self) -> tuple[bool, str]:
        binary = self.binary
        if shutil.which(binary) is None:
            if binary == "renode":
                return False, NOT_FOUND
            return False, f"{binary} not found ({NOT_FOUND})"
        setup = self.setup_file()
        if not setup.is_file():
            return False, f"{setup} not found"
        elf = self.firmware_path()
        note = ""
        if not elf.is_file():
            if "firmware" in self.description.options:
                return False, f"firmware {elf} not found"
            if shutil.which(TOOLCHAIN) is None:
                return False, (f"firmware {elf} not found and cannot be built: {TOOLCHAIN} "
                               f"not found (Debian: {TOOLCHAIN_PACKAGES})")
            note = ", firmware built on first use"
        return True, f"Renode {setup.name}, up to {len(self.instances())} at once{note}"

    def describe(self) -> str:
        return f"Renode {self.setup_file().name} running {self.firmware_path()}"

    def setup_commands(self, elf: Path, terminal_port: int) -> list[str]:
        """The monitor commands that make the board, before ``start``."""
        opts = self.description.options
        cpu = opts.get("cpu", "sysbus.cpu")
        timing = [f"{cpu} PerformanceInMips {INSTRUCTIONS_MIPS}"] if self.counts_instructions \
            else []
        if "script" in opts:
            return [f"$elf={monitor_path(elf)}", f"$uart_port={terminal_port}",
                    f"include {monitor_path(self.setup_file())}", *timing]
        return [
            "mach create",
            f"machine LoadPlatformDescription {monitor_path(self.setup_file())}",
            f"sysbus LoadELF {monitor_path(elf)}",
            *timing,
            f'emulation CreateServerSocketTerminal {terminal_port} "{TERMINAL_NAME}" false',
            f"connector Connect sysbus.{opts['uart']} {TERMINAL_NAME}",
        ]

    # -- sessions ---------------------------------------------------------------------------

    def ensure_firmware(self) -> Path:
        """The ELF, built once per process when it is the board's default build."""
        elf = self.firmware_path()
        if "firmware" in self.description.options or elf in _built_this_process:
            if not elf.is_file():
                raise TargetError(f"target '{self.description.name}': firmware {elf} not "
                                  f"found", "")
            return elf
        try:
            build_firmware(self.board)
        except FirmwareBuildError as exc:
            raise TargetError(f"target '{self.description.name}': {exc}", "") from exc
        _built_this_process.add(elf)
        return elf

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        desc = self.description
        if context.progress is None:
            elf = self.ensure_firmware()
        else:
            with context.progress.phase(f"build firmware for {self.board}"):
                elf = self.ensure_firmware()
        where = f"'{desc.name}' instance {instance.name}"
        terminal_port = free_port()
        renode = RenodeInstance(
            self.binary,
            self.setup_commands(elf, terminal_port),
            terminal_port,
            description=f"Renode of target {where}",
            start_timeout=context.timeouts.boot,
            command_timeout=context.timeouts.request,
            cpu=desc.options.get("cpu", "sysbus.cpu"),
            extra_args=desc.options.get("renode_args", ()),
        )
        try:
            renode.start()
        except RenodeError as exc:
            raise TargetError(str(exc)) from exc
        protocol = None
        try:
            spec = desc.protocol or {"type": "uart"}
            params = inline_entry(spec, f"{desc.source}: key 'protocol'")["parameters"]
            params["port"] = renode.url
            params.setdefault("timeout", context.timeouts.request)
            params.setdefault("process_timeout", context.timeouts.request)
            # the firmware boots in Renode's virtual time, which a loaded host slows down:
            # keep PINGing (1 s each) for as long as the boot timeout allows
            params.setdefault("connect_attempts", max(5, int(context.timeouts.boot)))
            label = f"{where} (Renode pid {renode.pid}, {renode.url})"
            protocol = RenodeUARTProtocol.from_json(
                params, label=label, count_instructions=self.counts_instructions,
                icount_shift=0, board=renode)
            protocol.initialize_client()
            yield TargetSession(
                desc.name,
                instance,
                protocol,
                info={
                    "board": self.board,
                    "setup": str(self.setup_file()),
                    "firmware": str(elf),
                    "url": renode.url,
                    "pid": renode.pid,
                    "timing": "instructions" if self.counts_instructions else desc.timing,
                },
                handle=renode,
            )
        finally:
            if protocol is not None and renode.running:
                try:
                    protocol.disconnect()
                except KenningHILError:  # Renode is quit next anyway
                    pass
            elif protocol is not None and protocol.channel is not None:
                protocol.channel.close()
            renode.stop()

    def model_memory(self) -> int | None:
        """The description's `memory.ram`, else the firmware build's ML_REGION_SIZE."""
        from kenning_hil.sim.firmware_ops import board_region_size

        return self.description.ram or board_region_size(self.board)

    def alive(self, session: TargetSession) -> bool:
        return session.protocol.connected and session.handle.running

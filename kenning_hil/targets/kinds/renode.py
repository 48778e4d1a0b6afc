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
(The session, the firmware and the keys every simulated board has: kinds/_simulated_board.py,
shared with kind qemu.)

Timing: at ``PerformanceInMips 1000`` one instruction takes one nanosecond of Renode's
virtual time, as under QEMU's ``-icount shift=0``, so the firmware's timer counts
instructions and reports one count per inference (``target_inference_instructions``, like
qemu). Renode's own counter of the CPU (``sysbus.cpu ExecutedInstructions``) is read around
every PROCESS request and reported beside it (``renode_executed_instructions``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError
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
from kenning_hil.targets.kinds import OpenContext
from kenning_hil.targets.kinds._simulated_board import SimulatedBoardKind, resolve_file


class RenodeKind(SimulatedBoardKind):
    name = "renode"
    summary = "a board simulated by Renode running the reference firmware, UART over TCP"
    simulator = "Renode"
    board_key = "board"
    protocol_class = RenodeUARTProtocol
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
        super().check(description)

    # -- configuration ----------------------------------------------------------------------

    @property
    def board(self) -> str:
        return self.board_name

    @property
    def binary(self) -> str:
        return renode_binary(self.description.options.get("renode"))

    def setup_file(self) -> Path:
        """The .repl or .resc that sets the board up."""
        key = "platform" if "platform" in self.description.options else "script"
        return resolve_file(self.description, self.description.options[key])

    def availability(self) -> tuple[bool, str]:
        binary = self.binary
        if shutil.which(binary) is None:
            if binary == "renode":
                return False, NOT_FOUND
            return False, f"{binary} not found ({NOT_FOUND})"
        setup = self.setup_file()
        if not setup.is_file():
            return False, f"{setup} not found"
        usable, note = self.firmware_availability()
        if not usable:
            return False, note
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

    def simulator_process(self, elf: Path, where: str, context: OpenContext) -> RenodeInstance:
        terminal_port = free_port()
        opts = self.description.options
        return RenodeInstance(
            self.binary,
            self.setup_commands(elf, terminal_port),
            terminal_port,
            description=f"Renode of target {where}",
            start_timeout=context.timeouts.boot,
            command_timeout=context.timeouts.request,
            cpu=opts.get("cpu", "sysbus.cpu"),
            extra_args=opts.get("renode_args", ()),
        )

    def start_error(self, where: str, error: RenodeError) -> str:
        return str(error)  # the RenodeInstance's description names the target already

    def protocol_defaults(self, params: dict, context: OpenContext) -> None:
        super().protocol_defaults(params, context)
        # the firmware boots in Renode's virtual time, which a loaded host slows down:
        # keep PINGing (1 s each) for as long as the boot timeout allows
        params.setdefault("connect_attempts", max(5, int(context.timeouts.boot)))

    def session_info(self, elf: Path, board: RenodeInstance) -> dict:
        return {"board": self.board, "setup": str(self.setup_file()),
                **super().session_info(elf, board)}

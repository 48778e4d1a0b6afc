"""What the simulated-board kinds (qemu, renode) share: a simulator process running the
reference firmware (sim/process.py), reached over the board's UART.

A subclass names its firmware board's key (`board_key`) and makes its simulator
(`simulator_process`); this base checks the keys every simulated board has, finds and builds
the firmware ELF (once per process), and opens a session: start the simulator, connect the
UART protocol, and at the end disconnect and stop it, whatever happened.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from kenning_hil.blocks.entries import inline_entry
from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.sim.firmware_build import (
    ELF_NAME,
    TOOLCHAIN,
    TOOLCHAIN_PACKAGES,
    FirmwareBuildError,
    boards,
    build_dir_board,
    build_firmware,
    build_root,
    default_elf,
)
from kenning_hil.sim.process import SimulatorProcess
from kenning_hil.sim.qemu_uart import QemuUARTProtocol
from kenning_hil.targets.errors import TargetError
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)

# ELFs built (or brought up to date) by this process: make runs once per ELF and process
_built_this_process: set[Path] = set()


class SimulatedBoardKind(TargetKind):
    """Base of the kinds whose board is a simulator process running the reference firmware."""

    simulator: ClassVar[str] = ""  # "QEMU", "Renode": in messages
    board_key: ClassVar[str] = ""  # the key naming the firmware board: "machine", "board"
    protocol_class: ClassVar[type[QemuUARTProtocol]] = QemuUARTProtocol
    private_sessions = True
    runtime_meaning = RuntimeMeaning.FIRMWARE  # the firmware runs the model

    @classmethod
    def check(cls, description) -> None:
        opts, source = description.options, description.source
        if "firmware" not in opts and opts[cls.board_key] not in boards():
            raise ConfigurationError(
                f"{source}: key 'firmware' is needed: there is no reference firmware board "
                f"named '{opts[cls.board_key]}' (boards: {', '.join(boards())})"
            )
        if "firmware" in opts:
            _check_firmware_board(description, cls.board_key, resolve_firmware(description,
                                                                                cls.board_key))
        if isinstance(description.instances, list):
            raise ConfigurationError(
                f"{source}: key 'instances' of a {cls.name} target is a number of "
                f"simultaneous boards, got a list"
            )
        cls.check_uart_protocol(description, f"{cls.simulator} exposes the board's UART")

    # -- configuration ----------------------------------------------------------------------

    @property
    def board_name(self) -> str:
        """The firmware board the simulated board runs the build of."""
        return self.description.options[self.board_key]

    @property
    def icount_shift(self) -> int | None:
        """log2 of the simulator's virtual nanoseconds per instruction (None: not fixed)."""
        return 0

    @property
    def counts_instructions(self) -> bool:
        return self.description.timing in (None, "instructions")

    def firmware_path(self) -> Path:
        """The ELF: by default the reference firmware's build for the board; an absolute
        path, else the first of (this file's directory, the current directory) that has it,
        else the one a build would make."""
        return resolve_firmware(self.description, self.board_key)

    def _why_not_buildable(self, elf: Path) -> str | None:
        if _build_dir(elf) is None:
            return f"it is not a firmware build output ({build_root()}/<dir>/{ELF_NAME})"
        if self.board_name not in boards():
            return f"there is no firmware board named '{self.board_name}'"
        for tool, package in ((TOOLCHAIN, TOOLCHAIN_PACKAGES), ("make", "make")):
            if shutil.which(tool) is None:
                return f"{tool} not found (Debian: {package})"
        return None

    def firmware_availability(self) -> tuple[bool, str]:
        """(the firmware can be had, "" or a note that it is built on first use; else why
        not)."""
        elf = self.firmware_path()
        if elf.is_file():
            return True, ""
        why = self._why_not_buildable(elf)
        if why is not None:
            return False, f"firmware {elf} not found and cannot be built: {why}"
        return True, ", firmware built on first use"

    def model_memory(self) -> int | None:
        """The description's `memory.ram`, else the firmware build's ML_REGION_SIZE for the
        board (what the reference firmware gives the model and its arena)."""
        from kenning_hil.sim.firmware_ops import board_region_size

        return self.description.ram or board_region_size(self.board_name)

    # -- sessions ---------------------------------------------------------------------------

    def ensure_firmware(self) -> Path:
        """The ELF, built (or brought up to date) once per process when it is a build output
        and the toolchain is here; TargetError naming the target when it cannot be had."""
        elf = self.firmware_path()
        if elf in _built_this_process:
            return elf
        why = self._why_not_buildable(elf)
        if why is None:
            try:
                build_firmware(self.board_name, build_dir=_build_dir(elf))
            except FirmwareBuildError as exc:
                # the firmware under test is broken, not the lab: no infrastructure category
                raise TargetError(f"target '{self.description.name}': {exc}", "") from exc
            _built_this_process.add(elf)
        elif not elf.is_file():
            raise TargetError(
                f"target '{self.description.name}': firmware {elf} not found and cannot be "
                f"built: {why}", ""
            )
        return elf

    def simulator_process(self, elf: Path, where: str, context: OpenContext) -> SimulatorProcess:
        """The simulator of one session (not started), running `elf`; `where` names the
        target and instance."""
        raise NotImplementedError

    def start_error(self, where: str, error: KenningHILError) -> str:
        """The message of a simulator that did not start."""
        return f"target {where}: {error}"

    def session_label(self, where: str, board: SimulatorProcess) -> str:
        """How the session is named in every protocol error."""
        return f"{where} ({self.simulator} pid {board.pid}, {board.url})"

    def protocol_defaults(self, params: dict, context: OpenContext) -> None:
        """Sets the protocol parameters this simulator needs unless the description does."""
        params.setdefault("timeout", context.timeouts.request)
        params.setdefault("process_timeout", context.timeouts.request)

    def session_info(self, elf: Path, board: SimulatorProcess) -> dict:
        """What the session reports about the board (TargetSession.info)."""
        return {
            "firmware": str(elf),
            "url": board.url,
            "pid": board.pid,
            "timing": "instructions" if self.counts_instructions else self.description.timing,
        }

    def _protocol(self, label: str, board: SimulatorProcess,
                  context: OpenContext) -> QemuUARTProtocol:
        desc = self.description
        spec = desc.protocol or {"type": "uart"}
        params = inline_entry(spec, f"{desc.source}: key 'protocol'")["parameters"]
        params["port"] = board.url
        self.protocol_defaults(params, context)
        try:
            return self.protocol_class.from_json(
                params,
                label=label,
                count_instructions=self.counts_instructions,
                icount_shift=self.icount_shift or 0,
                board=board,  # the transport reports the simulator's exit
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"{desc.source}: key 'protocol': {exc}") from exc

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        desc = self.description
        if context.progress is None:
            elf = self.ensure_firmware()
        else:
            with context.progress.phase(f"build firmware for {self.board_name}"):
                elf = self.ensure_firmware()
        where = f"'{desc.name}' instance {instance.name}"
        board = self.simulator_process(elf, where, context)
        try:
            board.start()
        except board.error as exc:
            raise TargetError(self.start_error(where, exc)) from exc
        protocol = None
        try:
            protocol = self._protocol(self.session_label(where, board), board, context)
            protocol.initialize_client()
            yield TargetSession(desc.name, instance, protocol,
                                info=self.session_info(elf, board), handle=board)
        finally:
            if protocol is not None and board.running:
                try:
                    protocol.disconnect()
                except KenningHILError:  # the board is stopped next anyway
                    pass
            elif protocol is not None and protocol.channel is not None:
                protocol.channel.close()
            board.stop()

    def alive(self, session: TargetSession) -> bool:
        """Whether the simulator behind `session` still runs (a dead one is not reused)."""
        return session.protocol.connected and session.handle.running


def _build_dir(elf: Path) -> Path | None:
    """The build folder of `elf` when it is `<build root>/<dir>/kenning-hil.elf` (the
    checkout's firmware/build, or the user cache's build of the packaged sources)."""
    if elf.name == ELF_NAME and elf.parent.parent == build_root():
        return elf.parent
    return None


def resolve_file(description, given: str) -> Path:
    """A file a description names: an absolute path, else the first of (the file's
    directory, the current directory) that has it, else the first that is a firmware build
    output (a build makes it), else the one in the file's directory."""
    path = Path(given).expanduser()
    if path.is_absolute():
        return path
    candidates = [Path(description.source).parent / path, Path.cwd() / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    for candidate in candidates:
        if _build_dir(candidate.resolve()) is not None:
            return candidate.resolve()
    return candidates[0].resolve()


def resolve_firmware(description, board_key: str) -> Path:
    """The ELF of a description: its `firmware` key (`resolve_file`), by default the
    reference firmware's build for the board named by `board_key`."""
    given = description.options.get("firmware")
    if given is None:
        return default_elf(description.options[board_key])
    return resolve_file(description, given)


def _check_firmware_board(description, board_key: str, elf: Path) -> None:
    """ConfigurationError naming both boards when `elf` is a build output of another board
    than the target's: running it would be the wrong CPU, and rebuilding it for the target's
    board would overwrite that board's firmware."""
    folder = _build_dir(elf)
    if folder is None:
        return
    board = description.options[board_key]
    owner = build_dir_board(folder)
    if owner is None or owner == board:
        return
    if owner == "":
        problem = f"is in build folder '{folder.name}', which is named after no board"
    else:
        problem = f"is the firmware of board '{owner}'"
    raise ConfigurationError(
        f"{description.source}: key 'firmware': {elf} {problem}, but this target's "
        f"{board_key} is '{board}' (a build folder holds one board's firmware: use "
        f"{default_elf(board)}, or leave 'firmware' out)"
    )

"""`kind: qemu`: a simulated Cortex-M board, `qemu-system-arm` running the reference firmware,
reached over its UART on a loopback TCP socket.

Every test process starts its own QEMU per pool instance it holds (`private_sessions`), so a
pool of N means at most N boards busy at once. The firmware ELF is built on first use with
``make -C <firmware sources> BOARD=<machine>`` when the Arm toolchain is there, into the
checkout's firmware/build or, installed, the user cache (sim/firmware_build; make is
incremental, and parallel workers share a file lock, so it builds once). A QEMU that dies during a
session fails the test with an error naming the target and QEMU's exit code; the session is
then closed, so the next test boots a fresh QEMU.

Timing: QEMU runs with ``-icount shift=S`` (default 0), so each guest instruction advances
the virtual clock by 2**S ns and the firmware's timer counts instructions. The firmware
reports the count of its last inference in STATS; this kind asks for STATS after every
inference and hands the run one count per inference (``target_inference_instructions``,
already divided by 2**S), so latency statistics of a QEMU target are instruction counts.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

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
from kenning_hil.sim.qemu import DEFAULT_QEMU, QemuError, QemuInstance
from kenning_hil.sim.qemu_uart import QemuUARTProtocol
from kenning_hil.targets.errors import TargetError
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)

QEMU_PACKAGE = "qemu-system-arm"


@cache
def _qemu_machines(binary: str) -> frozenset[str]:
    """Machine names `binary -M help` lists (empty when it cannot be run)."""
    try:
        done = subprocess.run(
            [binary, "-M", "help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(
        line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()
    )


_built_this_process: set[Path] = set()


class QemuKind(TargetKind):
    name = "qemu"
    summary = "a simulated board: qemu-system-arm running the reference firmware, UART over TCP"
    properties = {
        "machine": {"type": "string", "description": "QEMU machine (-M), e.g. mps2-an386"},
        "firmware": {
            "type": "string",
            "description": "firmware ELF, relative to this file's directory or the current "
            "directory (default: the reference firmware built for the machine, on first use)",
        },
        "icount": {
            "description": "-icount shift (each instruction takes 2**shift ns of virtual "
            "time; default 0), or false to run without -icount",
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": 10}, {"const": False}],
        },
        "qemu": {"type": "string", "description": "QEMU binary (default qemu-system-arm)"},
        "qemu_args": {
            "type": "array",
            "items": {"type": "string"},
            "description": "extra qemu-system-arm arguments",
        },
    }
    required = ("machine",)
    private_sessions = True
    runtime_meaning = RuntimeMeaning.FIRMWARE  # the firmware runs the model

    @classmethod
    def check(cls, description) -> None:
        opts = description.options
        if "firmware" not in opts and opts["machine"] not in boards():
            raise ConfigurationError(
                f"{description.source}: key 'firmware' is needed: there is no reference "
                f"firmware board named '{opts['machine']}' (boards: {', '.join(boards())})"
            )
        if "firmware" in opts:
            _check_firmware_board(description, _resolve_firmware(description))
        if opts.get("icount", 0) is False and description.timing == "instructions":
            raise ConfigurationError(
                f"{description.source}: 'timing: instructions' needs -icount (key 'icount' is "
                f"false): without it the firmware's timer measures host time, not instructions"
            )
        if isinstance(description.instances, list):
            raise ConfigurationError(
                f"{description.source}: key 'instances' of a qemu target is a number of "
                f"simultaneous boards, got a list"
            )
        protocol = description.protocol or {"type": "uart"}
        if protocol.get("type") != "uart":
            raise ConfigurationError(
                f"{description.source}: key 'protocol.type' must be 'uart' for a qemu target "
                f"(QEMU exposes the board's UART), got {protocol.get('type')!r}"
            )

    # -- configuration ----------------------------------------------------------------------

    @property
    def machine(self) -> str:
        return self.description.options["machine"]

    @property
    def icount_shift(self) -> int | None:
        shift = self.description.options.get("icount", 0)
        return None if shift is False else int(shift)

    @property
    def qemu_binary(self) -> str:
        return self.description.options.get("qemu", DEFAULT_QEMU)

    @property
    def counts_instructions(self) -> bool:
        timing = self.description.timing
        return self.icount_shift is not None and timing in (None, "instructions")

    def firmware_path(self) -> Path:
        """The ELF: by default the reference firmware's build for the machine; an absolute
        path, else the first of (this file's directory, the current directory) that has it,
        else the one a build would make."""
        return _resolve_firmware(self.description)

    def _why_not_buildable(self, elf: Path) -> str | None:
        if _build_dir(elf) is None:
            return f"it is not a firmware build output ({build_root()}/<dir>/{ELF_NAME})"
        if self.machine not in boards():
            return f"there is no firmware board named '{self.machine}'"
        for tool, package in ((TOOLCHAIN, TOOLCHAIN_PACKAGES), ("make", "make")):
            if shutil.which(tool) is None:
                return f"{tool} not found (Debian: {package})"
        return None

    def availability(self) -> tuple[bool, str]:
        binary = self.qemu_binary
        if shutil.which(binary) is None:
            return False, f"{binary} not found (Debian package {QEMU_PACKAGE})"
        machines = _qemu_machines(binary)
        if machines and self.machine not in machines:
            return False, f"{binary} does not emulate machine '{self.machine}'"
        elf = self.firmware_path()
        note = ""
        if not elf.is_file():
            why = self._why_not_buildable(elf)
            if why is not None:
                return False, f"firmware {elf} not found and cannot be built: {why}"
            note = ", firmware built on first use"
        return True, f"QEMU {self.machine}, up to {len(self.instances())} at once{note}"

    def describe(self) -> str:
        return f"QEMU {self.machine} running {self.firmware_path()}"

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
                build_firmware(self.machine, build_dir=_build_dir(elf))
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

    def _protocol(
        self, label: str, board: QemuInstance, context: OpenContext
    ) -> QemuUARTProtocol:
        spec = self.description.protocol or {"type": "uart"}
        where = f"{self.description.source}: key 'protocol'"
        params = inline_entry(spec, where)["parameters"]
        params["port"] = board.url
        params.setdefault("timeout", context.timeouts.request)
        params.setdefault("process_timeout", context.timeouts.request)
        try:
            return QemuUARTProtocol.from_json(
                params,
                label=label,
                count_instructions=self.counts_instructions,
                icount_shift=self.icount_shift or 0,
                board=board,  # the transport reports QEMU's exit
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"{self.description.source}: key 'protocol': {exc}") from exc

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        desc = self.description
        if context.progress is None:
            elf = self.ensure_firmware()
        else:
            with context.progress.phase(f"build firmware for {self.machine}"):
                elf = self.ensure_firmware()
        qemu = QemuInstance(
            self.machine,
            elf,
            icount_shift=self.icount_shift,
            qemu_binary=self.qemu_binary,
            extra_args=desc.options.get("qemu_args", ()),
            start_timeout=context.timeouts.boot,
        )
        where = f"'{desc.name}' instance {instance.name}"
        try:
            qemu.start()
        except QemuError as exc:
            raise TargetError(f"target {where}: {exc}") from exc
        protocol = None
        try:
            label = f"{where} (QEMU {self.machine}, pid {qemu.pid}, {qemu.url})"
            protocol = self._protocol(label, qemu, context)
            protocol.initialize_client()
            yield TargetSession(
                desc.name,
                instance,
                protocol,
                info={
                    "machine": self.machine,
                    "firmware": str(elf),
                    "url": qemu.url,
                    "pid": qemu.pid,
                    "icount_shift": self.icount_shift,
                    "timing": "instructions" if self.counts_instructions else desc.timing,
                },
                handle=qemu,
            )
        finally:
            if protocol is not None and qemu.running:
                try:
                    protocol.disconnect()
                except KenningHILError:  # the board is stopped next anyway
                    pass
            elif protocol is not None and protocol.channel is not None:
                protocol.channel.close()
            qemu.stop()

    def model_memory(self) -> int | None:
        """The description's `memory.ram`, else the firmware build's ML_REGION_SIZE for the
        machine (what the reference firmware gives the model and its arena)."""
        from kenning_hil.sim.firmware_ops import board_region_size

        return self.description.ram or board_region_size(self.machine)

    def alive(self, session: TargetSession) -> bool:
        """Whether the QEMU behind `session` still runs (a dead one is not reused)."""
        return session.protocol.connected and session.handle.running


def _build_dir(elf: Path) -> Path | None:
    """The build folder of `elf` when it is `<build root>/<dir>/kenning-hil.elf` (the
    checkout's firmware/build, or the user cache's build of the packaged sources)."""
    if elf.name == ELF_NAME and elf.parent.parent == build_root():
        return elf.parent
    return None


def _resolve_firmware(description) -> Path:
    """The ELF of a description: by default the reference firmware's build for the machine;
    an absolute path, else the first of (the file's directory, the current directory) that
    has it, else the one a build would make."""
    given = description.options.get("firmware")
    if given is None:
        return default_elf(description.options["machine"])
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


def _check_firmware_board(description, elf: Path) -> None:
    """ConfigurationError naming both boards when `elf` is a build output of another board
    than the target's machine: running it would be the wrong CPU, and rebuilding it for the
    machine would overwrite that board's firmware."""
    folder = _build_dir(elf)
    if folder is None:
        return
    machine = description.options["machine"]
    owner = build_dir_board(folder)
    if owner is None or owner == machine:
        return
    if owner == "":
        problem = f"is in build folder '{folder.name}', which is named after no board"
    else:
        problem = f"is the firmware of board '{owner}'"
    raise ConfigurationError(
        f"{description.source}: key 'firmware': {elf} {problem}, but this target's machine "
        f"is '{machine}' (a build folder holds one board's firmware: use "
        f"{default_elf(machine)}, or leave 'firmware' out)"
    )

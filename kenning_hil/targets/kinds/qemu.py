"""`kind: qemu`: a simulated Cortex-M board, `qemu-system-arm` running the reference firmware,
reached over its UART on a loopback TCP socket.

Every test process starts its own QEMU per pool instance it holds (`private_sessions`), so a
pool of N means at most N boards busy at once. The firmware ELF is built on first use with
``make -C <firmware sources> BOARD=<machine>`` when the Arm toolchain is there, into the
checkout's firmware/build or, installed, the user cache (sim/firmware_build; make is
incremental, and parallel workers share a file lock, so it builds once). A QEMU that dies during a
session fails the test with an error naming the target and QEMU's exit code; the session is
then closed, so the next test boots a fresh QEMU. (The session, the firmware and the keys
every simulated board has: kinds/_simulated_board.py, shared with kind renode.)

Timing: QEMU runs with ``-icount shift=S`` (default 0), so each guest instruction advances
the virtual clock by 2**S ns and the firmware's timer counts instructions. The firmware
reports the count of its last inference in STATS; this kind asks for STATS after every
inference and hands the run one count per inference (``target_inference_instructions``,
already divided by 2**S), so latency statistics of a QEMU target are instruction counts.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.sim.qemu import DEFAULT_QEMU, QemuInstance
from kenning_hil.targets.kinds import OpenContext
from kenning_hil.targets.kinds._simulated_board import SimulatedBoardKind

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


class QemuKind(SimulatedBoardKind):
    name = "qemu"
    summary = "a simulated board: qemu-system-arm running the reference firmware, UART over TCP"
    simulator = "QEMU"
    board_key = "machine"  # a firmware board is named after its QEMU machine
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

    @classmethod
    def check(cls, description) -> None:
        if description.options.get("icount", 0) is False and description.timing == "instructions":
            raise ConfigurationError(
                f"{description.source}: 'timing: instructions' needs -icount (key 'icount' is "
                f"false): without it the firmware's timer measures host time, not instructions"
            )
        super().check(description)

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
        return self.icount_shift is not None and super().counts_instructions

    def availability(self) -> tuple[bool, str]:
        binary = self.qemu_binary
        if shutil.which(binary) is None:
            return False, f"{binary} not found (Debian package {QEMU_PACKAGE})"
        machines = _qemu_machines(binary)
        if machines and self.machine not in machines:
            return False, f"{binary} does not emulate machine '{self.machine}'"
        usable, note = self.firmware_availability()
        if not usable:
            return False, note
        return True, f"QEMU {self.machine}, up to {len(self.instances())} at once{note}"

    def describe(self) -> str:
        return f"QEMU {self.machine} running {self.firmware_path()}"

    # -- sessions ---------------------------------------------------------------------------

    def simulator_process(self, elf: Path, where: str, context: OpenContext) -> QemuInstance:
        return QemuInstance(
            self.machine,
            elf,
            icount_shift=self.icount_shift,
            qemu_binary=self.qemu_binary,
            extra_args=self.description.options.get("qemu_args", ()),
            start_timeout=context.timeouts.boot,
        )

    def session_label(self, where: str, board: QemuInstance) -> str:
        return f"{where} (QEMU {self.machine}, pid {board.pid}, {board.url})"

    def session_info(self, elf: Path, board: QemuInstance) -> dict:
        return {"machine": self.machine, **super().session_info(elf, board),
                "icount_shift": self.icount_shift}

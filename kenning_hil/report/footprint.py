"""What a reader of an MLPerf Tiny result looks for beyond latency, per test: the RAM the run
took at its peak (the uploaded model plus the tensor arena's peak) against the target's RAM,
the firmware's code against its flash, and whether the outputs were bit-exact with the
reference target (differential runs). Read from a test's result file and the target's
description; absent where the target does not report it (host runtimes have no arena peak,
nor a RAM or flash size)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kenning_hil.core.measurements import PEAK_ALLOCATED


@dataclass
class Footprint:
    arena_peak: int | None = None  # the tensor arena's peak use (firmware STATS)
    ram_used: int | None = None  # model + arena peak: what the ML region held at most
    ram_limit: int | None = None  # the target's RAM (its description's memory.ram)
    code_size: int | None = None  # the firmware image (loadable ELF segments)
    flash_limit: int | None = None  # the target's flash (memory.flash)
    bit_exact: str | None = None  # "50/50 vs host-litert-ref": samples equal to the reference


def read_footprint(record: dict[str, Any], ram: int | None = None,
                   flash: int | None = None) -> Footprint:
    """The footprint of one result record (`Harness.write`) on a target with `ram` and
    `flash` bytes (None: unknown)."""
    found = Footprint(ram_limit=ram, flash_limit=flash)
    peak = record.get("ram")
    if peak is None:
        value = (record.get("measurements") or {}).get(PEAK_ALLOCATED)
        peak = max(value) if isinstance(value, list) and value else value
    if isinstance(peak, (int, float)):
        found.arena_peak = int(peak)
        model = record.get("compiled_size")
        if isinstance(model, (int, float)):
            found.ram_used = int(model) + found.arena_peak
    firmware = (record.get("session") or {}).get("firmware")
    if firmware:
        from kenning_hil.sim.elf_arch import image_size

        found.code_size = image_size(Path(firmware))
    comparison = record.get("comparison")
    if isinstance(comparison, dict) and comparison.get("samples"):
        found.bit_exact = (f"{comparison.get('exact_samples', 0)}/{comparison['samples']} vs "
                           f"{comparison.get('reference', '?')}")
    return found


def footprint_of_file(path: Path, ram: int | None = None,
                      flash: int | None = None) -> Footprint | None:
    """`read_footprint` of a result file; None when it cannot be read (the row stays)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return read_footprint(record, ram, flash) if isinstance(record, dict) else None


def size_text(value: int) -> str:
    """Bytes in KiB / MiB, the units target descriptions give memory in (memory.ram: 3.5MiB)."""
    for prefix, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}"
    return f"{value} B"


def of_limit(value: int | None, limit: int | None) -> str | None:
    """"74.3 KiB of 3.5 MiB (2%)", "74.3 KiB" without a limit, None without a value."""
    if value is None:
        return None
    if not limit:
        return size_text(value)
    return f"{size_text(value)} of {size_text(limit)} ({value / limit:.0%})"

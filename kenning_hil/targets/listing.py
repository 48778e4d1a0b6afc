"""`kenning-hil targets`: every known target and whether it can be used from this machine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from kenning_hil.core.errors import KenningHILError
from kenning_hil.targets.catalog import TargetCatalog
from kenning_hil.targets.target import Target


@dataclass
class TargetRow:
    name: str
    kind: str
    runtime: str
    instances: int
    available: bool
    reason: str
    source: str
    valid: bool = True  # False: the description itself is wrong (the reason says how)


def invalid_rows(rows: Sequence[TargetRow]) -> list[TargetRow]:
    """The rows of target files that are not valid descriptions (not merely unavailable
    here): what makes `kenning-hil targets` exit non-zero, so CI can gate on them."""
    return [r for r in rows if not r.valid]


def target_rows(catalog: TargetCatalog) -> list[TargetRow]:
    """One row per target; an invalid description is a row with its error as the reason."""
    rows = []
    for entry in catalog.entries():
        if entry.description is None:
            rows.append(TargetRow(entry.name, "?", "?", 0, False, entry.error, entry.source,
                                  valid=False))
            continue
        desc = entry.description
        try:
            target = Target(desc)
            available, reason = target.availability()
            count = len(target.instances())
        except KenningHILError as exc:
            available, reason, count = False, str(exc), 0
        rows.append(
            TargetRow(desc.name, desc.kind, desc.runtime or "-", count, available, reason,
                      entry.source)
        )
    return rows


def format_rows(rows: Sequence[TargetRow]) -> str:
    headers = ("TARGET", "KIND", "RUNTIME", "POOL", "AVAILABLE", "WHY / SOURCE")
    table = [
        (r.name, r.kind, r.runtime, str(r.instances), "yes" if r.available else "no",
         f"{r.reason} ({r.source})")
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
    lines = []
    for row in [headers, *table]:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def rows_as_json(rows: Sequence[TargetRow]) -> list[dict]:
    return [asdict(r) for r in rows]

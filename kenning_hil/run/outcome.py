"""The outcome policy both faces share: what skips, what fails, and how it is said."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kenning_hil.core.errors import KenningHILError
from kenning_hil.run.results import Result


class Incompatible(KenningHILError):
    """The model cannot run on the target (format not accepted, too large): a skip, not a
    failure."""


BASELINE_STATUSES = ("written", "compared", "regressed", "missing")


def baseline_summary(statuses: Sequence[str], directory: Path | None) -> str:
    """One line on what a run did with its baselines: "baselines (dir): 2 compared, 1
    regressed"; empty when the run had none."""
    counts = [(status, statuses.count(status)) for status in BASELINE_STATUSES]
    parts = [f"{n} {status}" for status, n in counts if n]
    if not parts:
        return ""
    return f"baselines ({directory}): {', '.join(parts)}"


def failure_message(result: Result, failures: Sequence[str]) -> str:
    """What a failed test says (both faces): which model, chain and target, each failed
    check on its own line, and where the results are."""
    chain = " + ".join(o["type"] for o in result.optimizers) or "no optimizer"
    head = f"{result.model} ({chain}) on {result.target}: {len(failures)} check(s) failed"
    return "\n".join([head, *("  - " + f for f in failures), f"  results: {result.path}"])


def failure_reason(message: str) -> str:
    """The one-line reason of a failure message for tables: its first line, and for check
    failures the first failed check too."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and "check(s) failed" in lines[0]:
        return " ".join(lines[:2])
    return lines[0] if lines else ""

"""The outcome policy both faces share: what skips, what fails, and how it is said."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kenning_hil.core.errors import KenningHILError
from kenning_hil.run.results import Result


class Incompatible(KenningHILError):
    """The model cannot run on the target (format not accepted, too large): a skip, not a
    failure. `check` names what refused it ("formats", "memory"), so combinations refused at
    collection can be counted by reason."""

    def __init__(self, message: str, check: str = "formats"):
        super().__init__(message)
        self.check = check


class NothingMeasured(KenningHILError):
    """A run ended without measuring a sample: an error, never a pass (a dataset that
    selects none is refused before the run, `Dataset.check_not_empty`; this is the guard
    for one whose iteration gave nothing)."""


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


INFRASTRUCTURE_CATEGORIES = {
    "emulator": "the emulator died",
    "flash": "flashing the firmware failed",
    "boot": "the board did not start (emulator, server, reset command)",
    "lock": "no free board within the lock timeout",
    "timeout": "the board stopped answering",
    "connection": "the connection to the board was lost or could not be opened",
}
"""What an infrastructure error category means: a broken board or lab, not a regressed
model. Both faces report these as errors (pytest: E), never as failed checks."""


def infrastructure_category(error: BaseException | None) -> str | None:
    """The infrastructure category (`INFRASTRUCTURE_CATEGORIES`) of `error` or of the errors
    it was raised from, or None for everything else (a model or a check is at fault). When
    the chain holds several, the cause beats its symptom: an emulator that died, a failed
    flash or boot, a lock timeout over the lost connection or timeout they led to.

    Errors carry their category as an ``infrastructure`` attribute: TargetError (boot, flash,
    lock), ConnectionLostError (connection; emulator when QEMU died), RequestTimeoutError."""
    found: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        category = getattr(error, "infrastructure", None)
        if isinstance(category, str) and category:
            found.append(category)
        error = error.__cause__
    if not found:
        return None
    order = list(INFRASTRUCTURE_CATEGORIES)  # causes first, symptoms last
    return min(found, key=lambda c: order.index(c) if c in order else len(order))


def infrastructure_message(category: str, message: str) -> str:
    """How an infrastructure error reads in both faces: the category first, so that a lab
    tells a broken board from a regressed model at a glance."""
    return f"infrastructure error ({category}): {message}"

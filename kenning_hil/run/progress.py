"""Progress of long work (compiling, firmware builds, model uploads, dataset runs).

The faces decide how it shows: a tqdm bar with rate and ETA on a terminal, one line per
finished phase where output is a log (not a terminal, or a pytest-xdist worker), or nothing
(``--no-progress`` / ``hil_progress = false``). The library below only calls back: a
`Phase` is a context manager whose `update_to(done)` the work calls as it goes (from any
thread), so protocols and kinds never import tqdm or know where the output goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

BAR = "bar"
LINES = "lines"
OFF = "off"
MODES = (BAR, LINES, OFF)

# a phase that ends sooner is not "long work": no line for it (an up-to-date firmware
# build, a cached compile), so a log holds the phases that cost time
MIN_LINE_SECONDS = 0.5


class Progress:
    """Where phases report: `mode` is bar, lines or off; `stream` gets the output, through
    `write` when given (the pytest face writes past its output capture)."""

    def __init__(self, mode: str = OFF, stream: TextIO | None = None,
                 write: Callable[[str], None] | None = None, leave: bool = False):
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}: expected one of {', '.join(MODES)}")
        self.mode = mode
        self.stream = stream
        self.leave = leave  # bar mode: keep the finished bar on screen (the CLI)
        self._write = write

    @classmethod
    def for_stream(cls, stream: TextIO, enabled: bool = True, log: bool = False,
                   write: Callable[[str], None] | None = None, leave: bool = False) -> Progress:
        """Bars on a terminal, lines elsewhere (and whenever `log`), nothing when not
        `enabled`."""
        if not enabled:
            return cls(OFF)
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(BAR if tty and not log else LINES, stream, write, leave)

    def write(self, text: str) -> None:
        if self._write is not None:
            self._write(text)
        elif self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def phase(self, description: str, total: float | None = None, unit: str = "B") -> Phase:
        """A phase of work: `total` in `unit` (B: bytes, shown in kB/MB), None when only its
        duration is known."""
        return Phase(self, description, total, unit)


OFF_PROGRESS = Progress(OFF)


class Phase:
    """One phase: a bar while it runs (bar mode), a line when it ends (lines mode)."""

    def __init__(self, progress: Progress, description: str, total: float | None, unit: str):
        self.progress = progress
        self.description = description
        self.total = total
        self.unit = unit
        self.done: float = 0
        self._bar: Any = None
        self._started = 0.0

    def __enter__(self) -> Phase:
        self._started = time.monotonic()
        if self.progress.mode == BAR:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, desc=self.description, unit=self.unit,
                unit_scale=self.unit == "B", unit_divisor=1000, leave=self.progress.leave,
                file=_Writer(self.progress), dynamic_ncols=True, mininterval=0.2,
                bar_format=None if self.total else "{desc}: {elapsed}",
            )
        return self

    def update_to(self, done: float) -> None:
        """The work is `done` (in the phase's unit) of its total so far."""
        done = min(done, self.total) if self.total else done
        if self._bar is not None and done > self.done:
            self._bar.update(done - self.done)
        self.done = max(self.done, done)

    def advance(self, amount: float = 1) -> None:
        self.update_to(self.done + amount)

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        elapsed = time.monotonic() - self._started
        if self._bar is not None:
            # a finished bar stays (CLI) only when the phase was long work
            self._bar.leave = self.progress.leave and elapsed >= MIN_LINE_SECONDS
            if kind is None:
                # the last update may have come within tqdm's mininterval of the draw before
                # it and not be drawn: a finished phase shows where it ended (100 %)
                self._bar.refresh()
            self._bar.close()
            return
        if self.progress.mode != LINES or elapsed < MIN_LINE_SECONDS:
            return
        self.progress.write(self.line(elapsed, failed=kind is not None) + "\n")

    def line(self, elapsed: float, failed: bool = False) -> str:
        """"upload kws to qemu-m4: 53.9 kB in 7.3 s (7.4 kB/s)"; what a failed phase got
        through, when it failed."""
        head = f"{self.description}: "
        if failed:
            head += "stopped after "
        if not self.total:
            return f"{head}{elapsed:.1f} s"
        amount = _amount(self.done, self.unit)
        if failed:
            amount += f" of {_amount(self.total, self.unit)}"
        rate = f" ({_amount(self.done / elapsed, self.unit)}/s)" if elapsed > 0 else ""
        return f"{head}{amount} in {elapsed:.1f} s{rate}"


def _amount(value: float, unit: str) -> str:
    if unit != "B":  # a count: "5 samples", "6.9 samples" (a rate)
        plural = "" if value == 1 else "s"
        return f"{value:g} {unit}{plural}" if value == int(value) else f"{value:.1f} {unit}{plural}"
    for prefix, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {prefix}B"
    return f"{value:.0f} B"


class _Writer:
    """The file tqdm draws on: the progress's own write (past pytest's capture)."""

    def __init__(self, progress: Progress):
        self._progress = progress

    def write(self, text: str) -> None:
        self._progress.write(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


class LazyPhase:
    """A phase that opens at its first report, as a callback ``(done, total)``: work that may
    not happen (an upload the session's model cache skips) shows only when it does."""

    def __init__(self, progress: Progress, description: str, unit: str = "B"):
        self.progress = progress
        self.description = description
        self.unit = unit
        self._phase: Phase | None = None

    @property
    def done(self) -> float:
        return self._phase.done if self._phase is not None else 0

    def __call__(self, done: float, total: float | None = None) -> None:
        if self._phase is None:
            self._phase = self.progress.phase(self.description, total, self.unit).__enter__()
        self._phase.update_to(done)

    def close(self, failed: bool = False) -> None:
        if self._phase is not None:
            phase, self._phase = self._phase, None
            phase.__exit__(RuntimeError if failed else None, None, None)

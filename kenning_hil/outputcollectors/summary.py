"""LiveSummaryCollector: a live one-line summary of the flow on the terminal: samples done,
rate, last class and, when labels exist, the running accuracy."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from kenning_hil.core.outputcollector import OutputCollector

_monotonic = time.monotonic  # bound once: read every step


class LiveSummaryCollector(OutputCollector):
    """Rewrites one status line (carriage return) at most every `interval` seconds, and
    ends it with a newline at cleanup."""

    arguments_structure = {
        "interval": {"description": "Seconds between updates of the line", "type": float,
                     "default": 0.5},
    }

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        interval: float = 0.5,
        stream: IO[str] | None = None,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self._start: float | None = None
        self._shown = 0.0
        self.last_line = ""

    def line(self, done: int | None = None) -> str:
        """The status line after `done` samples (default: those processed)."""
        done = self.processed if done is None else done
        elapsed = time.monotonic() - (self._start or time.monotonic())
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{done} samples", f"{rate:.1f}/s"]
        if self.last_class is not None:
            parts.append(f"last class {self.last_class}")
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy:.4f} ({self.correct}/{self.labelled})")
        return "flow: " + ", ".join(parts)

    def prepare(self) -> None:
        self._start = time.monotonic()  # the rate counts from the flow's start

    def process_output(self, input_data: Any, output_data: Any) -> None:
        now = _monotonic()
        if self._start is None:
            self._start = now
        if now - self._shown >= self.interval:
            self._shown = now
            self._show(end="", done=self.processed + 1)  # this sample included

    def _show(self, end: str, done: int | None = None) -> None:
        self.last_line = self.line(done)
        self.stream.write("\r" + self.last_line + end)
        self.stream.flush()

    def detach_from_output(self) -> None:
        if self.processed:
            self._show(end="\n")

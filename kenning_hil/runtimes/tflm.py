"""TFLMRuntime: `.tflite` models on TensorFlow Lite Micro, through the `tflite-micro` Python
package (TFLM's kernels compiled for the host: the code a microcontroller runs, minus the
board).

The tensor arena is a fixed block as on a board: `arena_size` sets it (default: TFLM's own
heuristic of 10× the model size). After the model loads, the arena bytes TFLM actually used
are read from its recording allocator and reported as `tflm_arena_used_bytes`, the figure to
size a board's arena with.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kenning_hil.core.errors import ModelLoadError, import_optional
from kenning_hil.core.measurements import (
    TFLM_ARENA_SIZE,
    TFLM_ARENA_USED,
    Measurements,
    MeasurementsCollector,
)
from kenning_hil.runtimes.tflite_common import FlatbufferRuntime

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Captures what native code writes to file descriptor 2 (TFLM reports there).

    Yields a list that holds the captured text once the block ends.
    """
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def _load_crashes(runtime, model_bytes: bytes, arena: int) -> str | None:
    """Loads the model in a forked child first; returns how the child died, or None.

    Why: with an arena a little smaller than a model needs, the `tflite-micro` package
    (0.dev2026) can segfault instead of reporting the failure (seen for the digits model at
    2744-2756 bytes), which would kill the whole test process. A fork costs milliseconds.
    """
    if not hasattr(os, "fork"):
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child: load, then leave without running any Python cleanup
        status = 0
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
        except BaseException:  # noqa: BLE001 - any load failure is reported by the parent
            status = 1
        os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return None


class TFLMRuntime(FlatbufferRuntime):
    """Runs `.tflite` models with TensorFlow Lite Micro's kernels in a fixed tensor arena."""

    arguments_structure = {
        "arena_size": {
            "description": "Tensor arena bytes (None: TFLM's default of 10x the model size)",
            "type": int,
            "nullable": True,
            "default": None,
        },
    }

    def __init__(self, protocol=None, disable_performance_measurements: bool = False,
                 save_model_path: Path | None = None,
                 model_path: Path | None = None, arena_size: int | None = None):
        super().__init__(protocol, disable_performance_measurements, save_model_path,
                         model_path)
        if arena_size is not None and arena_size <= 0:
            raise ModelLoadError(f"TFLMRuntime: arena_size must be positive, got {arena_size}")
        self.arena_size = arena_size
        self.arena_used_bytes: int | None = None
        self.interpreter = None

    def _load(self, model_bytes: bytes) -> None:
        runtime = import_optional("tflite_micro", "tflm", "the TFLite Micro runtime").runtime
        arena = self.arena_size if self.arena_size is not None else len(model_bytes) * 10
        crash = _load_crashes(runtime, model_bytes, arena)
        if crash:
            raise ModelLoadError(
                f"{self._source_name()}: TFLite Micro crashed ({crash}) loading the model into "
                f"a {arena}-byte arena; arenas just below the size a model needs can crash the "
                "tflite-micro Python package: give a larger arena_size"
            )
        with captured_native_stderr() as log:
            try:
                self.interpreter = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena)
            except RuntimeError as exc:
                failure = exc
            else:
                failure = None
        if failure is not None:
            detail = " ".join(line.strip() for line in log[0].splitlines() if line.strip())
            raise ModelLoadError(
                f"{self._source_name()}: TFLite Micro cannot load the model: {failure}"
                + (f" ({detail[:300]})" if detail else "") + f" [arena {arena} bytes]"
            ) from failure
        info = self.model_info
        self._input_dtypes = [np.dtype(t.dtype) for t in info.inputs]
        self.arena_size_used_for_load = arena
        self.arena_used_bytes = self._measure_arena()
        MeasurementsCollector.measurements.initialize_measurement(TFLM_ARENA_SIZE, arena)
        if self.arena_used_bytes is not None:
            MeasurementsCollector.measurements.initialize_measurement(
                TFLM_ARENA_USED, self.arena_used_bytes
            )

    def _measure_arena(self) -> int | None:
        """Arena bytes in use, from TFLM's recording allocator report (None if not reported)."""
        with captured_native_stderr() as log:
            self.interpreter.print_allocations()
        match = _ARENA_TOTAL.search(log[0])
        return int(match.group(1)) if match else None

    def _invoke(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        interpreter = self.interpreter
        for index, array in enumerate(sample):
            interpreter.set_input(array, index)
        interpreter.invoke()
        # get_output returns a copy, so it survives the next invoke
        return [interpreter.get_output(index) for index in range(len(self.model_info.outputs))]

    def run_locally(self, dataset, modelwrapper, compiled_model_path: Path) -> Measurements:
        measurements = super().run_locally(dataset, modelwrapper, compiled_model_path)
        measurements.initialize_measurement(TFLM_ARENA_SIZE, self.arena_size_used_for_load)
        if self.arena_used_bytes is not None:
            measurements.initialize_measurement(TFLM_ARENA_USED, self.arena_used_bytes)
        return measurements

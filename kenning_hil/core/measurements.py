"""Measurements: performance and quality metrics collected during a run, their names (the
one vocabulary of keys, and where per-inference latency comes from), and how they are
gathered (decorators, a system-statistics thread), summarised (`Latency`) and saved (atomic
JSON).

Clock: every timestamp and duration here comes from ``time.perf_counter_ns()``. On Linux
that is CLOCK_MONOTONIC, so values from different processes of one machine (e.g. a test and
its local runtime server) can be compared with each other, but not with wall-clock time.

Shapes of the keys written by the decorators:

- ``timemeasurements(name)``: ``name`` -> list of durations (ns, int),
  ``name + "_timestamp"`` -> list of call start times (ns, int);
- ``tagmeasurements(name)``: ``"tags"`` -> list of ``{"name": name, "start": ns, "end": ns}``;
- ``systemstatsmeasurements(name)``: the ``name + "_*"`` keys of ``SystemStatsCollector``.

The decorators record completed calls only: a call that raises leaves no entry, since its
duration or statistics would describe a failure, not the measured operation.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError, os_reason

_MIN_FINAL_SAMPLE_NS = 10_000_000
"""A last, partial sampling interval shorter than this (10 ms, one kernel clock tick of
CPU time accounting) gives only 0 % or 100 % per core, so the collector drops it."""

# ------------------------------------------------------------------------------- names
# The measurement keys every part writes and reads: runtimes, targets and their firmware (the
# C code's STATS names cite these constants), results, judge and report.

TARGET_STEP = "target_inference_step"
"""ns per inference (or batch) timed on the target itself."""
PROTOCOL_STEP = "protocol_inference_step"
"""ns per inference, the host-timed round trip of the protocol's PROCESS request."""
TARGET_INSTRUCTIONS = "target_inference_instructions"
"""Instructions per inference, counted by a simulated board (QEMU -icount)."""
LAST_INSTRUCTIONS = "last_inference_instructions"
"""The firmware's count of its last inference only, when it is not one per inference."""
TARGET_CYCLES = "target_inference_cycles"
"""CPU cycles per inference, counted by a board that knows no clock frequency."""
WRAPPER_STEP = "inference_step"
"""ns per batch of a model wrapper's own inference (`ModelWrapper.test_inference`)."""
TIMESTAMP_SUFFIX = "_timestamp"
"""`<key>_timestamp`: start times (ns) of the values of a timed `<key>`."""
PEAK_ALLOCATED = "peak_allocated"
"""Bytes: the most the target's allocator held at once (its RAM use)."""
ARENA_SIZE = "arena_size"
"""Bytes of the firmware's tensor arena."""
MODEL_SIZE = "model_size"
"""Bytes of the model the firmware holds."""
INFERENCE_COUNT = "inference_count"
"""Inferences the firmware ran since its model was loaded."""
UART_RX_OVERRUNS = "uart_rx_overruns"
"""Bytes the firmware's UART lost because its receive buffer was full."""
COMPILED_MODEL_SIZE = "compiled_model_size"
"""Bytes of the compiled model (a file, or every file of a model directory)."""
TFLM_ARENA_USED = "tflm_arena_used_bytes"
"""Bytes of its tensor arena a TFLite Micro interpreter used (the figure to size a board's)."""
TFLM_ARENA_SIZE = "tflm_arena_size_bytes"
"""Bytes of the tensor arena a TFLite Micro interpreter was given."""
CONFUSION_MATRIX = "eval_confusion_matrix"
"""A classification's confusion matrix, [true class][predicted class] (Kenning's name)."""
SAMPLES_TOTAL = "total"
"""Samples a dataset evaluated."""
SESSION_UTILIZATION = "session_utilization"
"""Prefix of the system statistics sampled during an inference session."""

FORMAT_VERSION = "format_version"
"""Key of a measurements file's format version (absent: version 1)."""
MEASUREMENTS_FORMAT_VERSION = 2
"""Version 2 (Kenning's units): Kenning's time keys hold float seconds, their timestamps the
call's end (as Kenning's perf_counter after the call); our nanosecond figures are under the
same key + ``_ns`` (timestamps: the call's start, + ``_timestamp_ns``). Version 1 (no
`format_version`): int nanoseconds under Kenning's keys, accumulated values in one-element
lists. `measurements_file` writes version 2, `measurements_in_memory` reads both."""
NS_SUFFIX = "_ns"
KENNING_STEP_KEYS = (TARGET_STEP, PROTOCOL_STEP)
"""Kenning's duration keys we write: seconds in a file, ns in memory."""
KENNING_TIMESTAMP_KEYS = (f"{SESSION_UTILIZATION}_timestamp",
                          f"{SESSION_UTILIZATION}_gpu_timestamp")
"""Kenning's sample-time keys of the system statistics: seconds in a file, ns in memory."""
NS_PER_SECOND = 1e9

SECONDS = "s"
INSTRUCTIONS = "instructions"
CYCLES = "cycles"
COUNT_UNITS = (INSTRUCTIONS, CYCLES)
"""Units of latencies the target counts instead of timing."""


@dataclass(frozen=True)
class LatencySource:
    """A measurement that per-inference latency can come from, and its unit."""

    key: str
    unit: str  # SECONDS (the values are ns) or one of COUNT_UNITS (kept as counted)


LATENCY_SOURCES = (
    LatencySource(TARGET_STEP, SECONDS),
    LatencySource(TARGET_INSTRUCTIONS, INSTRUCTIONS),
    LatencySource(TARGET_CYCLES, CYCLES),
    LatencySource(PROTOCOL_STEP, SECONDS),
)
"""In priority order, the first one measured wins: time on the target, else a count the target
makes (instructions under QEMU, cycles on a board without a clock frequency), else the
host-timed round trip (which includes the transport)."""


class MeasurementsJSONEncoder(json.JSONEncoder):
    """JSON encoder that also writes numpy values, paths, enums, dataclasses and
    objects with a ``to_dict()`` method."""

    def default(self, o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, enum.Enum):
            return o.value
        if isinstance(o, (set, frozenset)):
            return sorted(o, key=repr)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        to_dict = getattr(o, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        return super().default(o)


def to_jsonable(value: Any) -> Any:
    """Returns `value` made of plain JSON types only (numpy values converted, tuples as lists,
    keys as strings); raises TypeError for a value JSON cannot represent."""
    # A round trip through the encoder keeps one definition of what is serialisable.
    return json.loads(json.dumps(value, cls=MeasurementsJSONEncoder))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `obj` as JSON (indent 2) to `path` with `write_text_atomic`. If serialisation
    fails, nothing is written, the existing file is left unchanged and the error propagates.
    """
    return write_text_atomic(path, json.dumps(obj, cls=MeasurementsJSONEncoder, indent=2) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` (UTF-8) to `path` so that readers see the old file or the whole new one,
    never a part: temp file in the same directory, fsync, os.replace. Parent directories are
    created; on any failure the temp file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per process and call, so concurrent writers (xdist workers) never share one.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open with mode 0o666 lets the umask decide the permissions, as for a plain open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def save_json_file(path: str | os.PathLike, obj: Any, what: str) -> Path:
    """`write_json_atomic`, with an OSError (unwritable directory, full disk) turned into a
    one-line ConfigurationError: "cannot write <what> to <path>: <reason>"."""
    try:
        return write_json_atomic(path, obj)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {what} to {path}: {os_reason(exc)}") from None


def _fsync_directory(directory: Path) -> None:
    """Makes the rename durable; best effort, as some filesystems refuse fsync on directories."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class Measurements:
    """Dict-like store of measurements: measurement type -> list of values (time series,
    per-sample results) or any other explicitly initialised value.

    Mutating methods hold a lock, so threads (a statistics collector, a runtime server) may
    record into one object concurrently.
    """

    def __init__(self, data: dict[str, Any] | None = None):
        self.data: dict[str, Any] = dict(data) if data else {}
        self._lock = threading.RLock()

    # dict-like access

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self.data[key] = value

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Measurements):
            return self.data == other.data
        if isinstance(other, dict):
            return self.data == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"Measurements({self.data!r})"

    def __getstate__(self) -> dict:
        return {"data": self.data}

    def __setstate__(self, state: dict) -> None:
        self.data = state["data"]
        self._lock = threading.RLock()

    def keys(self):
        return self.data.keys()

    def values(self):
        return self.data.values()

    def items(self):
        return self.data.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """A copy of the data made of plain JSON types (numpy scalars and arrays converted)."""
        with self._lock:
            return to_jsonable(self.data)

    # seed API

    def accumulate(
        self,
        measurementtype: str,
        valuetoadd: Any,
        initvaluefunc: Callable[[], Any] = lambda: 0,
    ) -> Any:
        """Adds `valuetoadd` to the accumulated value ``data[type]``, which the first call
        initialises with `initvaluefunc()`; returns it. As Kenning's: a bare scalar or array,
        not wrapped in a list (format_version 1 files kept a one-element list)."""
        with self._lock:
            if measurementtype not in self.data:
                self.data[measurementtype] = initvaluefunc()
            self.data[measurementtype] = self.data[measurementtype] + valuetoadd
            return self.data[measurementtype]

    def add_measurement(
        self,
        measurementtype: str,
        value: Any,
        initialvaluefunc: Callable[[], Any] = lambda: [],
    ) -> None:
        """Appends `value` to the measurement, created with `initialvaluefunc()` if absent."""
        with self._lock:
            if measurementtype not in self.data:
                self.data[measurementtype] = initialvaluefunc()
            self.data[measurementtype].append(value)

    def add_measurements_list(self, measurementtype: str, valueslist: Sequence[Any]) -> None:
        """Extends the measurement's list with `valueslist`."""
        with self._lock:
            if measurementtype not in self.data:
                self.data[measurementtype] = []
            self.data[measurementtype].extend(valueslist)

    def initialize_measurement(self, measurement_type: str, value: Any) -> None:
        """Sets the measurement to `value` (for measurements kept in something else than a
        list, e.g. a confusion matrix)."""
        with self._lock:
            self.data[measurement_type] = value

    def update_measurements(self, other: dict[str, Any] | Measurements) -> None:
        """Merges `other` in: its lists extend this object's lists of the same type (a new
        type gets a copy of the list); any other value replaces this object's value."""
        if isinstance(other, Measurements):
            with other._lock:
                other_items = list(other.data.items())
        else:
            other_items = list(other.items())
        with self._lock:
            for key, value in other_items:
                if isinstance(value, list):
                    existing = self.data.get(key)
                    if isinstance(existing, list):
                        existing.extend(value)
                    else:
                        self.data[key] = list(value)
                else:
                    self.data[key] = value

    def __iadd__(self, other: dict[str, Any] | Measurements) -> Measurements:
        self.update_measurements(other)
        return self

    def get_values(self, measurementtype: str) -> list:
        """The values of a measurement type; an empty list when none were recorded."""
        return self.data.get(measurementtype, [])

    def clear(self) -> None:
        """Removes all measurements."""
        with self._lock:
            self.data.clear()


class MeasurementsCollector:
    """'Static' class holding the process-wide measurements that decorators record into."""

    measurements = Measurements()

    @classmethod
    def save_measurements(cls, resultpath: str | os.PathLike) -> Path:
        """Writes the collected measurements to `resultpath` as a measurements file (Kenning's
        units, `measurements_file`), atomically."""
        return write_json_atomic(resultpath, measurements_file(cls.measurements.to_dict()))

    @classmethod
    def clear(cls) -> None:
        """Removes all collected measurements."""
        cls.measurements.clear()


# Measurements files (Kenning's units)


def measurements_file(data: dict[str, Any]) -> dict[str, Any]:
    """In-memory measurements (plain JSON types, times in ns) as a measurements file of
    `MEASUREMENTS_FORMAT_VERSION`: Kenning's keys in Kenning's units (seconds), read by
    Kenning's report tooling; the ns figures under our own keys beside them."""
    out = dict(data)
    for key in KENNING_STEP_KEYS:
        steps = data.get(key)
        if not _numbers(steps):
            continue
        out[key] = [v / NS_PER_SECOND for v in steps]
        out[key + NS_SUFFIX] = steps
        stamp = key + TIMESTAMP_SUFFIX
        starts = data.get(stamp)
        if _numbers(starts):
            out.pop(stamp)
            if len(starts) == len(steps):  # Kenning stamps the end of each call
                out[stamp] = [(t + v) / NS_PER_SECOND for t, v in zip(starts, steps)]
            out[stamp + NS_SUFFIX] = starts
    for key in KENNING_TIMESTAMP_KEYS:
        stamps = data.get(key)
        if _numbers(stamps):
            out[key] = [v / NS_PER_SECOND for v in stamps]
            out[key + NS_SUFFIX] = stamps
    tags = data.get("tags")
    if isinstance(tags, list) and all(isinstance(t, dict) and _numbers([t.get("start"),
                                      t.get("end")]) for t in tags):
        out["tags"] = [{**t, "start": t["start"] / NS_PER_SECOND,
                        "end": t["end"] / NS_PER_SECOND} for t in tags]
        out["tags" + NS_SUFFIX] = tags
    out[FORMAT_VERSION] = MEASUREMENTS_FORMAT_VERSION
    return out


def measurements_in_memory(data: dict[str, Any]) -> dict[str, Any]:
    """A measurements file's content (any version) as in memory: times in ns under Kenning's
    keys. Version 1 is returned as it is; a version-2 file gets its ``_ns`` figures back (or,
    written by another tool, its seconds turned into ns)."""
    version = data.get(FORMAT_VERSION, 1)
    if not isinstance(version, int) or version < 2:
        return dict(data)
    out = {k: v for k, v in data.items() if k != FORMAT_VERSION}
    for key in (*KENNING_STEP_KEYS, *(k + TIMESTAMP_SUFFIX for k in KENNING_STEP_KEYS),
                *KENNING_TIMESTAMP_KEYS, "tags"):
        kept = out.pop(key + NS_SUFFIX, None)
        if kept is not None:
            out[key] = kept
        elif key == "tags" and isinstance(out.get(key), list):
            out[key] = [{**t, "start": round(t["start"] * NS_PER_SECOND),
                         "end": round(t["end"] * NS_PER_SECOND)}
                        for t in out[key] if isinstance(t, dict) and "start" in t]
        elif _numbers(out.get(key)):
            out[key] = [round(v * NS_PER_SECOND) for v in out[key]]
    return out


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


# GPU sampling


def _query_nvidia_smi(executable: str, timeout: float) -> list[tuple[float, float]] | None:
    """(utilization %, memory utilization %) of each visible GPU, or None if the query fails."""
    try:
        result = subprocess.run(
            [
                executable,
                "--query-gpu=utilization.gpu,utilization.memory",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return _parse_nvidia_smi_csv(result.stdout)


def _parse_nvidia_smi_csv(text: str) -> list[tuple[float, float]] | None:
    """Parses ``utilization.gpu, utilization.memory`` lines; None when any value is not a
    number (nvidia-smi prints e.g. ``[N/A]`` on GPUs without these counters)."""
    rows = []
    for line in text.strip().splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2:
            return None
        try:
            rows.append((float(fields[0]), float(fields[1])))
        except ValueError:
            return None
    return rows or None


class _GPUSampler:
    """Reads GPU utilisation through nvidia-smi when on PATH, else pynvml when importable."""

    def __init__(self, query_timeout: float):
        self._timeout = query_timeout
        self._nvidia_smi, self._nvml, self._handles = _gpu_backend()

    @property
    def available(self) -> bool:
        return self._nvidia_smi is not None or self._nvml is not None

    def sample(self) -> tuple[float, float] | None:
        """Mean utilisation and memory utilisation over all visible GPUs, in %."""
        if self._nvidia_smi is not None:
            rows = _query_nvidia_smi(self._nvidia_smi, self._timeout)
        elif self._nvml is not None:
            try:
                rates = [self._nvml.nvmlDeviceGetUtilizationRates(h) for h in self._handles]
            except Exception:  # a GPU lost mid-run: skip this sample's GPU values
                return None
            rows = [(float(r.gpu), float(r.memory)) for r in rates]
        else:
            return None
        if not rows:
            return None
        return (
            sum(row[0] for row in rows) / len(rows),
            sum(row[1] for row in rows) / len(rows),
        )


@functools.lru_cache(maxsize=1)
def _gpu_backend() -> tuple[str | None, Any, list]:
    """(nvidia-smi path, None, []) or (None, pynvml module, device handles) or (None, None, []).

    Detected once per process: probing launches nvidia-smi, too slow to repeat per collector.
    """
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is not None and _query_nvidia_smi(nvidia_smi, 5.0):
        return nvidia_smi, None, []
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [
            pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
        ]
    except Exception:  # no module, no driver, no device: the GPU keys are then omitted
        return None, None, []
    return (None, pynvml, handles) if handles else (None, None, [])


def _cpu_percent(before: Sequence, after: Sequence) -> list[float]:
    """Per-core busy % between two ``psutil.cpu_times(percpu=True)`` readings.

    Computed here instead of with ``psutil.cpu_percent(interval=None)``, whose reference
    reading is module-global and would be shared by concurrently running collectors.
    """
    percents = []
    for old, new in zip(before, after):
        total = _cpu_total_time(new) - _cpu_total_time(old)
        idle = _cpu_idle_time(new) - _cpu_idle_time(old)
        if total <= 0:
            percents.append(0.0)
        else:
            percents.append(round(min(100.0, max(0.0, 100.0 * (total - idle) / total)), 1))
    return percents


def _cpu_total_time(times) -> float:
    total = sum(times)
    # Linux counts guest time inside user/nice time too; don't count it twice.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    return total


def _cpu_idle_time(times) -> float:
    return times.idle + getattr(times, "iowait", 0.0)


class SystemStatsCollector(threading.Thread):
    """Daemon thread sampling system statistics every `step` seconds.

    Keys (prefixed with `prefix`): ``_cpus_percent`` (per-core busy % over the last interval,
    a list per sample), ``_mem_percent`` (RAM in use, %), ``_timestamp`` (perf_counter_ns at the
    sample) and, when a GPU is visible, ``_gpu_utilization`` and ``_gpu_mem_utilization``
    (mean % over visible GPUs). A last sample is taken when stopped, covering the interval
    since the previous one.
    """

    def __init__(self, prefix: str, step: float = 0.1):
        super().__init__(name=f"SystemStatsCollector[{prefix}]", daemon=True)
        if step <= 0:
            raise ValueError(f"SystemStatsCollector step must be > 0 seconds, got {step}")
        self.prefix = prefix
        self.step = step
        self.measurements = Measurements()
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        gpu = _GPUSampler(query_timeout=max(self.step, 1.0))
        previous_times = psutil.cpu_times(percpu=True)
        previous_ns = time.perf_counter_ns()
        while True:
            stopping = self._stop_event.wait(self.step)
            now_ns = time.perf_counter_ns()
            if stopping and now_ns - previous_ns < _MIN_FINAL_SAMPLE_NS:
                break
            times = psutil.cpu_times(percpu=True)
            self._record(
                now_ns,
                _cpu_percent(previous_times, times),
                psutil.virtual_memory().percent,
                gpu.sample() if gpu.available else None,
            )
            previous_times, previous_ns = times, now_ns
            if stopping:
                break

    def _record(
        self,
        timestamp_ns: int,
        cpus_percent: list[float],
        mem_percent: float,
        gpu: tuple[float, float] | None,
    ) -> None:
        prefix = self.prefix
        with self.measurements._lock:
            self.measurements.add_measurement(f"{prefix}_timestamp", timestamp_ns)
            self.measurements.add_measurement(f"{prefix}_cpus_percent", cpus_percent)
            self.measurements.add_measurement(f"{prefix}_mem_percent", float(mem_percent))
            if gpu is not None:
                self.measurements.add_measurement(f"{prefix}_gpu_utilization", gpu[0])
                self.measurements.add_measurement(f"{prefix}_gpu_mem_utilization", gpu[1])

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ends sampling (after one last sample) and waits for the thread to finish."""
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def get_measurements(self) -> Measurements:
        """The collected samples (keys prefixed with `prefix`)."""
        return self.measurements


# Decorators


def timemeasurements(measurementname: str) -> Callable[[Callable], Callable]:
    """Records each completed call's duration (ns) under `measurementname` and its start
    (perf_counter_ns) under ``measurementname + "_timestamp"``."""

    def decorator(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter_ns()
            result = function(*args, **kwargs)
            duration = time.perf_counter_ns() - start
            measurements = MeasurementsCollector.measurements
            with measurements._lock:
                measurements.add_measurement(measurementname, duration)
                measurements.add_measurement(f"{measurementname}_timestamp", start)
            return result

        return wrapper

    return decorator


def tagmeasurements(tagname: str) -> Callable[[Callable], Callable]:
    """Appends ``{"name": tagname, "start": ns, "end": ns}`` (perf_counter_ns) to ``"tags"``
    for each completed call, marking a phase of the run on the measurements' time axis."""

    def decorator(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            start = time.perf_counter_ns()
            result = function(*args, **kwargs)
            end = time.perf_counter_ns()
            MeasurementsCollector.measurements.add_measurement(
                "tags", {"name": tagname, "start": start, "end": end}
            )
            return result

        return wrapper

    return decorator


def systemstatsmeasurements(
    measurementname: str, step: float = 0.5
) -> Callable[[Callable], Callable]:
    """Samples system statistics (see SystemStatsCollector) every `step` seconds during each
    call, and merges them, prefixed with `measurementname`, into the collector."""

    def decorator(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            collector = SystemStatsCollector(measurementname, step)
            collector.start()
            try:
                result = function(*args, **kwargs)
            finally:
                collector.stop()
            MeasurementsCollector.measurements.update_measurements(
                collector.get_measurements()
            )
            return result

        return wrapper

    return decorator


# Latency summaries


def summary_fields(values: np.ndarray) -> dict[str, float | int]:
    """count, mean, p50/p95/p99 (linear interpolation), min and max of a non-empty array:
    the fields of `LatencyStats` and of its subclasses."""
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="linear")
    return {"count": int(values.size), "mean": float(values.mean()), "p50": float(p50),
            "p95": float(p95), "p99": float(p99), "min": float(values.min()),
            "max": float(values.max())}


LATENCY_STATS = ("mean", "p50", "p95", "p99", "min", "max")
"""The statistics of a latency summary, as thresholds name them (latency.p95, ...)."""


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latencies, in seconds."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    min: float
    max: float

    @classmethod
    def from_ns(cls, values_ns: Sequence[int | float]) -> LatencyStats:
        """Summarises latencies given in ns; percentiles use linear interpolation."""
        values = np.asarray(values_ns, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError("LatencyStats.from_ns: no latency values given (empty sequence)")
        if not np.all(np.isfinite(values)):
            raise ValueError("LatencyStats.from_ns: latency values must be finite numbers")
        return cls(**summary_fields(values / 1e9))

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Latency(LatencyStats):
    """Per-inference latency in `unit` (seconds, or instructions / cycles counted by the
    target), and the measurement it comes from (a LATENCY_SOURCES key)."""

    source: str = ""
    samples: tuple[float, ...] = dataclasses.field(default=(), repr=False)
    unit: str = SECONDS

    @property
    def metric_prefix(self) -> str:
        """How thresholds and baselines name these values: latency.p95 (seconds),
        instructions.p95, cycles.p95."""
        return "latency" if self.unit == SECONDS else self.unit

    @classmethod
    def from_measurements(cls, measurements: Any) -> Latency | None:
        """From the first of LATENCY_SOURCES that `measurements` (a mapping or Measurements)
        holds values of; None when it holds none."""
        for source in LATENCY_SOURCES:
            values = measurements.get(source.key)
            if values:
                # times arrive in ns; counts are kept as counted
                scale = 1e9 if source.unit == SECONDS else 1.0
                samples = np.asarray(values, dtype=np.float64).ravel() / scale
                return cls(**summary_fields(samples), source=source.key,
                           samples=tuple(float(v) for v in samples), unit=source.unit)
        return None

    def to_dict(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in ("count", *LATENCY_STATS, "source", "unit")}


def inferences_measured(measurements: Any) -> int:
    """How many inferences a run timed: its host-timed round trips, else the target's own
    times (a local run)."""
    return len(measurements.get(PROTOCOL_STEP) or measurements.get(TARGET_STEP) or [])

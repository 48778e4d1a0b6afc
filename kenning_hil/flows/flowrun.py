"""Running a flow file: load and check it, build its runners with the harness (compile
cache, board sessions, target catalog), run it, and save what it measured as a run's
results (`<hil-report>/tests/flow-<name>.json`, like `hil.run`'s), so reports show it.

The library behind `kenning-hil flow run` and `hil.flow(...)`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.errors import ConfigurationError, KenningHILError, os_reason
from kenning_hil.core.flow import (
    FLOW_SECONDS,
    FLOW_STEP,
    FLOW_STEPS,
    KenningFlow,
    Progress,
    runner_step_key,
)
from kenning_hil.core.measurements import Latency, LatencyStats, Measurements
from kenning_hil.core.runner import Runner
from kenning_hil.flows.modelruntimerunner import ModelRuntimeRunner
from kenning_hil.run.results import Result, scalar_metrics


@dataclass
class FlowResult:
    """What a flow run measured: ``steps``, ``throughput`` (steps per second),
    ``end_to_end`` (a LatencyStats of whole steps, seconds), ``runner_mean_s`` (mean time
    per step of each runner), ``latency`` (the model's per-inference latency, in the target's
    unit, as `hil.run` reports it), quality metrics (``accuracy``) and the raw
    ``measurements``."""

    name: str
    runners: list[str]
    measurements: Measurements
    interrupted: bool = False
    error: str = ""
    cleanup_errors: list[str] = field(default_factory=list)
    result: Result | None = None
    path: Path | None = None

    @property
    def steps(self) -> int:
        return int(self.measurements.get(FLOW_STEPS, 0))

    @property
    def seconds(self) -> float:
        return float(self.measurements.get(FLOW_SECONDS, 0.0))

    @property
    def throughput(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0

    @property
    def end_to_end(self) -> LatencyStats | None:
        values = self.measurements.get(FLOW_STEP)
        return LatencyStats.from_ns(values) if values else None

    @property
    def runner_mean_s(self) -> list[float]:
        means = []
        for i in range(len(self.runners)):
            values = self.measurements.get(runner_step_key(i)) or []
            means.append(sum(values) / len(values) / 1e9 if values else 0.0)
        return means

    @property
    def latency(self) -> Latency | None:
        return Latency.from_measurements(self.measurements)

    @property
    def metrics(self) -> dict[str, float]:
        return flow_metrics(self.measurements)

    def __getattr__(self, name: str) -> Any:
        metrics = flow_metrics(self.__dict__.get("measurements") or {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(
            f"FlowResult has no attribute or metric '{name}' (metrics: "
            f"{', '.join(sorted(metrics)) or 'none'})")

    def summary(self) -> dict[str, Any]:
        end_to_end = self.end_to_end
        return {
            "name": self.name,
            "runners": self.runners,
            "steps": self.steps,
            "seconds": self.seconds,
            "throughput": self.throughput,
            "end_to_end": end_to_end.to_dict() if end_to_end else None,
            "runner_mean_s": self.runner_mean_s,
            "interrupted": self.interrupted,
            "cleanup_errors": self.cleanup_errors,
            **({"error": self.error} if self.error else {}),
        }


def flow_metrics(measurements: Any) -> dict[str, float]:
    """Quality metrics among a flow's measurements (the flow's own counters left out)."""
    return {k: v for k, v in scalar_metrics(dict(measurements)).items()
            if not k.startswith("flow_")}


def load_flow_file(path: str | Path) -> list:
    """The runner list of a flow JSON file; unreadable or invalid JSON is a one-line error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"flow file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = os_reason(exc)
        raise ConfigurationError(f"flow file {path} cannot be read: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"flow file {path} is not valid JSON: {exc}") from None


def build_flow(
    specification: list,
    harness: Any,
    targets: Callable[[str], Any],
    target_override: str | None = None,
    search: Sequence[Path] = (),
) -> KenningFlow:
    """Checks the flow and builds its runners; types are registry names ('runner' kind) or
    dotted class paths."""
    return KenningFlow.from_json(
        specification,
        resolve=lambda name: resolve_class("runner", name, Runner),
        context={"harness": harness, "targets": targets, "target_override": target_override,
                 "search": list(search)},
    )


def run_flow(
    flow: list | str | Path,
    harness: Any,
    targets: Callable[[str], Any],
    name: str | None = None,
    steps: int | None = None,
    target: str | None = None,
    progress: Progress | None = None,
    test_id: str | None = None,
    index: int = 0,
) -> FlowResult:
    """Builds and runs a flow (a file or its runner list), writes its results, returns them.
    Ctrl-C and errors midway still write what was measured: KeyboardInterrupt and
    KenningHILError then carry the FlowResult in their `result` attribute."""
    search: list[Path] = []
    if isinstance(flow, (str, Path)):
        search.append(Path(flow).resolve().parent)
        name = name or Path(flow).stem
        flow = load_flow_file(flow)
    name = name or "flow"
    built = build_flow(flow, harness, targets, target, search)
    started = time.time()
    try:
        measurements = built.run(steps, progress)
    except (KeyboardInterrupt, KenningHILError) as exc:
        partial = getattr(exc, "measurements", None)
        if partial is not None:
            exc.result = _save(built, partial, harness, name, test_id, index, started,
                               error="" if isinstance(exc, KeyboardInterrupt) else str(exc))
        raise
    return _save(built, measurements, harness, name, test_id, index, started)


def _save(
    flow: KenningFlow, measurements: Measurements, harness: Any, name: str,
    test_id: str | None, index: int, started: float, error: str = "",
) -> FlowResult:
    models = [r for r in flow.runners if isinstance(r, ModelRuntimeRunner)]
    first = models[0] if models else None
    outcome = FlowResult(name, list(flow.names), measurements, flow.interrupted, error,
                         list(flow.cleanup_errors))
    test_id = test_id or f"flow-{name}"
    compiled = first.compiled if first is not None else None
    result = Result(
        test_id=test_id,
        target=", ".join(dict.fromkeys(m.where for m in models)) or "none",
        model=first.request.model_name if first is not None else name,
        optimizers=first.request.optimizers if first is not None else [],
        samples=outcome.steps,
        metrics=outcome.metrics,
        latency=outcome.latency,
        compiled_size=compiled.stat().st_size if compiled is not None and compiled.exists()
        else None,
        measurements=measurements,
        compiled_model_path=compiled,
        compile_cached=first.compile_cached if first is not None else False,
    )
    record = {
        **result.summary(),
        "flow": outcome.summary(),
        "started": started,
        "finished": time.time(),
        "measurements": measurements.to_dict(),
    }
    if flow.interrupted:
        record["interrupted"] = {"samples": outcome.steps, "asked": None}
    if error:
        record["error"] = error
    result.path = outcome.path = harness.write(test_id, index, record)
    outcome.result = result
    return outcome

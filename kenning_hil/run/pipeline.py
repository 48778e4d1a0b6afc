"""The scenario: build the pipeline's objects from JSON, compile, run, summarise.

A scenario is a JSON object::

    {
      "dataset":       {"type": "digits", "parameters": {...}},
      "model_wrapper": {"type": "onnx", "parameters": {"model_path": "models/digits/..."}},
      "optimizers":    [{"type": "...", "parameters": {...}}, ...],     (optional)
      "runtime":       {"type": "onnxruntime", "parameters": {...}},
      "protocol":      {"type": "...", "parameters": {...}}              (optional)
    }

``type`` is a short name from `kenning_hil.blocks.registry` or a dotted class path. Relative paths
in parameters are used as given, i.e. they resolve against the current working directory
(not the scenario file's directory), as they do on the command line.

This module is the library behind `kenning-hil run` and the pytest plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.blocks.entries import build_block, load_scenario, validate_scenario
from kenning_hil.core.dataset import Dataset
from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.core.measurements import (
    COMPILED_MODEL_SIZE,
    SAMPLES_TOTAL,
    Latency,
    Measurements,
    inferences_measured,
    measurements_file,
    save_json_file,
)
from kenning_hil.core.model import ModelWrapper
from kenning_hil.core.optimizer import Optimizer
from kenning_hil.core.runtime import Runtime
from kenning_hil.run.progress import OFF, OFF_PROGRESS, LazyPhase, Progress


@dataclass
class RunResult:
    """What one pipeline run produced."""

    name: str
    measurements: Measurements
    compiled_model_path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.measurements.get("accuracy")

    @property
    def latency(self) -> Latency | None:
        """Per-inference (per-batch when batched) latency, from the first measured of
        LATENCY_SOURCES, as `hil.run` reports it: seconds on the target, else the target's
        instruction or cycle counts, else the host-timed round trip."""
        return Latency.from_measurements(self.measurements)

    @property
    def samples(self) -> int:
        total = self.measurements.get(SAMPLES_TOTAL)
        if isinstance(total, int):
            return total
        return inferences_measured(self.measurements)

    def summary(self) -> dict[str, Any]:
        """The headline numbers: samples, quality, latency (with its unit and source),
        compiled size (bytes)."""
        summary: dict[str, Any] = {"name": self.name, "samples": self.samples}
        for key in ("accuracy", "top_3_accuracy", "mean_precision", "mean_recall"):
            if key in self.measurements:
                summary[key] = self.measurements[key]
        latency = self.latency
        if latency is not None:
            summary["latency"] = latency.to_dict()
        if COMPILED_MODEL_SIZE in self.measurements:
            summary[COMPILED_MODEL_SIZE] = self.measurements[COMPILED_MODEL_SIZE]
        return summary

    def to_dict(self) -> dict[str, Any]:
        """Kenning-style measurements file (`measurements_file`: Kenning's keys in seconds,
        `format_version`): the measurements, flat, plus run metadata."""
        return {
            **measurements_file(self.measurements.to_dict()),
            **self.metadata,
            "compiled_model_path": str(self.compiled_model_path),
            "summary": self.summary(),
        }

    def save(self, path: str | Path) -> Path:
        """Writes `to_dict()` as JSON, atomically; an unwritable path is a one-line
        ConfigurationError naming it."""
        return save_json_file(path, self.to_dict(), "measurements")


def check_chain_formats(model_wrapper: Any, optimizers: list, runtime: Any = None) -> None:
    """ConfigurationError when a block of the chain cannot take what the one before it
    outputs (the formats each block declares). Checked for the whole chain before any step
    compiles, or asks its framework's version for the compile cache key: a step that cannot
    take its input (TFLite into TVM) is refused before TensorFlow loads or an earlier step
    spends its time compiling."""
    previous: Any = model_wrapper
    for optimizer in optimizers:
        optimizer.consult_model_type(previous)
        previous = optimizer
    if runtime is not None:
        runtime.consult_model_type(previous)


class Pipeline:
    """Dataset -> model wrapper -> optimizers -> runtime (-> protocol), run once."""

    def __init__(
        self,
        dataset: Dataset,
        model_wrapper: ModelWrapper,
        runtime: Runtime,
        optimizers: list[Optimizer] | None = None,
        protocol: Any = None,
        name: str = "scenario",
        scenario: dict | None = None,
    ):
        self.dataset = dataset
        self.model_wrapper = model_wrapper
        self.optimizers = list(optimizers or [])
        self.runtime = runtime
        self.protocol = protocol
        self.name = name
        self.scenario = scenario

    def compile(self) -> Path:
        """Runs the optimizer chain; returns the path of the model the runtime gets.

        Each block hands the model on in the first format both sides support; the io spec
        travels explicitly, so nothing is written next to the source model.
        """
        check_chain_formats(self.model_wrapper, self.optimizers, self.runtime)
        previous: Any = self.model_wrapper
        model_path = self.model_wrapper.get_path()
        io_spec = self.model_wrapper.get_io_specification()
        for optimizer in self.optimizers:
            model_format = optimizer.consult_model_type(previous)
            optimizer.set_input_type(model_format)
            if (previous is self.model_wrapper
                    and model_format != self.model_wrapper.get_native_format()):
                # the wrapper's file is in its native format: export the requested one
                exported = optimizer.compiled_model_path.with_name(
                    f"{optimizer.compiled_model_path.name}.input.{model_format}"
                )
                self._export(model_format, exported)
                model_path = exported
            optimizer.compile(model_path, io_spec)
            model_path = optimizer.compiled_model_path
            io_spec = optimizer.load_io_specification(model_path) or io_spec
            previous = optimizer
        self.runtime.consult_model_type(previous)
        return Path(model_path)

    def _export(self, model_format: str, path: Path) -> None:
        if model_format != "onnx":
            raise ConfigurationError(
                f"{type(self.model_wrapper).__name__} cannot export its model as '{model_format}'"
            )
        self.model_wrapper.save_to_onnx(path)

    def metadata(self) -> dict[str, Any]:
        framework, version = self.model_wrapper.get_framework_and_version()
        compilers = []
        for optimizer in self.optimizers:
            name, compiler_version = optimizer.get_framework_and_version()
            compilers.append({"compiler_framework": name, "compiler_version": compiler_version})
        return {
            "scenario_name": self.name,
            "model_framework": framework,
            "model_version": version,
            "compilers": compilers,
            "optimizers": compilers,  # Kenning's name of the same list
            "runtime": type(self.runtime).__name__,
            "build_cfg": self.scenario,
        }

    def run(self, samples: int | None = None, progress: Progress | None = None) -> RunResult:
        """Compiles, runs the dataset (up to `samples`) through the runtime, returns results;
        `progress` shows the compile and the samples (run/progress.py)."""
        if samples is not None:
            self.dataset.set_sample_limit(samples)
        self.dataset.check_not_empty()  # before compiling
        progress = progress or OFF_PROGRESS
        chain = " + ".join(type(o).__name__ for o in self.optimizers)
        with progress.phase(f"compile {self.name} ({chain})" if chain else f"prepare {self.name}"):
            compiled_model_path = self.compile()
        done = LazyPhase(progress, f"run {self.name}", "sample")
        try:
            total = len(self.dataset)
        except (TypeError, KenningHILError):
            total = None
        self.runtime.progress = None if progress.mode == OFF else (
            lambda count: done(done.done + count, total))
        try:
            return self._run(compiled_model_path)
        finally:
            self.runtime.progress = None
            done.close()

    def _run(self, compiled_model_path: Path) -> RunResult:
        if self.protocol is None:
            measurements = self.runtime.run_locally(
                self.dataset, self.model_wrapper, compiled_model_path
            )
            return RunResult(self.name, measurements, compiled_model_path, self.metadata())
        try:
            measurements = self.runtime.run_client(
                self.dataset, self.model_wrapper, compiled_model_path
            )
        except KenningHILError as exc:
            # a run that failed on the target keeps what it measured: the caller writes it
            partial = getattr(exc, "measurements", None)
            if partial is not None:
                exc.result = RunResult(
                    self.name, partial, compiled_model_path, {**self.metadata(), "error": str(exc)}
                )
            raise
        return RunResult(self.name, measurements, compiled_model_path, self.metadata())


def build_pipeline(scenario: dict, name: str = "scenario", source: str = "scenario") -> Pipeline:
    """Validates a scenario dict and builds its objects."""
    from kenning_hil.core.protocol import RuntimeProtocol

    scenario = validate_scenario(scenario, source)
    platform = scenario.get("platform")
    if platform is not None and local_platform(platform) is False:
        raise ConfigurationError(
            f"{source}: platform '{platform['type']}' is a board: run it with `kenning-hil run` "
            "(it maps the platform onto a target) or pytest --target")
    dataset = build_block("dataset", scenario["dataset"], Dataset, "dataset")
    model_wrapper = build_block(
        "model_wrapper", scenario["model_wrapper"], ModelWrapper, "model_wrapper", dataset=dataset
    )
    optimizers = [
        build_block("optimizer", entry, Optimizer, f"optimizers[{i}]", dataset=dataset)
        for i, entry in enumerate(scenario.get("optimizers", []))
    ]
    protocol = None
    if "protocol" in scenario:
        protocol = build_block("protocol", scenario["protocol"], RuntimeProtocol, "protocol")
    runtime = build_block("runtime", scenario["runtime"], Runtime, "runtime", protocol=protocol)
    return Pipeline(dataset, model_wrapper, runtime, optimizers, protocol, name, scenario)


LOCAL_PLATFORMS = ("LocalPlatform", "kenning.platforms.local.LocalPlatform")
BOARD_PLATFORMS = ("BareMetalPlatform", "ZephyrPlatform", "kenning.platforms.bare_metal."
                   "BareMetalPlatform", "kenning.platforms.zephyr.ZephyrPlatform")


def local_platform(platform: dict | None) -> bool:
    """Whether a Kenning `platform` entry means this machine (absent, LocalPlatform)."""
    return platform is None or platform.get("type") in LOCAL_PLATFORMS


def platform_target(platform: dict, catalog: Any, source: str) -> str:
    """The target a Kenning board platform names: its `name` parameter is a target name or
    a QEMU machine of a target (``mps2-an386``); else a one-line refusal."""
    kind = platform.get("type")
    parameters = platform.get("parameters") or {}
    name = parameters.get("name")
    if kind not in BOARD_PLATFORMS:
        raise ConfigurationError(
            f"{source}: platform '{kind}' has no counterpart here (platforms mapped: "
            f"LocalPlatform -> this machine; BareMetalPlatform / ZephyrPlatform with a `name` "
            "naming a target -> that target)")
    names = catalog.names()
    if name in names:
        return name
    for candidate in names:
        try:
            description = catalog.get(candidate)
        except KenningHILError:
            continue
        if name is not None and description.options.get("machine") == name:
            return candidate
    raise ConfigurationError(
        f"{source}: platform {kind} name {name!r} names no target described here "
        f"(targets: {', '.join(names)})")


def run_scenario(
    scenario: dict | str | Path, samples: int | None = None, name: str | None = None
) -> RunResult:
    """Builds and runs a scenario given as a dict or a JSON file path."""
    if isinstance(scenario, (str, Path)):
        path = Path(scenario)
        scenario_dict = load_scenario(path)
        return build_pipeline(scenario_dict, name or path.stem, str(path)).run(samples)
    return build_pipeline(scenario, name or "scenario").run(samples)

"""Runtime: runs a compiled model, on the host or on a target (Kenning's Runtime API).

Server (target) side, per sample: `prepare_input(bytes)` (= `preprocess_input`: bytes ->
quantised arrays in compiled order, then `load_input`), `run()`, then `extract_output()`
(= `postprocess_output(extract_raw_output())`: dequantised, in the model wrapper's order).
The client side over a protocol is added by the protocol layer.

Deviation from the seed, documented: `run_locally` RETURNS the run's `Measurements` (the seed
returns a bool) so that callers (the pytest plugin, the CLI) get per-run results; they are
also merged into `MeasurementsCollector` as the seed does.

`run_locally` keeps the per-sample path lean, so that it measures the runtime and not the
framework: the dataset is prepared, preprocessed and quantised in vectorised chunks, batches
are views cut from them, and only `run_batch` runs per batch between two clock reads;
outputs are postprocessed and evaluated once per chunk.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.args import ArgumentsHandler
from kenning_hil.core.errors import ConfigurationError, ModelNotLoadedError
from kenning_hil.core.iospec import (
    dequantize_entry,
    input_entries,
    io_spec_path,
    is_quantized,
    load_io_specification,
    numpy_dtype,
    output_entries,
    quantize_entry,
    validate_io_specification,
)
from kenning_hil.core.measurements import (
    Measurements,
    MeasurementsCollector,
    SystemStatsCollector,
)
from kenning_hil.core.model import (
    check_tensors,
    concatenate_batches,
    split_batches,
    split_tensors_from_bytes,
    wire_dtype,
)
from kenning_hil.core.optimizer import consult_model_type

INFERENCE_STEP_KEY = "target_inference_step"
SESSION_STATS_PREFIX = "session_utilization"


def model_size(path: Path) -> int:
    """Bytes of a compiled model: a file, or every file of a model directory."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


class Runtime(ArgumentsHandler):
    """Runs compiled models: locally, or as a target-side server (with a protocol)."""

    arguments_structure = {
        "disable_performance_measurements": {
            "description": "Do not sample system statistics (CPU, memory) during inference",
            "type": bool,
            "default": False,
        },
    }

    input_formats: list[str] = []
    """Model formats this runtime executes, preferred first."""

    stats_step: float = 0.1
    """Seconds between system statistics samples during an inference session."""

    def __init__(self, protocol: Any = None, disable_performance_measurements: bool = False):
        self.protocol = protocol
        self.disable_performance_measurements = disable_performance_measurements
        self.model_path: Path | None = None
        self.io_specification: dict | None = None
        self.input_spec: list[dict] | None = None
        self.output_spec: list[dict] | None = None
        self.statsmeasurements: SystemStatsCollector | None = None

    # --- formats ----------------------------------------------------------------------------

    def get_input_formats(self) -> list[str]:
        return list(self.input_formats)

    def consult_model_type(self, previous_block: Any, force_onnx: bool = False) -> str:
        """The format in which `previous_block` should pass the model to this runtime."""
        return consult_model_type(self, previous_block, force_onnx)

    def get_io_spec_path(self, model_path: Path) -> Path:
        return io_spec_path(model_path)

    # --- model and io specification -----------------------------------------------------------

    def prepare_local(self) -> bool:
        """Loads the model from `model_path` and its io spec, for local inference."""
        return self.prepare_model(None) and self.prepare_io_specification(None)

    @abstractmethod
    def prepare_model(self, input_data: bytes | None) -> bool:
        """Loads the model from `input_data` (model bytes) or, when None, from `model_path`."""

    def prepare_io_specification(self, input_data: bytes | None) -> bool:
        """Loads the io spec from `input_data` (JSON bytes) or, when None, from
        `model_path + ".json"`, else from the loaded model itself when the runtime can read it.

        Returns True also when none is found: some runtimes need none.
        """
        if input_data is not None:
            try:
                spec = json.loads(bytes(input_data).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigurationError(
                    f"{type(self).__name__}: received io specification is not JSON: {exc}"
                ) from exc
        else:
            spec = None
            if self.model_path is not None:
                spec = load_io_specification(io_spec_path(self.model_path))
            if spec is None:
                spec = self.get_io_specification_from_model()
            if spec is None:
                return True
        self.read_io_specification(spec)
        return True

    def get_io_specification_from_model(self) -> dict | None:
        """The io spec as the loaded model describes it; None when the runtime cannot tell."""
        return None

    def read_io_specification(self, io_spec: dict) -> None:
        """Validates and stores the io spec (`input_spec`, `output_spec`) for inference."""
        spec = validate_io_specification(io_spec, source=f"{type(self).__name__} io specification")
        self.io_specification = spec
        self.input_spec = spec["input"]
        self.output_spec = spec["output"]
        # Precomputed per-tensor conversions: (position in the wrapper's order, entry,
        # dtype the wrapper delivers, dtype the model takes, quantised?), in compiled order.
        self._input_plan = [
            (self.input_spec.index(e), e, wire_dtype(e), numpy_dtype(e), is_quantized(e))
            for e in input_entries(spec)
        ]
        self._output_plan = [
            (self.output_spec.index(e), e, is_quantized(e)) for e in output_entries(spec)
        ]

    # --- inputs -------------------------------------------------------------------------------

    def _require_io_specification(self) -> None:
        if self.input_spec is None:
            raise ModelNotLoadedError(
                f"{type(self).__name__}: no io specification loaded (prepare_io_specification)"
            )

    def preprocess_input(self, input_data: bytes) -> list[np.ndarray]:
        """Turns input bytes (tensors in io spec order, in their pre-quantisation dtype) into
        model-ready arrays in compiled order, quantised where the spec says so.

        Raises InputSizeError (a ValueError) when the byte count does not match the spec.
        """
        self._require_io_specification()
        arrays = split_tensors_from_bytes(
            input_data, self.input_spec, f"{type(self).__name__} input"
        )
        return self.convert_input_arrays(arrays)

    def convert_input_arrays(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Arrays in the wrapper's order (batch first) -> model-ready arrays in compiled order:
        shape-checked, cast, quantised where the spec says so. Vectorised over the batch."""
        if self.input_spec is None:
            return list(arrays)
        check_tensors(arrays, self.input_spec, f"{type(self).__name__} input")
        converted = []
        for position, entry, delivered, model_dtype, quantized in self._input_plan:
            array = np.asarray(arrays[position])
            if quantized:
                array = quantize_entry(array.astype(delivered, copy=False), entry)
            else:
                array = array.astype(model_dtype, copy=False)
            converted.append(np.ascontiguousarray(array))
        return converted

    def prepare_input(self, input_data: bytes) -> bool:
        """Preprocesses received input bytes and loads them for the next `run`."""
        return self.load_input(self.preprocess_input(input_data))

    @abstractmethod
    def load_input(self, input_data: list[np.ndarray]) -> bool:
        """Loads model-ready arrays (compiled order) for the next `run`."""

    # --- inference ----------------------------------------------------------------------------

    @abstractmethod
    def run(self) -> None:
        """Runs inference on the loaded input; raises ModelNotLoadedError without a model."""

    @abstractmethod
    def extract_raw_output(self) -> list[np.ndarray]:
        """The outputs of the last `run`, as the model produced them (compiled order)."""

    def extract_output(self) -> list[np.ndarray]:
        """The outputs of the last `run`, dequantised and in the model wrapper's order."""
        return self.postprocess_output(self.extract_raw_output())

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Loads, runs and returns the raw outputs of one batch; runtimes may fuse the steps."""
        self.load_input(inputs)
        self.run()
        return self.extract_raw_output()

    def postprocess_output(self, results: list[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs (compiled order) -> dequantised outputs in the model wrapper's order."""
        if self.output_spec is None:
            return list(results)
        if len(results) != len(self._output_plan):
            raise ModelNotLoadedError(
                f"{type(self).__name__}: model produced {len(results)} outputs, io spec lists "
                f"{len(self._output_plan)}"
            )
        ordered: list[Any] = [None] * len(results)
        for result, (position, entry, quantized) in zip(results, self._output_plan):
            ordered[position] = dequantize_entry(result, entry) if quantized else result
        return ordered

    def infer(self, X: list, modelwrapper: Any, postprocess: bool = True) -> Any:
        """Runs one batch through the whole local path (wrapper preprocessing, bytes, runtime
        preprocessing, inference, output postprocessing), as a remote run would."""
        data = modelwrapper.convert_input_to_bytes(modelwrapper.preprocess_input(X))
        self.prepare_input(data)
        self.run()
        outputs = self.extract_output()
        return modelwrapper.postprocess_outputs(outputs) if postprocess else outputs

    # --- sessions -----------------------------------------------------------------------------

    def inference_session_start(self) -> None:
        """Marks the start of inference: starts sampling system statistics."""
        if self.disable_performance_measurements or self.statsmeasurements is not None:
            return
        self.statsmeasurements = SystemStatsCollector(SESSION_STATS_PREFIX, self.stats_step)
        self.statsmeasurements.start()

    def inference_session_end(self) -> Measurements:
        """Marks the end of inference: stops sampling; returns the samples (also merged into
        MeasurementsCollector)."""
        collector, self.statsmeasurements = self.statsmeasurements, None
        if collector is None:
            return Measurements()
        collector.stop()
        stats = collector.get_measurements()
        MeasurementsCollector.measurements.update_measurements(stats)
        return stats

    def run_locally(
        self, dataset: Any, modelwrapper: Any, compiled_model_path: Path
    ) -> Measurements:
        """Runs the dataset through the compiled model on this machine.

        Returns Measurements: the dataset's quality metrics, `target_inference_step` (ns per
        batch, `run_batch` only) with `target_inference_step_timestamp` (ns, batch start),
        `compiled_model_size` (bytes) and the session's system statistics.
        """
        self.model_path = Path(compiled_model_path)
        self.prepare_local()
        measurements = Measurements()
        durations: list[int] = []
        starts: list[int] = []
        batch_size = dataset.batch_size
        run_batch = self.run_batch
        clock = time.perf_counter_ns
        self.inference_session_start()
        try:
            for inputs, truth in dataset.iter_chunks():
                prepared = self.convert_input_arrays(modelwrapper.preprocess_input(inputs))
                outputs = []
                for batch in split_batches(prepared, batch_size):
                    start = clock()
                    outputs.append(run_batch(batch))
                    durations.append(clock() - start)
                    starts.append(start)
                predictions = modelwrapper.postprocess_outputs(
                    self.postprocess_output(concatenate_batches(outputs))
                )
                dataset.merge_evaluation(measurements, dataset.evaluate(predictions, truth))
        finally:
            session_stats = self.inference_session_end()
        for key, value in dataset.compute_quality_metrics(measurements).items():
            measurements.initialize_measurement(key, value)
        measurements.add_measurements_list(INFERENCE_STEP_KEY, durations)
        measurements.add_measurements_list(f"{INFERENCE_STEP_KEY}_timestamp", starts)
        measurements.initialize_measurement("compiled_model_size", model_size(self.model_path))
        # session statistics are already in the collector (inference_session_end)
        MeasurementsCollector.measurements.update_measurements(measurements)
        measurements.update_measurements(session_stats)
        return measurements

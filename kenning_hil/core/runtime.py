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
import logging
import math
import operator
import time
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.args import ArgumentsHandler
from kenning_hil.core.errors import (
    ConfigurationError,
    KenningHILError,
    ModelLoadError,
    ModelNotLoadedError,
    one_line,
    os_reason,
)
from kenning_hil.core.iospec import (
    dequantize_entry,
    input_entries,
    io_spec_path,
    is_quantized,
    load_io_specification,
    numpy_dtype,
    output_entries,
    parse_received_io_specification,
    quantize_entry,
    raw_tensor_io_specification,
    tensor_shape,
    validate_io_specification,
)
from kenning_hil.core.measurements import (
    COMPILED_MODEL_SIZE,
    PROTOCOL_STEP,
    SESSION_UTILIZATION,
    TARGET_STEP,
    TIMESTAMP_SUFFIX,
    Measurements,
    MeasurementsCollector,
    SystemStatsCollector,
    to_jsonable,
)
from kenning_hil.core.model import (
    check_tensors,
    concatenate_batches,
    split_batches,
    split_tensors_from_bytes,
    wire_dtype,
)
from kenning_hil.core.optimizer import consult_model_type
from kenning_hil.core.protocol import (
    Flag,
    MessageType,
    ProtocolError,
    RequestDeniedError,
    RuntimeProtocol,
    ServerSession,
    ServerStatus,
)

OUTPUT_GROUP = 64
"""Batches whose outputs run_locally joins at once: few live output arrays keep the memory
they use warm in cache (holding thousands until the chunk ends costs ~0.5 us per sample)."""
SERVER_POLL_SECONDS = 0.2
"""How often `run_server` checks whether `close_server` was called."""


SAVE_MODEL_PATH_ARGUMENT = {
    "description": "Where a model received from a client is saved (none: kept in memory)",
    "type": Path,
    "nullable": True,
    "default": None,
}
"""The `save_model_path` parameter of server-side runtimes (one spelling for all of them)."""


def save_received_model(data: bytes, path: Path) -> Path:
    """Writes the model bytes a client sent to `path` (a runtime's `save_model_path`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise ModelLoadError(f"cannot save the received model to {path}: {os_reason(exc)}") from exc
    return path


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

    loads_native_code: bool = False
    """True when loading a model runs native code that comes with it (a TVM shared library):
    such a runtime, served, refuses models from clients unless `allow_native_models` is set
    (`kenning-hil serve --allow-native-models`)."""

    allow_native_models: bool = False
    """Server setting: accept uploaded models that `loads_native_code` would execute."""

    isolated_when_served: bool = True
    """`kenning-hil serve` loads and runs this runtime's models in a worker process under a
    memory cap (`runtimes/worker.py`); False for runtimes that run no model (echo)."""

    def __init__(
        self,
        protocol: RuntimeProtocol | None = None,
        disable_performance_measurements: bool = False,
    ):
        self.protocol = protocol
        self.disable_performance_measurements = disable_performance_measurements
        self.model_path: Path | None = None
        self.io_specification: dict | None = None
        self.input_spec: list[dict] | None = None
        self.output_spec: list[dict] | None = None
        self.statsmeasurements: SystemStatsCollector | None = None
        # target (server) side state, set afresh by prepare_server
        self._server_prepared = False
        self._serving = False
        self._target_steps: list[int] = []
        self._target_step_starts: list[int] = []
        self._positional_spec: dict | None = None
        self._model_loaded_for_session = False
        # client side: when set, run_client calls it with each batch's inputs (as the model
        # wrapper prepared them) and outputs (wrapper order, dequantised), for differential
        # tests that compare targets sample by sample
        self.output_sink: Callable[[list[np.ndarray], list[np.ndarray]], None] | None = None
        # called with the samples of each batch run_client finished (a progress display)
        self.progress: Callable[[int], None] | None = None

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
        # Positions by identity: list.index would compare dicts, quadratic in the entries.
        inputs = {id(e): i for i, e in enumerate(self.input_spec)}
        outputs = {id(e): i for i, e in enumerate(self.output_spec)}
        self._input_plan = [
            (inputs[id(e)], e, wire_dtype(e), numpy_dtype(e), is_quantized(e))
            for e in input_entries(spec)
        ]
        self._output_plan = [(outputs[id(e)], e, is_quantized(e)) for e in output_entries(spec)]

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
        """Loads, runs and returns the raw outputs of one batch (model-ready arrays)."""
        self.load_input(inputs)
        self.run()
        return self.extract_raw_output()

    def make_batches(self, inputs: list[np.ndarray], batch_size: int) -> list[Any]:
        """Cuts a chunk of model-ready arrays into a list of `run_prepared_batch` arguments.

        Runtimes override this pair to move per-batch work (e.g. building feed dicts) out of
        the timed call and to call their framework with as little Python around it as they
        can; by default a batch is a list of array views.
        """
        return split_batches(inputs, batch_size)

    def run_prepared_batch(self, batch: Any) -> list[np.ndarray]:
        """Runs one batch made by `make_batches`; returns the raw outputs."""
        return self.run_batch(batch)

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
        self.statsmeasurements = SystemStatsCollector(SESSION_UTILIZATION, self.stats_step)
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
        batch: its `run_prepared_batch` call and the loop's bookkeeping of a few list appends)
        with `target_inference_step_timestamp` (ns, batch start, perf_counter_ns),
        `compiled_model_size` (bytes) and the session's system statistics.
        """
        self.model_path = Path(compiled_model_path)
        self.prepare_local()
        measurements = Measurements()
        durations: list[int] = []
        starts: list[int] = []
        batch_size = dataset.batch_size
        clock = time.perf_counter_ns
        self.inference_session_start()
        try:
            for inputs, truth in dataset.iter_chunks():
                prepared = self.convert_input_arrays(modelwrapper.preprocess_input(inputs))
                # bound once per chunk: attribute lookups per sample are measurable here
                run = self.run_prepared_batch
                batches = self.make_batches(prepared, batch_size)
                groups = []
                for first in range(0, len(batches), OUTPUT_GROUP):
                    outputs: list = []
                    add_output = outputs.append
                    # one clock read per batch: batch k spans stamps[k]..stamps[k + 1] (a
                    # clock read costs ~0.25 us on some VMs, a few % of a tiny model's run)
                    stamps = [clock()]
                    add_stamp = stamps.append
                    for batch in batches[first : first + OUTPUT_GROUP]:
                        add_output(run(batch))
                        add_stamp(clock())
                    groups.append(concatenate_batches(outputs))
                    # plain Python: a NumPy round trip costs more for these short lists
                    durations.extend(map(operator.sub, stamps[1:], stamps[:-1]))
                    starts.extend(stamps[:-1])
                    if self.progress is not None:  # after the group's clock reads
                        # batches may be runtime-specific feeds: count them (the phase caps
                        # the last, partial batch at the dataset's size)
                        self.progress(len(outputs) * batch_size)
                outputs = concatenate_batches(groups)
                predictions = modelwrapper.postprocess_outputs(self.postprocess_output(outputs))
                dataset.merge_evaluation(measurements, dataset.evaluate(predictions, truth))
        finally:
            session_stats = self.inference_session_end()
        for key, value in dataset.compute_quality_metrics(measurements).items():
            measurements.initialize_measurement(key, value)
        measurements.add_measurements_list(TARGET_STEP, durations)
        measurements.add_measurements_list(TARGET_STEP + TIMESTAMP_SUFFIX, starts)
        measurements.initialize_measurement(COMPILED_MODEL_SIZE, model_size(self.model_path))
        # session statistics are already in the collector (inference_session_end)
        MeasurementsCollector.measurements.update_measurements(measurements)
        measurements.update_measurements(session_stats)
        return measurements

    # --- over a protocol: client (host) side --------------------------------------------------

    def _require_protocol(self, what: str) -> RuntimeProtocol:
        if self.protocol is None:
            raise ConfigurationError(
                f"{type(self).__name__}.{what} needs a protocol (scenario key 'protocol')"
            )
        return self.protocol

    def prepare_client(self) -> bool:
        """Connects to the target server (seed)."""
        return self._require_protocol("prepare_client").initialize_client()

    def upload_essentials(self, compiled_model_path: Path) -> bool:
        """Uploads the io spec (when known) and the model; raises RequestDeniedError naming
        the target and its reason when the target refuses either."""
        protocol = self._require_protocol("upload_essentials")
        if self.io_specification is not None:
            spec = self.io_specification
            if protocol.host_quantization:
                # int8 travels both ways: the target must take and give raw model tensors
                spec = raw_tensor_io_specification(spec)
            if not protocol.upload_io_specification_dict(spec):
                raise _denied(protocol, MessageType.IO_SPEC)
        if not protocol.upload_model(Path(compiled_model_path)):
            raise _denied(protocol, MessageType.MODEL)
        return True

    def run_client(
        self, dataset: Any, modelwrapper: Any, compiled_model_path: Path
    ) -> Measurements:
        """Runs the dataset on the target through `protocol` (seed procedure): connect,
        upload io spec and model, per batch DATA -> PROCESS -> OUTPUT, evaluate, STATS,
        disconnect. A protocol that is already connected is used as is and left open.

        Returns Measurements like `run_locally`: quality metrics, `protocol_inference_step`
        (ns, host-timed PROCESS round trip, per batch) with its `_timestamp`, the target's
        STATS merged in (`target_inference_step` etc., when it sends them) and
        `compiled_model_size`. When the run fails midway, the error raised carries the
        measurements taken so far in its `measurements` attribute.
        """
        protocol = self._require_protocol("run_client")
        self.model_path = Path(compiled_model_path)
        spec = load_io_specification(io_spec_path(self.model_path))
        self.read_io_specification(spec or modelwrapper.get_io_specification())
        host_quantization = protocol.host_quantization
        measurements = Measurements()
        steps: list[int] = []
        starts: list[int] = []
        connected_here = not protocol.connected
        outputs: list[list[np.ndarray]] = []
        truth: Any = None
        try:
            if connected_here:
                protocol.initialize_client()
            self.upload_essentials(self.model_path)
            for inputs, truth in dataset.iter_chunks():
                outputs = []
                prepared = modelwrapper.preprocess_input(inputs)
                for batch in split_batches(prepared, dataset.batch_size):
                    outputs.append(
                        self._infer_remotely(batch, modelwrapper, host_quantization, steps, starts)
                    )
                    if self.output_sink is not None:
                        self.output_sink(batch, outputs[-1])
                    if self.progress is not None:
                        self.progress(len(batch[0]) if batch else 0)
                chunk_outputs, outputs = outputs, []
                self._evaluate_outputs(dataset, modelwrapper, measurements, chunk_outputs, truth)
            target_stats = protocol.download_statistics(final=True)
        except (KenningHILError, KeyboardInterrupt) as exc:
            # a failure or Ctrl-C midway: the error carries what was measured until then
            try:
                self._evaluate_outputs(dataset, modelwrapper, measurements, outputs, truth)
            except Exception:  # keep what was measured; the original error is what matters
                pass
            self._finish_remote_measurements(dataset, measurements, steps, starts)
            try:
                measurements.update_measurements(protocol.statistics_so_far())
            except Exception:  # noqa: BLE001 - held statistics are a bonus, never the error
                pass
            exc.measurements = measurements
            raise
        finally:
            if connected_here and protocol.connected:
                protocol.disconnect()
        self._finish_remote_measurements(dataset, measurements, steps, starts)
        measurements.update_measurements(target_stats)
        MeasurementsCollector.measurements.update_measurements(measurements)
        return measurements

    def infer_remotely(
        self, batch: list[np.ndarray], modelwrapper: Any, steps: list[int], starts: list[int]
    ) -> list[np.ndarray]:
        """One batch on the target after `upload_essentials` (a KenningFlow step): DATA ->
        PROCESS -> OUTPUT; outputs in the wrapper's order, dequantised. `steps` and `starts`
        get the host-timed PROCESS round trip and its start (ns)."""
        protocol = self._require_protocol("infer_remotely")
        return self._infer_remotely(batch, modelwrapper, protocol.host_quantization, steps,
                                    starts)

    def _infer_remotely(
        self,
        batch: list[np.ndarray],
        modelwrapper: Any,
        host_quantization: bool,
        steps: list[int],
        starts: list[int],
    ) -> list[np.ndarray]:
        """DATA -> PROCESS -> OUTPUT for one batch; returns outputs in the wrapper's order."""
        protocol = self.protocol
        if host_quantization:
            # the target takes the model's own tensors: quantise here, in compiled order
            data = b"".join(a.tobytes() for a in self.convert_input_arrays(batch))
        else:
            data = modelwrapper.convert_input_to_bytes(batch)
        if not protocol.upload_input(data):
            raise _denied(protocol, MessageType.DATA)
        start = time.perf_counter_ns()
        processed = protocol.request_processing(time.perf_counter_ns)
        steps.append(time.perf_counter_ns() - start)
        starts.append(start)
        if not processed:
            raise _denied(protocol, MessageType.PROCESS)
        ok, raw = protocol.download_output()
        if not ok or raw is None:
            raise _denied(protocol, MessageType.OUTPUT)
        owner = f"output of {protocol.target_name}"
        if host_quantization:
            return self.postprocess_output(
                _split_model_outputs(raw, output_entries(self.io_specification), owner)
            )
        return [np.array(a) for a in split_tensors_from_bytes(raw, self.output_spec, owner)]

    @staticmethod
    def _evaluate_outputs(
        dataset: Any, modelwrapper: Any, measurements: Measurements, outputs: list, truth: Any
    ) -> None:
        if not outputs:
            return
        predictions = modelwrapper.postprocess_outputs(concatenate_batches(outputs))
        done = sum(len(batch[0]) for batch in outputs)  # fewer than the chunk after a failure
        if isinstance(truth, list | tuple):
            truth = [t[:done] for t in truth]
        dataset.merge_evaluation(measurements, dataset.evaluate(predictions, truth))

    def _finish_remote_measurements(
        self, dataset: Any, measurements: Measurements, steps: list[int], starts: list[int]
    ) -> None:
        for key, value in dataset.compute_quality_metrics(measurements).items():
            measurements.initialize_measurement(key, value)
        measurements.add_measurements_list(PROTOCOL_STEP, steps)
        measurements.add_measurements_list(PROTOCOL_STEP + TIMESTAMP_SUFFIX, starts)
        if self.model_path is not None and Path(self.model_path).exists():
            measurements.initialize_measurement(COMPILED_MODEL_SIZE, model_size(self.model_path))

    # --- over a protocol: server (target) side -------------------------------------------------

    def prepare_server(self) -> bool:
        """Starts listening (seed): binds the TCP port or opens the serial port."""
        self._serving = False
        self._target_steps = []
        self._target_step_starts = []
        self._positional_spec = None
        self._model_loaded_for_session = False
        self._server_prepared = True
        return self._require_protocol("prepare_server").initialize_server()

    def run_server(self) -> None:
        """Serves clients one at a time until `close_server` (seed's main server program).

        Requests are checked against the session order (`ServerSession`) before the runtime
        sees them; anything refused or failing gets a FAIL answer with the reason, and the
        server carries on. Received data is only ever parsed (io spec: JSON, validated) or
        handed to the runtime's model loader after `check_received_model`: nothing received
        is unpickled, and nothing is executed unless the server allows native models.
        """
        protocol = self._require_protocol("run_server")
        if not self._server_prepared:
            self.prepare_server()
        session = ServerSession()
        handlers = self._server_handlers()
        self._serving = True
        receive = protocol.receive_message
        connected, disconnected = ServerStatus.CLIENT_CONNECTED, ServerStatus.CLIENT_DISCONNECTED
        ready = ServerStatus.DATA_READY
        try:
            while self._serving:
                status, message = receive(SERVER_POLL_SECONDS)
                if status is ready and message is not None:
                    self._serve_request(protocol, session, handlers, message)
                    continue
                if status is connected or status is disconnected:
                    # a session ends and the next starts from nothing, however the last
                    # client left (clean close, reset, killed mid-upload, restart PING)
                    session.reset()
                    self._stop_server_statistics()
                    self.start_server_session()
                    if status is connected:
                        self.inference_session_start()
        finally:
            self._serving = False
            self._stop_server_statistics()
            protocol.close_server()

    def _server_handlers(self) -> dict:
        """The handler of each request type `_serve_request` serves."""
        return {
            MessageType.IO_SPEC: self._receive_io_specification,
            MessageType.MODEL: self._receive_model,
            MessageType.DATA: self.prepare_input,
            MessageType.PROCESS: self._process_request,
            MessageType.OUTPUT: self.upload_output,
            MessageType.STATS: self.upload_stats,
        }

    def start_server_session(self) -> None:
        """Puts the server side in the state of a fresh start: no model, no io spec, no
        inputs, outputs or timings left from an earlier client (run_server calls it when a
        client connects and when it leaves, so the model of a client that left is freed)."""
        self.unload_model()
        self._positional_spec = None
        self._model_loaded_for_session = False
        self._target_steps, self._target_step_starts = [], []

    def unload_model(self) -> None:
        """Forgets the loaded model and its io specification. Runtimes that hold a framework
        object (session, interpreter, VM) override this to drop it too, and call super()."""
        self.io_specification = self.input_spec = self.output_spec = None

    def _stop_server_statistics(self) -> None:
        """Ends a server session's system statistics sampling. The samples went to the
        client in STATS; unlike `inference_session_end` they are not kept in the process-wide
        MeasurementsCollector, which would grow with every client of a long-running server."""
        collector, self.statsmeasurements = self.statsmeasurements, None
        if collector is not None:
            collector.stop()

    def _serve_request(
        self, protocol: RuntimeProtocol, session: ServerSession, handlers: dict, message: Any
    ) -> None:
        mtype = message.message_type
        refusal = session.refusal(message)
        if refusal is not None:
            protocol.request_failure(refusal)
            return
        try:
            if mtype in _WHOLE_MESSAGE_REQUESTS:
                result = handlers[mtype](message)
            else:
                result = handlers[mtype](message.payload)
        except Exception as exc:  # the server outlives any request; the client gets the reason
            if not isinstance(exc, KenningHILError | ValueError):
                logging.getLogger(__name__).exception("serving %s failed", message.type_name)
            session.fail(mtype)
            protocol.request_failure(f"{type(exc).__name__}: {one_line(exc)}")
            return
        if result is False:
            session.fail(mtype)
            protocol.request_failure(f"{type(self).__name__} could not serve {message.type_name}")
            return
        session.advance(mtype)
        protocol.request_success(result if isinstance(result, bytes) else b"")

    def _receive_io_specification(self, message: Any) -> bool:
        """IO_SPEC: JSON is read as is. A spec unpacked from the UART struct (flagged
        SERIALIZED) has no tensor names: its tensors are positional and take the names of the
        model's own tensors once the model is loaded."""
        limit = self._require_protocol("run_server").max_message_size
        spec = parse_received_io_specification(
            message.payload, limit, f"{type(self).__name__}: received io specification"
        )
        if not message.flags & Flag.SERIALIZED:
            self._positional_spec = None
            self.read_io_specification(spec)
            return True
        self._positional_spec = spec
        if self._model_loaded_for_session:
            self._apply_positional_spec()
        return True

    def _receive_model(self, message: Any) -> bool:
        if self._positional_spec is not None:
            # names are not known yet: load the model without binding the placeholder names
            self.io_specification = self.input_spec = self.output_spec = None
        self._model_loaded_for_session = False
        self.check_received_model(message.payload)
        loaded = self.prepare_model(message.payload)
        if loaded is False:
            return False
        self._model_loaded_for_session = True
        if self._positional_spec is not None:
            self._apply_positional_spec()
        return True

    def check_received_model(self, data: bytes) -> None:
        """Refuses (ModelLoadError, a FAIL answer) a model a client sent before the loader
        sees it: native code unless `allow_native_models`; runtimes add their format's checks
        (an ONNX model naming files of the server's). Models loaded from `model_path` (the
        server's own files) are not checked."""
        if self.loads_native_code and not self.allow_native_models:
            raise ModelLoadError(
                f"{type(self).__name__} runs a received model as native code on the server; "
                f"refused: start the server with --allow-native-models to accept models from "
                f"clients allowed to run code as the server's user"
            )

    def _apply_positional_spec(self) -> None:
        spec = json.loads(json.dumps(self._positional_spec))
        own = self.get_io_specification_from_model()
        if own is not None:
            for section in ("input", "output"):
                if len(own[section]) != len(spec[section]):
                    raise ConfigurationError(
                        f"{type(self).__name__}: received io specification has "
                        f"{len(spec[section])} {section}s, the model has {len(own[section])}"
                    )
                for entry, model_entry in zip(spec[section], own[section]):
                    entry["name"] = model_entry["name"]
        self.read_io_specification(spec)

    def _process_request(self, payload: bytes) -> bool:
        start = time.perf_counter_ns()
        self.run()
        self._target_steps.append(time.perf_counter_ns() - start)
        self._target_step_starts.append(start)
        return True

    def upload_output(self, input_data: bytes) -> bytes:
        """The last outputs as bytes: each tensor (dequantised, in the wrapper's order, in its
        wire dtype) concatenated without a header, as Kenning's server sends them."""
        outputs = self.extract_output()
        if self.output_spec is None:
            return b"".join(np.ascontiguousarray(o).tobytes() for o in outputs)
        return b"".join(
            np.ascontiguousarray(o, dtype=wire_dtype(e)).tobytes()
            for o, e in zip(outputs, self.output_spec)
        )

    def upload_stats(self, input_data: bytes) -> bytes:
        """JSON statistics of this session: `target_inference_step` (ns per inference, timed
        around `run`) with its `_timestamp`, plus the system statistics sampled so far."""
        stats: dict[str, Any] = {
            TARGET_STEP: list(self._target_steps),
            TARGET_STEP + TIMESTAMP_SUFFIX: list(self._target_step_starts),
        }
        collector = self.statsmeasurements
        if collector is not None:
            with collector.measurements._lock:
                stats.update(to_jsonable(collector.measurements.to_dict()))
        return json.dumps(stats, separators=(",", ":")).encode("utf-8")

    def close_server(self) -> None:
        """Asks `run_server` to stop (it returns within SERVER_POLL_SECONDS)."""
        self._serving = False


# requests whose handler takes the whole message (flags matter), not only the payload
_WHOLE_MESSAGE_REQUESTS = frozenset({int(MessageType.IO_SPEC), int(MessageType.MODEL)})


def _denied(protocol: RuntimeProtocol, message_type: MessageType) -> RequestDeniedError:
    reason = protocol.refusal_reason() or "no reason given"
    return RequestDeniedError(f"refused: {reason}", protocol.target_name, message_type)


def _split_model_outputs(data: bytes, entries: list[dict], owner: str) -> list[np.ndarray]:
    """Raw outputs in compiled order and the model's own dtypes (targets that take raw
    tensors); the batch size is what the byte count implies."""
    sizes = [math.prod(tensor_shape(e)[1:]) * numpy_dtype(e).itemsize for e in entries]
    per_sample = sum(sizes)
    if per_sample == 0 or not data or len(data) % per_sample:
        raise ProtocolError(
            f"{owner}: {len(data)} bytes is not a whole number of samples of {per_sample} bytes"
        )
    batch = len(data) // per_sample
    arrays, offset = [], 0
    for entry, size in zip(entries, sizes):
        dtype = numpy_dtype(entry)
        count = size * batch // dtype.itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        arrays.append(array.reshape((batch, *tensor_shape(entry)[1:])).copy())
        offset += size * batch
    return arrays

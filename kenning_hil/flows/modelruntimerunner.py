"""ModelRuntimeRunner: the model of a flow, run per step locally, through a protocol to a
running target server, or on any target of the catalog by name (host, tcp, serial, qemu).

It reuses what `hil.run` uses: the model is compiled through the harness's compile cache
(`Harness.compile`), checked against the target (accepted formats, RAM), and a target is
reached through the harness's board sessions (`SessionManager.use`, pool locks, the model
upload cache). One step sends one sample: DATA -> PROCESS -> OUTPUT over the wire protocol,
or the runtime's own `run_batch` when local.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from kenning_hil.blocks.entries import build_block, normalize_entry
from kenning_hil.core.errors import ConfigurationError, KenningHILError, one_line
from kenning_hil.core.iospec import io_spec_path, load_io_specification
from kenning_hil.core.measurements import (
    COMPILED_MODEL_SIZE,
    PROTOCOL_STEP,
    TARGET_STEP,
    TIMESTAMP_SUFFIX,
    Measurements,
)
from kenning_hil.core.runner import Runner
from kenning_hil.core.runtime import Runtime
from kenning_hil.run.compile_cache import file_digest
from kenning_hil.run.harness import client_runtime


def _tensor_specs(entries: list[dict]) -> list[dict]:
    return [{"shape": list(e.get("shape") or []), "dtype": e.get("dtype")} for e in entries]


def _own(wrapper: Any, method: str) -> Any:
    """The wrapper's bound `method`, or None when it is ModelWrapper's (which does nothing)."""
    from kenning_hil.core.model import ModelWrapper

    if getattr(type(wrapper), method) is getattr(ModelWrapper, method):
        return None
    return getattr(wrapper, method)


class ModelRuntimeRunner(Runner):
    """Runs a model wrapper's model on a runtime, one sample per flow step.

    Where it runs, exactly one of: ``runtime`` alone (on this machine), ``protocol`` (a
    target server already running, e.g. `kenning-hil serve`; ``runtime`` then names the
    client side, by default the plain protocol client), or ``target`` (a target from the
    catalog by name). `kenning-hil flow run --target NAME` moves every model runner to NAME.
    """

    arguments_structure = {
        "model_wrapper": {
            "description": "The model: a model file (.onnx, .tflite) or a model wrapper entry "
            "{\"type\": ..., \"parameters\": {\"model_path\": ...}}",
            "type": object,
            "required": True,
        },
        "optimizers": {
            "description": "Optimizer entries run on the model first, in order (compiled "
            "once, through the compile cache)",
            "type": dict,
            "is_list": True,
            "default": [],
        },
        "dataset": {
            "description": "Dataset entry the optimizers calibrate on (int8 quantisation)",
            "type": dict,
            "nullable": True,
            "default": None,
        },
        "runtime": {
            "description": "Runtime entry: runs the model here, or is the client of `protocol`",
            "type": dict,
            "nullable": True,
            "default": None,
        },
        "protocol": {
            "description": "Protocol entry to a target server that is already running",
            "type": dict,
            "nullable": True,
            "default": None,
        },
        "target": {
            "description": "A target of the catalog by name (targets/*.yaml): host, tcp, "
            "serial or qemu",
            "type": str,
            "nullable": True,
            "default": None,
        },
    }
    input_names = ("input",)
    required_inputs = ("input",)
    output_names = ("model_output",)
    context_keys = ("harness", "targets", "target_override", "search")

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        model_wrapper: Any = None,
        optimizers: list[dict] | None = None,
        dataset: dict | None = None,
        runtime: dict | None = None,
        protocol: dict | None = None,
        target: str | None = None,
        harness: Any = None,
        targets: Any = None,
        target_override: str | None = None,
        search: list[Path] | None = None,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        if harness is None:
            raise ConfigurationError(
                "ModelRuntimeRunner needs the harness (run the flow with `kenning-hil flow "
                "run`, hil.flow or kenning_hil.flows.flowrun.run_flow)")
        self.harness = harness
        if target_override is not None:
            target, runtime, protocol = target_override, None, None
        given = [name for name, value in (("runtime", runtime), ("protocol", protocol),
                                          ("target", target)) if value is not None]
        if not given:
            raise ConfigurationError(
                "give 'runtime' (run here), 'protocol' (a running server) or "
                "'target' (a target by name)")
        if "target" in given and len(given) > 1:
            raise ConfigurationError(
                f"'target' cannot be combined with {' and '.join(given[:-1])} "
                "(the target decides its runtime and protocol)")
        self.request = harness.request(model_wrapper, dataset, optimizers or [],
                                       search=list(search or []), require_dataset=False)
        # built now: a bad entry is an error before anything runs, and the io spec is known
        self.dataset, self.wrapper, self.optimizers = harness.build_blocks(self.request)
        self.target = None
        self.runtime_entry = normalize_entry(runtime, "parameter 'runtime'") if runtime else None
        self.protocol_entry = (normalize_entry(protocol, "parameter 'protocol'")
                               if protocol else None)
        if target is not None:
            if targets is None:
                raise ConfigurationError("parameter 'target': no target catalog given")
            self.target = targets(target)
            available, reason = self.target.availability()
            if not available:
                raise ConfigurationError(
                    f"parameter 'target': target '{target}' is not available here: {reason}")
            # refused as hil.run and collection refuse it: the format, the model itself
            problem = harness.not_applicable(self.target, self.request)
            if problem is not None:
                raise problem
        self.io_specification = self.wrapper.get_io_specification()
        self.where = self.target.name if self.target is not None else (
            "protocol" if self.protocol_entry else "local")
        self.compiled: Path | None = None
        self.compile_cached = False
        self.runtime: Runtime | None = None
        self._stack = ExitStack()
        self._steps: list[int] = []
        self._starts: list[int] = []
        self._spans: list[int] = []  # the local step's (start, end) pairs, flat
        self._target_stats = Measurements()
        # the wrapper's own pre- and postprocessing; None when it has none (the base class's
        # identity), which saves two calls per step
        self._preprocess = _own(self.wrapper, "preprocess_input")
        self._postprocess = _own(self.wrapper, "postprocess_outputs")
        self._remote = False  # steps go over a protocol (else: the runtime runs them here)
        self._connected = False  # statistics still to fetch at cleanup

    def get_io_specification(self) -> dict:
        return {
            "input": {"input": _tensor_specs(self.io_specification["input"])},
            "output": {"model_output": _tensor_specs(self.io_specification["output"])},
        }

    # --- prepare: compile, then load here or connect and upload -----------------------------

    def prepare(self) -> None:
        harness = self.harness
        self.compiled, self.compile_cached = harness.compile(
            self.request, (self.dataset, self.wrapper, self.optimizers))
        spec = load_io_specification(io_spec_path(self.compiled))
        if self.target is not None:
            harness.check_fits(self.target, self.compiled.stat().st_size)
            self._prepare_target(spec)
        elif self.protocol_entry is not None:
            self._prepare_protocol(spec)
        else:
            self.runtime = build_block("runtime", self.runtime_entry, Runtime, "runtime")
            self.runtime.model_path = self.compiled
            self.runtime.prepare_local()
            if self._preprocess is None and self._postprocess is None:
                self.run = self._local_step()  # the flow binds `run` after prepare

    def _prepare_target(self, spec: dict | None) -> None:
        from kenning_hil.protocols.session import SessionProtocol

        key = file_digest(self.compiled)
        if io_spec_path(self.compiled).is_file():
            key += file_digest(io_spec_path(self.compiled))
        session = self._stack.enter_context(
            self.harness.sessions.use(self.target, holder="kenning-hil flow"))
        protocol = SessionProtocol(session, key)
        self.runtime = client_runtime(self.target, protocol, Runtime)
        self._upload(spec)

    def _prepare_protocol(self, spec: dict | None) -> None:
        from kenning_hil.core.protocol import RuntimeProtocol

        protocol = build_block("protocol", self.protocol_entry, RuntimeProtocol, "protocol")
        if self.runtime_entry is not None:
            self.runtime = build_block("runtime", self.runtime_entry, Runtime, "runtime",
                                       protocol=protocol)
        else:
            self.runtime = Runtime(protocol=protocol)
        protocol.initialize_client()
        self._stack.callback(protocol.disconnect)
        self._upload(spec)

    def _upload(self, spec: dict | None) -> None:
        runtime = self.runtime
        runtime.model_path = self.compiled
        runtime.read_io_specification(spec or self.io_specification)
        runtime.upload_essentials(self.compiled)
        self._remote = self._connected = True

    # --- steps ---------------------------------------------------------------------------------

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        data = inputs["input"]
        if self._preprocess is not None:
            data = self._preprocess(data)
        runtime = self.runtime
        if self._remote:
            outputs = runtime.infer_remotely(data, self.wrapper, self._steps, self._starts)
        else:
            prepared = runtime.convert_input_arrays(data)
            start = time.perf_counter_ns()
            raw = runtime.run_batch(prepared)
            self._steps.append(time.perf_counter_ns() - start)
            self._starts.append(start)
            outputs = runtime.postprocess_output(raw)
        if self._postprocess is not None:
            outputs = self._postprocess(outputs)
        return {"model_output": outputs}

    def _local_step(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """`run` for a local runtime and a wrapper without its own pre/postprocessing, with
        what it calls bound once: the same calls and timing, less Python per flow step
        (benchmarks/bench_flow.py)."""
        runtime = self.runtime
        convert, run_batch = runtime.convert_input_arrays, runtime.run_batch
        postprocess = runtime.postprocess_output
        clock = time.perf_counter_ns
        add_span = self._spans.extend  # one call per step; measurements() pairs them up

        def step(inputs: dict[str, Any]) -> dict[str, Any]:
            prepared = convert(inputs["input"])
            start = clock()
            raw = run_batch(prepared)
            add_span((start, clock()))
            return {"model_output": postprocess(raw)}

        return step

    def measurements(self) -> dict[str, Any]:
        """Per-inference times like a run of `hil.run`: host-timed PROCESS round trips and
        the target's own statistics (instructions under QEMU) when remote, the runtime's
        own run time when local; the compiled model's size."""
        measurements = Measurements()
        key = PROTOCOL_STEP if self._remote else TARGET_STEP
        spans = self._spans
        measurements.add_measurements_list(
            key, self._steps + [end - start for start, end in zip(spans[::2], spans[1::2])])
        measurements.add_measurements_list(key + TIMESTAMP_SUFFIX, self._starts + spans[::2])
        measurements.update_measurements(self._target_stats)
        if self.compiled is not None and self.compiled.exists():
            measurements.initialize_measurement(COMPILED_MODEL_SIZE,
                                                self.compiled.stat().st_size)
        return measurements.to_dict()

    def cleanup(self) -> None:
        """Fetches the target's statistics of this run, then gives the board (or the
        connection) back; on an interrupted run the statistics the client holds."""
        runtime = self.runtime
        if self._connected and runtime is not None:
            try:
                self._target_stats = runtime.protocol.download_statistics(final=True)
            except (KenningHILError, OSError, NotImplementedError) as exc:
                try:
                    self._target_stats = runtime.protocol.statistics_so_far()
                except Exception:  # noqa: BLE001 - statistics are a bonus here
                    pass
                self.stats_error = one_line(exc)
        self._connected = False
        self.__dict__.pop("run", None)  # the bound local step holds the runtime
        self._stack.close()

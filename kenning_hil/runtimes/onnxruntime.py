"""ONNXRuntime: runs ONNX models with ONNX Runtime (CPU; CUDA when the installed build has it)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import (
    ConfigurationError,
    ModelLoadError,
    ModelNotLoadedError,
    import_optional,
    one_line,
)
from kenning_hil.core.runtime import SAVE_MODEL_PATH_ARGUMENT, Runtime, save_received_model
from kenning_hil.formats.onnx import file_references


def _ort():
    return import_optional("onnxruntime", "onnx", "the ONNX Runtime runtime")


def default_execution_providers() -> list[str]:
    """CUDA first when this onnxruntime build offers it, then CPU."""
    available = _ort().get_available_providers()
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available]


def _ort_dtype(type_name: str) -> str:
    # ONNX Runtime describes tensors as e.g. "tensor(float)"; map to numpy names
    inner = type_name.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "float16": "float16"}.get(inner, inner)


class ONNXRuntime(Runtime):
    """Runs ONNX models with ONNX Runtime."""

    input_formats = ["onnx"]

    arguments_structure = {
        "save_model_path": SAVE_MODEL_PATH_ARGUMENT,
        "execution_providers": {
            "description": "ONNX Runtime execution providers, in priority order "
            "(default: CUDA when available, then CPU)",
            "type": str,
            "is_list": True,
            "nullable": True,
            "default": None,
        },
        "num_threads": {
            "description": "Intra-op threads (0: ONNX Runtime's default)",
            "type": int,
            "default": 0,
        },
    }

    def __init__(
        self,
        protocol: Any = None,
        save_model_path: Path | None = None,
        execution_providers: list[str] | None = None,
        num_threads: int = 0,
        disable_performance_measurements: bool = False,
    ):
        super().__init__(protocol, disable_performance_measurements)
        self.save_model_path = Path(save_model_path) if save_model_path else None
        self.execution_providers = list(execution_providers) if execution_providers else None
        if num_threads < 0:
            raise ConfigurationError(f"ONNXRuntime: num_threads must be >= 0, got {num_threads}")
        self.num_threads = num_threads
        self.session: Any = None
        self._loaded_file: tuple | None = None
        self._feeds: dict[str, np.ndarray] | None = None
        self._outputs: list[np.ndarray] | None = None

    def _providers(self) -> list[str]:
        if self.execution_providers is None:
            return default_execution_providers()
        available = _ort().get_available_providers()
        missing = [p for p in self.execution_providers if p not in available]
        if missing:
            raise ConfigurationError(
                f"ONNXRuntime: execution providers {missing} are not available in this "
                f"onnxruntime build (available: {available})"
            )
        return self.execution_providers

    def prepare_model(self, input_data: bytes | None) -> bool:
        ort = _ort()
        if input_data is None:
            if self.model_path is None:
                raise ModelLoadError("ONNXRuntime: no model path set and no model received")
            if not Path(self.model_path).is_file():
                raise ModelLoadError(f"ONNXRuntime: model file {self.model_path} does not exist")
            stat = Path(self.model_path).stat()
            file_key = (
                (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size),
                tuple(self._providers()),
                self.num_threads,
            )
            if self.session is not None and file_key == self._loaded_file:
                return True  # this unchanged file is loaded with these settings: keep it
            source: Any = str(self.model_path)
            where = str(self.model_path)
        else:
            source = bytes(input_data)
            file_key = None
            where = f"received model ({len(source)} bytes)"
            if self.save_model_path is not None:
                self.model_path = save_received_model(source, self.save_model_path)
        options = ort.SessionOptions()
        if self.num_threads:
            options.intra_op_num_threads = self.num_threads
        try:
            self.session = ort.InferenceSession(source, options, providers=self._providers())
        except ConfigurationError:
            raise
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            reason = one_line(exc, first_line=True)
            raise ModelLoadError(
                f"ONNXRuntime: {where} is not a valid ONNX model: {reason}"
            ) from exc
        self._loaded_file = file_key
        self._bind_names()
        return True

    def check_received_model(self, data: bytes) -> None:
        """A client sends one file: a model whose tensors live in external data files (or an
        EPContext node naming a context file) would make the server read files it did not
        send, wherever `location` points (absolute, `..`, or the server's working
        directory). Such a model is refused before ONNX Runtime sees it."""
        super().check_received_model(data)
        source = f"ONNXRuntime: received model ({len(data)} bytes)"
        references = file_references(data, source)
        if references:
            more = f" (and {len(references) - 1} more)" if len(references) > 1 else ""
            raise ModelLoadError(
                f"{source} names files on the server: {references[0]}{more}; refused: an "
                f"uploaded model must be self-contained (save it without external data)"
            )

    def unload_model(self) -> None:
        super().unload_model()
        self.session = self._loaded_file = self._feeds = self._outputs = None

    def get_io_specification_from_model(self) -> dict | None:
        if self.session is None:
            return None

        def entry(arg: Any) -> dict:
            shape = [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape]
            return {"name": arg.name, "shape": shape, "dtype": _ort_dtype(arg.type)}

        return {
            "input": [entry(i) for i in self.session.get_inputs()],
            "output": [entry(o) for o in self.session.get_outputs()],
        }

    def read_io_specification(self, io_spec: dict) -> None:
        super().read_io_specification(io_spec)
        if self.session is not None:
            self._bind_names()

    def _bind_names(self) -> None:
        """Feeds and fetches by name: in the io spec's compiled order when a spec is loaded
        (it may arrive before or after the model), else in the graph's order."""
        model_inputs = [i.name for i in self.session.get_inputs()]
        model_outputs = [o.name for o in self.session.get_outputs()]
        inputs, outputs = model_inputs, model_outputs
        if self.io_specification is not None:
            inputs = [e["name"] for _, e, *_ in self._input_plan]
            outputs = [e["name"] for _, e, _ in self._output_plan]
            for kind, names, model_names in (
                ("inputs", inputs, model_inputs),
                ("outputs", outputs, model_outputs),
            ):
                unknown = sorted(set(names) - set(model_names))
                if unknown:
                    raise ConfigurationError(
                        f"ONNXRuntime: io specification names {kind} {unknown} that the model "
                        f"does not have (model {kind}: {model_names})"
                    )
        self._input_names, self._output_names = inputs, outputs
        self.run_prepared_batch = self._bind_prepared_run()

    def _bind_prepared_run(self):
        """The hot path of run_locally: one call per batch with fixed output names.

        `InferenceSession.run` re-validates the feed names and the ownership of every input
        on each call (about 2 us, a third of the digits model's run). Feeds made by
        `make_batches` are valid by construction, so on the CPU provider the validated
        session's own binding is called directly, with a RunOptions object (passing None
        there costs more). Other providers keep `run`, which also handles their fallback.
        """
        session = self.session
        fast_run = getattr(session, "_sess", None)
        if fast_run is None or session.get_providers() != ["CPUExecutionProvider"]:
            return functools.partial(session.run, self._output_names)
        fast_run, names, options = fast_run.run, self._output_names, _ort().RunOptions()
        return lambda batch: fast_run(names, batch, options)

    def load_input(self, input_data: list[np.ndarray]) -> bool:
        if self.session is None:
            raise ModelNotLoadedError("ONNXRuntime: no model loaded (prepare_model)")
        self._feeds = dict(zip(self._input_names, input_data))
        return True

    def run(self) -> None:
        if self.session is None:
            raise ModelNotLoadedError("ONNXRuntime: no model loaded (prepare_model)")
        if self._feeds is None:
            raise ModelNotLoadedError("ONNXRuntime: no input loaded (prepare_input)")
        self._outputs = self.session.run(self._output_names, self._feeds)

    def extract_raw_output(self) -> list[np.ndarray]:
        if self._outputs is None:
            raise ModelNotLoadedError("ONNXRuntime: no output yet (run)")
        return self._outputs

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self._output_names, dict(zip(self._input_names, inputs)))

    def make_batches(self, inputs: list[np.ndarray], batch_size: int) -> list[dict]:
        # feed dicts built outside the timed call; run_prepared_batch is then session.run itself
        names = self._input_names
        count = len(inputs[0]) if inputs else 0
        if len(names) == 1:
            (name,), (array,) = names, inputs
            whole = count - count % batch_size
            # iterating a [batches, batch_size, ...] view yields the batch views from C
            grouped = array[:whole].reshape(whole // batch_size, batch_size, *array.shape[1:])
            feeds = [{name: batch} for batch in grouped]
            if whole < count:
                feeds.append({name: array[whole:]})
            return feeds
        return [
            {n: a[i : i + batch_size] for n, a in zip(names, inputs)}
            for i in range(0, count, batch_size)
        ]

    def run_prepared_batch(self, batch: dict) -> list[np.ndarray]:
        return self.session.run(self._output_names, batch)

"""ONNXWrapper: any ONNX model file; its io specification is read from the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError, ModelLoadError, import_optional
from kenning_hil.core.model import ModelWrapper


def _onnx():
    return import_optional("onnx", "onnx", "ONNX models")


def load_onnx_model(path: Path) -> Any:
    """Loads and checks an ONNX model file; ModelLoadError when missing or not ONNX."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model file {path} does not exist")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf decode errors and checker errors have no common base
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path} is not a valid ONNX model: {reason}") from exc
    if not model.graph.node or not model.graph.output:
        # random bytes can decode as an empty protobuf message
        raise ModelLoadError(f"{path} is not a valid ONNX model: the graph has no nodes or outputs")
    return model


def _value_info_entry(value_info: Any, where: str) -> dict:
    onnx = _onnx()
    if not value_info.type.HasField("tensor_type"):
        raise ModelLoadError(
            f"{where}: '{value_info.name}' is not a tensor; only tensors are supported"
        )
    tensor_type = value_info.type.tensor_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except Exception as exc:
        raise ModelLoadError(
            f"{where}: '{value_info.name}' has an unsupported element type {tensor_type.elem_type}"
        ) from exc
    # dim_value 0 means unset (a named or unknown dimension): dynamic, -1 in the io spec
    shape = [dim.dim_value if dim.dim_value > 0 else -1 for dim in tensor_type.shape.dim]
    return {"name": value_info.name, "shape": shape, "dtype": dtype.name}


def io_specification_from_onnx(model: Any, source: str = "ONNX model") -> dict:
    """{"input": [...], "output": [...]} from a graph; initializers are not inputs."""
    initializers = {init.name for init in model.graph.initializer}
    return {
        "input": [
            _value_info_entry(v, source) for v in model.graph.input if v.name not in initializers
        ],
        "output": [_value_info_entry(v, source) for v in model.graph.output],
    }


class ONNXWrapper(ModelWrapper):
    """Wraps an ONNX model; runs it on the host with ONNX Runtime's CPU provider."""

    output_formats = ["onnx"]

    def __init__(
        self,
        model_path: Path,
        dataset: Any = None,
        from_file: bool = True,
        model_name: str | None = None,
    ):
        super().__init__(model_path, dataset, from_file, model_name)
        self.model: Any = None
        self._session: Any = None

    def prepare_model(self) -> None:
        if self.model_prepared:
            return
        if not self.from_file:
            raise ConfigurationError(
                "ONNXWrapper cannot build a model; give an existing ONNX file (from_file=True)"
            )
        self.load_model(self.model_path)

    def load_model(self, model_path: Path) -> None:
        self.model = load_onnx_model(model_path)
        self.model_path = Path(model_path)
        self._session = None
        self.io_specification = None
        self.model_prepared = True

    def save_model(self, model_path: Path) -> None:
        self.prepare_model()
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        _onnx().save(self.model, str(model_path))

    def save_to_onnx(self, model_path: Path) -> None:
        self.save_model(model_path)

    def get_framework_and_version(self) -> tuple[str, str]:
        return "onnx", _onnx().__version__

    def get_io_specification_from_model(self) -> dict[str, list[dict]]:
        self.prepare_model()
        return io_specification_from_onnx(self.model, str(self.model_path))

    @classmethod
    def derive_io_spec_from_json_params(cls, params: dict) -> dict[str, list[dict]]:
        path = Path(params["model_path"])
        return io_specification_from_onnx(load_onnx_model(path), str(path))

    def run_inference(self, X: list) -> list:
        if self._session is None:
            self.prepare_model()
            ort = import_optional("onnxruntime", "onnx", "running ONNX models")
            self._session = ort.InferenceSession(
                self.model.SerializeToString(), providers=["CPUExecutionProvider"]
            )
            self._input_names = [i.name for i in self._session.get_inputs()]
        return self._session.run(None, dict(zip(self._input_names, X)))


def load_onnx_and_io_spec(path: Path, io_spec: dict | None, block: Any) -> tuple[Any, dict]:
    """An optimizer's ONNX input and its io spec: the spec handed over, else the
    `<model>.json` beside the model (as `block.load_io_specification` reads it), else the
    one read from the model itself."""
    model = load_onnx_model(path)
    if io_spec is None:
        io_spec = block.load_io_specification(path)
    if io_spec is None:
        io_spec = io_specification_from_onnx(model, str(path))
    return model, io_spec

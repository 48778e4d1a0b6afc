"""ONNX files: loading and checking a model, and reading its io specification from the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ModelLoadError, import_optional


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

"""ONNX files: loading and checking a model, and reading its io specification from the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ModelLoadError, import_optional, one_line
from kenning_hil.formats import protobuf


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
        reason = one_line(exc, first_line=True)
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



# field numbers of onnx.proto (ONNX's own schema) that can hold tensors, graphs or file names
_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTION = 7, 20, 25
_TRAINING_GRAPHS = (1, 2)  # initialization, algorithm
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE = 1, 5, 15
_FUNCTION_NODE, _FUNCTION_ATTRIBUTE = 7, 11
_NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 3, 4, 5
_ATTR_NAME, _ATTR_I, _ATTR_S = 1, 3, 4
_ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE = (5, 10), (6, 11), (22, 23)
_SPARSE_TENSORS = (1, 2)  # values, indices
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def file_references(model_bytes: bytes, source: str = "ONNX model") -> list[str]:
    """Every file an ONNX model asks its loader to read, described for an error message:
    tensors stored as external data (initializers, sparse initializers, node attributes, in
    every subgraph, function and training graph) and EPContext nodes that name a context
    file (`embed_mode` 0). Empty for a self-contained model.

    Reads the protobuf wire format directly (`formats/protobuf.py`, no `import onnx`), with
    an explicit stack so that nesting cannot exhaust Python's; every occurrence of a field
    is checked (protobuf merges repeated occurrences, so any one may be the one that counts).
    ModelLoadError when the bytes are not a protobuf message."""
    data = memoryview(bytes(model_bytes))
    references: list[str] = []
    stack: list[tuple[str, int, int, str]] = [("model", 0, len(data), "")]
    try:
        while stack:
            kind, start, end, where = stack.pop()
            if kind == "tensor":
                _check_tensor(data, start, end, where, references)
                continue
            if kind == "node":
                _walk_node(data, start, end, stack, references)
                continue
            for number, wire_type, value in protobuf.fields(data, start, end):
                if wire_type != protobuf.LENGTH_DELIMITED:
                    continue
                child = _CHILDREN.get(kind, {}).get(number)
                if child is not None:
                    stack.append((child[0], *value, child[1] or where))
    except protobuf.WireFormatError as exc:
        raise ModelLoadError(f"{source} is not a valid ONNX model: {exc}") from None
    return references


# (kind, what a tensor there is called; empty: the parent's) per field of each message kind
_CHILDREN: dict[str, dict[int, tuple[str, str]]] = {
    "model": {
        _MODEL_GRAPH: ("graph", ""),
        _MODEL_FUNCTION: ("function", ""),
        _MODEL_TRAINING: ("training", ""),
    },
    "training": {number: ("graph", "") for number in _TRAINING_GRAPHS},
    "graph": {
        _GRAPH_NODE: ("node", ""),
        _GRAPH_INITIALIZER: ("tensor", "initializer"),
        _GRAPH_SPARSE: ("sparse", "sparse initializer"),
    },
    "function": {
        _FUNCTION_NODE: ("node", ""),
        _FUNCTION_ATTRIBUTE: ("attribute", "function attribute"),
    },
    "attribute": {
        **{number: ("tensor", "") for number in _ATTR_TENSORS},
        **{number: ("graph", "") for number in _ATTR_GRAPHS},
        **{number: ("sparse", "") for number in _ATTR_SPARSE},
    },
    "sparse": {number: ("tensor", "") for number in _SPARSE_TENSORS},
}


def _text(data: memoryview, value: tuple[int, int]) -> str:
    return bytes(data[value[0] : value[1]]).decode("utf-8", "replace")


def _check_tensor(
    data: memoryview, start: int, end: int, where: str, references: list[str]
) -> None:
    name, external, location = "", False, ""
    for number, wire_type, value in protobuf.fields(data, start, end):
        if number == _TENSOR_NAME and wire_type == protobuf.LENGTH_DELIMITED:
            name = _text(data, value)
        elif number == _TENSOR_DATA_LOCATION and wire_type == protobuf.VARINT:
            external = external or value == _EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA and wire_type == protobuf.LENGTH_DELIMITED:
            external = True
            entry = dict.fromkeys(("key", "value"), "")
            for field, kind, text in protobuf.fields(data, *value):
                if kind == protobuf.LENGTH_DELIMITED and field in (1, 2):
                    entry["key" if field == 1 else "value"] = _text(data, text)
            if entry["key"] == "location":
                location = entry["value"]
    if external:
        references.append(f"{where or 'tensor'} '{name}' reads external data file {location!r}")


def _walk_node(
    data: memoryview, start: int, end: int, stack: list, references: list[str]
) -> None:
    name, op_type, attributes = "", "", []
    for number, wire_type, value in protobuf.fields(data, start, end):
        if wire_type != protobuf.LENGTH_DELIMITED:
            continue
        if number == _NODE_NAME:
            name = _text(data, value)
        elif number == _NODE_OP_TYPE:
            op_type = _text(data, value)
        elif number == _NODE_ATTRIBUTE:
            attributes.append(value)
    values: dict[str, tuple[int, str]] = {}
    for value in attributes:
        attribute, number_value, text = "", 0, ""
        for number, wire_type, field in protobuf.fields(data, *value):
            if number == _ATTR_NAME and wire_type == protobuf.LENGTH_DELIMITED:
                attribute = _text(data, field)
            elif number == _ATTR_I and wire_type == protobuf.VARINT:
                number_value = field
            elif number == _ATTR_S and wire_type == protobuf.LENGTH_DELIMITED:
                text = _text(data, field)
        values[attribute] = (number_value, text)
        stack.append(("attribute", *value, f"attribute '{attribute}' of node '{name}'"))
    if op_type == "EPContext" and "embed_mode" in values and values["embed_mode"][0] == 0:
        context = values.get("ep_cache_context", (0, ""))[1]
        references.append(f"EPContext node '{name}' reads context file {context!r}")

"""The io specification as the packed 356-byte C struct sent over UART (PROTOCOL.md).

Field order, little-endian, as Kenning's Zephyr runtime reads it::

    u32 num_input; u32 num_input_dim[2]; u32 input_shape[2][4];
    {u8 code; u8 bits} input_data_type[2];
    u32 num_output; u32 num_output_dim[12]; u32 output_shape[12][4];
    {u8 code; u8 bits} output_data_type[12];
    char entry_func[20]; char model_name[20];

Each tensor's shape fills its own row of 4 (unused dimensions 0). Kenning's host packs all
shapes back to back instead, which misplaces them for several tensors with fewer than 4
dimensions; we pad per tensor, as the C struct is read. Type codes are DLPack's.
Quantisation parameters are not in the struct: the host quantises and dequantises itself.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from kenning_hil.core.errors import ConfigurationError

MAX_INPUTS = 2
MAX_OUTPUTS = 12
MAX_DIMS = 4
NAME_LENGTH = 20
DEFAULT_MODEL_NAME = "module"

# DLPack DLDataTypeCode values
DLPACK_CODES = {"int": 0, "uint": 1, "float": 2, "bfloat": 4, "bool": 6}
_CODE_NAMES = {code: name for name, code in DLPACK_CODES.items()}

_STRUCT = struct.Struct(
    f"<I{MAX_INPUTS}I{MAX_INPUTS * MAX_DIMS}I{MAX_INPUTS * 2}B"
    f"I{MAX_OUTPUTS}I{MAX_OUTPUTS * MAX_DIMS}I{MAX_OUTPUTS * 2}B"
    f"{NAME_LENGTH}s{NAME_LENGTH}s"
)
IOSPEC_STRUCT_SIZE = _STRUCT.size
assert IOSPEC_STRUCT_SIZE == 356

_DTYPE = re.compile(r"^(u?int|float|bfloat|bool)(\d*)$")


def dlpack_type(dtype: str) -> tuple[int, int]:
    """(code, bits) of a numpy dtype name: int8 -> (0, 8), float32 -> (2, 32), bool -> (6, 8)."""
    match = _DTYPE.match(str(dtype))
    if not match:
        raise ConfigurationError(
            f"packed io spec: dtype '{dtype}' has no DLPack code "
            "(expected int*, uint*, float*, bfloat16 or bool)"
        )
    name, bits_text = match.groups()
    bits = int(bits_text) if bits_text else (8 if name == "bool" else 0)
    if not 0 < bits < 256:
        raise ConfigurationError(f"packed io spec: dtype '{dtype}' needs a size of 1-255 bits")
    return DLPACK_CODES[name], bits


def dtype_name(code: int, bits: int) -> str:
    """Inverse of `dlpack_type`."""
    if code not in _CODE_NAMES:
        raise ConfigurationError(f"packed io spec: unknown DLPack type code {code}")
    name = _CODE_NAMES[code]
    return "bool" if name == "bool" else f"{name}{bits}"


def _tensor_rows(
    entries: list[dict], limit: int, kind: str
) -> tuple[list[int], list[int], list[int]]:
    if len(entries) > limit:
        raise ConfigurationError(
            f"packed io spec: {len(entries)} {kind}s, the UART struct holds at most {limit}"
        )
    dims, shapes, types = [], [], []
    for index, entry in enumerate(entries):
        shape = list(entry["shape"])
        if len(shape) > MAX_DIMS:
            raise ConfigurationError(
                f"packed io spec: {kind} {index} ('{entry.get('name', '')}') has {len(shape)} "
                f"dimensions, the UART struct holds at most {MAX_DIMS}"
            )
        if shape and shape[0] == -1:
            shape[0] = 1  # dynamic batch: the target runs one sample at a time
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise ConfigurationError(
                f"packed io spec: {kind} {index} has shape {entry['shape']}; only the batch "
                "dimension may be dynamic"
            )
        dims.append(len(shape))
        shapes.extend(shape + [0] * (MAX_DIMS - len(shape)))
        types.extend(dlpack_type(entry["dtype"]))
    padding = limit - len(entries)
    return (
        dims + [0] * padding,
        shapes + [0] * (padding * MAX_DIMS),
        types + [0] * (padding * 2),
    )


def _name_field(value: str, field: str) -> bytes:
    data = value.encode("ascii", errors="strict") if value.isascii() else None
    if data is None or len(data) > NAME_LENGTH:
        raise ConfigurationError(
            f"packed io spec: {field} '{value}' must be ASCII of at most {NAME_LENGTH} characters"
        )
    return data


def pack_io_spec(spec: dict[str, Any], model_name: str = DEFAULT_MODEL_NAME) -> bytes:
    """Packs a JSON io spec into the 356-byte struct.

    Inputs come from ``processed_input`` when present (the target gets preprocessed data),
    else ``input``; outputs from ``output``; ``entry_func`` from the spec (default empty).
    Raises ConfigurationError before anything is sent when the spec does not fit.
    """
    inputs = spec.get("processed_input", spec.get("input"))
    outputs = spec.get("output")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise ConfigurationError("packed io spec: the io spec needs 'input' and 'output' lists")
    in_dims, in_shapes, in_types = _tensor_rows(inputs, MAX_INPUTS, "input")
    out_dims, out_shapes, out_types = _tensor_rows(outputs, MAX_OUTPUTS, "output")
    return _STRUCT.pack(
        len(inputs),
        *in_dims,
        *in_shapes,
        *in_types,
        len(outputs),
        *out_dims,
        *out_shapes,
        *out_types,
        _name_field(str(spec.get("entry_func", "")), "entry_func"),
        _name_field(model_name, "model_name"),
    )


def unpack_io_spec(data: bytes) -> dict[str, Any]:
    """Unpacks the struct into a JSON io spec: tensors named ``input_0``... / ``output_0``...,
    with shape and dtype (no quantisation parameters: the struct has none). The struct's
    names are left out (see `unpack_names`): an io spec has only tensor lists."""
    return _unpack(data)[0]


def unpack_names(data: bytes) -> tuple[str, str]:
    """(entry_func, model_name) of a packed struct."""
    return _unpack(data)[1]


def _unpack(data: bytes) -> tuple[dict[str, Any], tuple[str, str]]:
    if len(data) != IOSPEC_STRUCT_SIZE:
        raise ConfigurationError(
            f"packed io spec: expected {IOSPEC_STRUCT_SIZE} bytes, got {len(data)}"
        )
    fields = _STRUCT.unpack(data)
    pos = 0

    def take(count: int) -> tuple:
        nonlocal pos
        values = fields[pos : pos + count]
        pos += count
        return values

    num_in = take(1)[0]
    in_dims = take(MAX_INPUTS)
    in_shapes = take(MAX_INPUTS * MAX_DIMS)
    in_types = take(MAX_INPUTS * 2)
    num_out = take(1)[0]
    out_dims = take(MAX_OUTPUTS)
    out_shapes = take(MAX_OUTPUTS * MAX_DIMS)
    out_types = take(MAX_OUTPUTS * 2)
    entry_func, model_name = take(2)
    spec: dict[str, Any] = {
        "input": _entries("input", num_in, MAX_INPUTS, in_dims, in_shapes, in_types),
        "output": _entries("output", num_out, MAX_OUTPUTS, out_dims, out_shapes, out_types),
    }
    names = (
        entry_func.split(b"\0", 1)[0].decode("ascii", errors="replace"),
        model_name.split(b"\0", 1)[0].decode("ascii", errors="replace"),
    )
    return spec, names


def _entries(
    kind: str, count: int, limit: int, dims: tuple, shapes: tuple, types: tuple
) -> list[dict]:
    if count > limit:
        raise ConfigurationError(f"packed io spec: num_{kind} is {count}, at most {limit}")
    entries = []
    for index in range(count):
        ndim = dims[index]
        if ndim > MAX_DIMS:
            raise ConfigurationError(
                f"packed io spec: {kind} {index} has {ndim} dimensions, at most {MAX_DIMS}"
            )
        row = shapes[index * MAX_DIMS : index * MAX_DIMS + ndim]
        code, bits = types[2 * index], types[2 * index + 1]
        entries.append(
            {"name": f"{kind}_{index}", "shape": list(row), "dtype": dtype_name(code, bits)}
        )
    return entries

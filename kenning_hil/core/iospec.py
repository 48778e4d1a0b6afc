"""The io specification: the JSON description of a model's input and output tensors, saved
next to each model as ``<model path>.json`` (as in Kenning).

Layout: ``{"input": [entry, ...], "output": [entry, ...]}``, optionally also
``processed_input`` / ``processed_output`` (Kenning's tensors after pre/postprocessing).
An entry describes one tensor:

- ``name`` (str), ``shape`` (list of int; -1 = dynamic), ``dtype`` (numpy dtype name,
  e.g. "float32", "int8");
- quantised tensors: ``scale`` (float, or list for per-channel), ``zero_point`` (int or list),
  ``prequantized_dtype`` (the float dtype before quantisation);
- ``order`` (int): the tensor's position after compilation, when a compiler reordered them.

Other keys are kept and not checked (Kenning puts e.g. class names into output entries).

Quantisation follows TFLite's reference QUANTIZE kernel (reference_ops::AffineQuantize):
``q = clamp(round(x / scale) + zero_point)``, the division done in float32 and ``round`` being
``std::round``, i.e. half away from zero. Dequantisation follows its DEQUANTIZE kernel:
``(q - zero_point) * scale`` in double precision, then cast to float32.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kenning_hil.core.errors import ConfigurationError, InputSizeError, one_line, os_reason
from kenning_hil.core.measurements import write_json_atomic

SPEC_SECTIONS = ("input", "output", "processed_input", "processed_output")
"""Top-level keys of an io specification; the first two are required."""

Rounding = Literal["half_away", "half_even", "trunc"]


# Validation


def validate_io_specification(spec: Any, source: str = "io specification") -> dict:
    """Checks the structure and values of an io specification; returns it unchanged.

    Raises ConfigurationError naming `source`, the entry (e.g. ``input[0]``) and the key.
    """
    if not isinstance(spec, dict):
        raise ConfigurationError(
            f"{source}: must be a JSON object with 'input' and 'output' lists, "
            f"got {_json_name(spec)}"
        )
    for section in ("input", "output"):
        if section not in spec:
            raise ConfigurationError(f"{source}: missing key '{section}' (a list of tensors)")
    for section in spec:
        if section not in SPEC_SECTIONS:
            raise ConfigurationError(
                f"{source}: unknown key '{section}' (expected: {', '.join(SPEC_SECTIONS)})"
            )
        entries = spec[section]
        if not isinstance(entries, list):
            raise ConfigurationError(
                f"{source}: '{section}' must be a list of tensor entries, "
                f"got {_json_name(entries)}"
            )
        for index, entry in enumerate(entries):
            _validate_entry(entry, f"{source}: {section}[{index}]")
        _validate_orders(entries, f"{source}: {section}")
    return spec


MAX_RECEIVED_ENTRIES = 1024
"""Most tensors in one section of an io specification a target server accepts."""
MAX_RECEIVED_RANK = 32
"""Most dimensions of one tensor in an io specification a target server accepts."""


def parse_received_io_specification(
    data: bytes, max_tensor_bytes: int, source: str = "received io specification"
) -> dict:
    """Parses and validates an io specification a client sent, in time linear in its size.

    Bounds what a hostile or mistaken client can make a server do with it: at most
    `MAX_RECEIVED_ENTRIES` tensors per section and `MAX_RECEIVED_RANK` dimensions per tensor,
    and no section whose tensors (one sample, a dynamic batch counted as 1) take more than
    `max_tensor_bytes` bytes (the largest message the server accepts: bigger inputs could
    never be sent, bigger outputs never answered). Raises ConfigurationError naming `source`
    and the first limit broken.
    """
    try:
        spec = json.loads(bytes(data).decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, an integer of thousands of digits
        raise ConfigurationError(f"{source}: not JSON: {one_line(exc, 200)}") from exc
    except RecursionError as exc:
        raise ConfigurationError(f"{source}: not JSON: nested too deeply") from exc
    if isinstance(spec, dict):
        for section, entries in spec.items():
            if isinstance(entries, list) and len(entries) > MAX_RECEIVED_ENTRIES:
                raise ConfigurationError(
                    f"{source}: '{section}' lists {len(entries)} tensors, at most "
                    f"{MAX_RECEIVED_ENTRIES} are accepted"
                )
            if not isinstance(entries, list):
                continue
            for index, entry in enumerate(entries):
                shape = entry.get("shape") if isinstance(entry, dict) else None
                if isinstance(shape, list) and len(shape) > MAX_RECEIVED_RANK:
                    raise ConfigurationError(
                        f"{source}: {section}[{index}] has {len(shape)} dimensions, at most "
                        f"{MAX_RECEIVED_RANK} are accepted"
                    )
    validate_io_specification(spec, source=source)
    for section in SPEC_SECTIONS:
        total = 0
        for index, entry in enumerate(spec.get(section, ())):
            size = numpy_dtype(entry).itemsize
            for dim in entry["shape"]:
                size *= max(int(dim), 1)
                if size > max_tensor_bytes:  # checked per dimension: no huge products
                    break
            total += size
            if total > max_tensor_bytes:
                raise ConfigurationError(
                    f"{source}: the '{section}' tensors take more than {max_tensor_bytes} "
                    f"bytes per sample (from {section}[{index}] '{entry['name']}' on), the "
                    "largest message accepted"
                )
    return spec


def _validate_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: must be an object, got {_json_name(entry)}")
    for key in ("name", "shape", "dtype"):
        if key not in entry:
            raise ConfigurationError(f"{where}: missing key '{key}'")
    if not isinstance(entry["name"], str):
        raise ConfigurationError(
            f"{where}: key 'name' must be a string, got {entry['name']!r}"
        )
    shape = entry["shape"]
    if not isinstance(shape, (list, tuple)) or not all(
        _is_int(dim) and (dim >= 1 or dim == -1) for dim in shape
    ):
        raise ConfigurationError(
            f"{where}: key 'shape' must be a list of positive integers or -1, got {shape!r}"
        )
    _check_dtype(entry["dtype"], where, "dtype", kinds="biuf")
    if "prequantized_dtype" in entry:
        _check_dtype(entry["prequantized_dtype"], where, "prequantized_dtype", kinds="f")
    has_scale, has_zero_point = "scale" in entry, "zero_point" in entry
    if has_scale != has_zero_point:
        present, absent = ("scale", "zero_point") if has_scale else ("zero_point", "scale")
        raise ConfigurationError(f"{where}: key '{present}' given without '{absent}'")
    if has_scale:
        _check_quantization(entry["scale"], entry["zero_point"], where)
    if "order" in entry and not (_is_int(entry["order"]) and entry["order"] >= 0):
        raise ConfigurationError(
            f"{where}: key 'order' must be a non-negative integer, got {entry['order']!r}"
        )


def _check_dtype(value: Any, where: str, key: str, kinds: str) -> np.dtype:
    try:
        dtype = np.dtype(value) if isinstance(value, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in kinds:
        wanted = "a float dtype name such as 'float32'" if kinds == "f" else (
            "a numpy dtype name such as 'float32' or 'int8'"
        )
        raise ConfigurationError(f"{where}: key '{key}' must be {wanted}, got {value!r}")
    return dtype


def _check_quantization(scale: Any, zero_point: Any, where: str) -> None:
    scales = scale if isinstance(scale, list) else [scale]
    zero_points = zero_point if isinstance(zero_point, list) else [zero_point]
    if not scales or not all(
        _is_number(s) and math.isfinite(s) and s > 0 for s in scales
    ):
        raise ConfigurationError(
            f"{where}: key 'scale' must be a positive number or a list of them, got {scale!r}"
        )
    if not zero_points or not all(_is_int(z) for z in zero_points):
        raise ConfigurationError(
            f"{where}: key 'zero_point' must be an integer or a list of them, got {zero_point!r}"
        )
    if isinstance(scale, list) and isinstance(zero_point, list) and len(scale) != len(zero_point):
        raise ConfigurationError(
            f"{where}: keys 'scale' and 'zero_point' must have the same length, "
            f"got {len(scale)} and {len(zero_point)}"
        )


def _validate_orders(entries: list[dict], where: str) -> None:
    with_order = [entry for entry in entries if "order" in entry]
    if not with_order:
        return
    if len(with_order) != len(entries):
        raise ConfigurationError(f"{where}: key 'order' must be given for every entry or none")
    orders = sorted(entry["order"] for entry in entries)
    if orders != list(range(len(entries))):
        raise ConfigurationError(
            f"{where}: key 'order' values must be 0..{len(entries) - 1}, each once, "
            f"got {[entry['order'] for entry in entries]}"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, (float, np.floating))


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# Files


def io_spec_path(model_path: str | os.PathLike) -> Path:
    """Where a model's io specification lives: the model path + ".json" (``m.onnx.json``)."""
    return Path(os.fspath(model_path) + ".json")


def load_io_specification(path: str | os.PathLike) -> dict | None:
    """Reads and validates an io specification file; None when the file does not exist."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read io specification: {os_reason(exc)}") from exc
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{path}: io specification is not valid JSON: {exc}") from exc
    return validate_io_specification(spec, source=str(path))


def save_io_specification(path: str | os.PathLike, spec: dict) -> Path:
    """Validates `spec` and writes it to `path` atomically."""
    validate_io_specification(spec, source=f"io specification for {path}")
    return write_json_atomic(path, spec)


# Entries


def input_entries(spec: dict) -> list[dict]:
    """The input entries, in compiled order when entries carry 'order'."""
    return _ordered(spec["input"])


def output_entries(spec: dict) -> list[dict]:
    """The output entries, in compiled order when entries carry 'order'."""
    return _ordered(spec["output"])


def _ordered(entries: list[dict]) -> list[dict]:
    if entries and all("order" in entry for entry in entries):
        return sorted(entries, key=lambda entry: entry["order"])
    return list(entries)


def raw_tensor_io_specification(spec: dict) -> dict:
    """The io spec a target sees when the host quantises and dequantises itself: tensors in
    compiled order, in the model's own dtypes, without quantisation parameters or `order`,
    so the target neither quantises the (already int8) inputs nor dequantises its outputs."""
    dropped = ("prequantized_dtype", "scale", "zero_point", "order")

    def raw(entries: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k not in dropped} for e in _ordered(entries)]

    return {"input": raw(spec["input"]), "output": raw(spec["output"])}


def numpy_dtype(entry: dict) -> np.dtype:
    """The entry's dtype as a numpy dtype."""
    return _check_dtype(entry.get("dtype"), _entry_name(entry), "dtype", kinds="biuf")


def tensor_shape(entry: dict, batch: int = 1) -> tuple[int, ...]:
    """The entry's shape with a dynamic (-1) first dimension set to `batch`."""
    shape = list(entry["shape"])
    if shape and shape[0] == -1:
        shape[0] = batch
    if any(dim == -1 for dim in shape):
        raise ConfigurationError(
            f"{_entry_name(entry)}: shape {list(entry['shape'])} has a dynamic dimension "
            "other than the first (batch) one; give the concrete size in the io specification"
        )
    return tuple(int(dim) for dim in shape)


def tensor_nbytes(entry: dict, batch: int = 1) -> int:
    """Bytes of one tensor described by `entry` (with batch size `batch`)."""
    return math.prod(tensor_shape(entry, batch)) * numpy_dtype(entry).itemsize


def is_quantized(entry: dict) -> bool:
    """True for an integer tensor carrying its quantisation parameters."""
    if "scale" not in entry or "zero_point" not in entry:
        return False
    return numpy_dtype(entry).kind in "iu"


def _entry_name(entry: dict) -> str:
    return f"tensor '{entry.get('name', '?')}'"


# Quantisation


def quantize(
    x: Any,
    scale: float | Sequence[float] | np.ndarray,
    zero_point: int | Sequence[int] | np.ndarray,
    dtype: str | np.dtype | type,
    *,
    rounding: Rounding = "half_away",
) -> np.ndarray:
    """``clip(round(x / scale) + zero_point)`` to the range of integer `dtype`.

    `x` is taken as float32 and divided by float32 `scale` in float32, as TFLite's reference
    kernel does. `rounding`: "half_away" (std::round, TFLite's default), "half_even"
    (numpy's round, used by e.g. Kenning's Python runtimes) or "trunc". Array scales and
    zero points broadcast against `x` (per-channel along the last axis).
    """
    target = np.dtype(dtype)
    if target.kind not in "iu" or target.itemsize > 4:
        raise ConfigurationError(
            f"quantize: dtype must be an integer type of at most 32 bits, got '{target}'"
        )
    scale_arr = np.asarray(scale, dtype=np.float32)
    if not np.all(np.isfinite(scale_arr) & (scale_arr > 0)):
        raise ConfigurationError(f"quantize: scale must be positive and finite, got {scale!r}")
    values = np.asarray(x, dtype=np.float32)
    if np.isnan(values).any():
        raise InputSizeError("quantize: input contains NaN, which has no quantised value")
    info = np.iinfo(target)
    # inf and overflowing values saturate at the dtype limits in the clamp below.
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = _round(values / scale_arr, rounding)
        # float64 holds every int32 value exactly, so the clamp is exact for all target types.
        shifted = rounded.astype(np.float64) + np.asarray(zero_point, dtype=np.float64)
    return np.clip(shifted, info.min, info.max).astype(target)


def _round(values: np.ndarray, rounding: str) -> np.ndarray:
    if rounding == "half_away":
        whole = np.trunc(values)
        # values - trunc(values) is exact in floating point, so ties are detected exactly
        # (unlike floor(|x| + 0.5), which rounds e.g. 0.49999997 up in float32).
        return np.where(np.abs(values - whole) >= 0.5, whole + np.sign(values), whole)
    if rounding == "half_even":
        return np.rint(values)
    if rounding == "trunc":
        return np.trunc(values)
    raise ConfigurationError(
        f"quantize: rounding must be 'half_away', 'half_even' or 'trunc', got {rounding!r}"
    )


def dequantize(
    q: Any,
    scale: float | Sequence[float] | np.ndarray,
    zero_point: int | Sequence[int] | np.ndarray,
) -> np.ndarray:
    """``(q - zero_point) * scale`` as float32 (computed in float64, then cast, as TFLite's
    reference DEQUANTIZE kernel does)."""
    centred = np.asarray(q, dtype=np.int64) - np.asarray(zero_point, dtype=np.int64)
    return (centred.astype(np.float64) * np.asarray(scale, dtype=np.float64)).astype(np.float32)


def quantize_entry(x: Any, entry: dict, *, rounding: Rounding = "half_away") -> np.ndarray:
    """Quantises `x` with the scale, zero point and dtype of a quantised io spec entry."""
    if not is_quantized(entry):
        raise ConfigurationError(f"{_entry_name(entry)}: is not quantised (no scale/zero_point)")
    return quantize(x, entry["scale"], entry["zero_point"], numpy_dtype(entry), rounding=rounding)


def dequantize_entry(q: Any, entry: dict) -> np.ndarray:
    """Dequantises `q` with the scale and zero point of a quantised io spec entry."""
    if not is_quantized(entry):
        raise ConfigurationError(f"{_entry_name(entry)}: is not quantised (no scale/zero_point)")
    return dequantize(q, entry["scale"], entry["zero_point"])

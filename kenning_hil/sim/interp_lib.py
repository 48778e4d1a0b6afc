"""ctypes binding of the firmware's int8 TFLite interpreter built as a host shared library.

The same C sources run on the MCU (firmware/interp/); on the host they let tests compare the
firmware's arithmetic with LiteRT in milliseconds. Build the library with
`firmware_build.build_interpreter_libraries()` (in a checkout also
``make -C firmware -f interp.mk host-interp``); it lands in the firmware build root's host/.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kenning_hil.core.errors import InputSizeError, KenningHILError, ModelLoadError
from kenning_hil.formats.tflite_flatbuffer import TENSOR_TYPES
from kenning_hil.sim.firmware_build import host_build_dir

LIBRARY_NAME = "libkhil_interp.so"
VARIANTS_LIBRARY_NAME = "libkhil_interp_variants.so"

# khil_status values, in header order.
STATUS_NAMES = (
    "KHIL_OK",
    "KHIL_ERR_PARSE",
    "KHIL_ERR_UNSUPPORTED_OP",
    "KHIL_ERR_UNSUPPORTED_TYPE",
    "KHIL_ERR_ARENA",
    "KHIL_ERR_STATE",
    "KHIL_ERR_ARG",
)

# Load flags and arithmetic variants (firmware/interp/khil_interp.h, khil_quant.h).
LOAD_KEEP_INPUTS = 1 << 8
VARIANT_SINGLE_ROUNDING = 1 << 0
VARIANT_FC_FIXED_POINT = 1 << 1
VARIANT_FLOAT_SCALE_PRODUCT = 1 << 2
VARIANT_FP32_REQUANT = 1 << 3
VARIANT_SHIFT_TIES_UP = 1 << 4


MAX_DIMS = 6
ERR_LEN = 256


class InterpreterError(KenningHILError):
    """The firmware interpreter refused a request; the message is its own error string."""

    def __init__(self, status: int, message: str):
        name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else f"status {status}"
        super().__init__(f"{message} [{name}]")
        self.status = status
        self.status_name = name
        self.detail = message


class InterpreterLoadError(InterpreterError, ModelLoadError):
    """The model could not be loaded (corrupt, unsupported operator/type, arena too small)."""


class _TensorInfo(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_uint8),
        ("ndim", ctypes.c_uint8),
        ("dims", ctypes.c_int32 * MAX_DIMS),
        ("bytes", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("scale", ctypes.c_float),
        ("zero_point", ctypes.c_int32),
    ]


@dataclass(frozen=True)
class TensorInfo:
    """Shape, type and quantisation of one model input or output."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int
    scale: float
    zero_point: int
    tflite_type: int


def default_library_path(variants: bool = False) -> Path:
    """Where the build puts the library; KENNING_HIL_INTERP_LIB overrides the bit-exact one."""
    if not variants and os.environ.get("KENNING_HIL_INTERP_LIB"):
        return Path(os.environ["KENNING_HIL_INTERP_LIB"])
    return host_build_dir() / (VARIANTS_LIBRARY_NAME if variants else LIBRARY_NAME)


_LOADED: dict[Path, ctypes.CDLL] = {}


def load_library(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """Opens the host library (once per path) and declares the C signatures."""
    lib_path = Path(path) if path is not None else default_library_path()
    lib_path = lib_path.resolve()
    if lib_path in _LOADED:
        return _LOADED[lib_path]
    if not lib_path.is_file():
        raise ModelLoadError(
            f"interpreter library {lib_path} not found; build it with "
            "kenning_hil.sim.firmware_build.build_interpreter_libraries()"
        )
    lib = ctypes.CDLL(str(lib_path))
    c_char_p, c_size_t, c_void_p = ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p
    lib.khil_load_ex.argtypes = [
        c_void_p, c_void_p, c_size_t, c_void_p, c_size_t, ctypes.c_uint32, c_char_p, c_size_t,
    ]
    lib.khil_load_ex.restype = ctypes.c_int
    lib.khil_invoke.argtypes = [c_void_p, c_char_p, c_size_t]
    lib.khil_invoke.restype = ctypes.c_int
    for name in ("khil_num_inputs", "khil_num_outputs"):
        getattr(lib, name).argtypes = [c_void_p]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("khil_input", "khil_output"):
        getattr(lib, name).argtypes = [c_void_p, ctypes.c_int, ctypes.POINTER(_TensorInfo)]
        getattr(lib, name).restype = ctypes.c_int
    lib.khil_arena_peak.argtypes = [c_void_p]
    lib.khil_arena_peak.restype = c_size_t
    lib.khil_interp_struct_size.argtypes = []
    lib.khil_interp_struct_size.restype = c_size_t
    _LOADED[lib_path] = lib
    return lib


class FirmwareInterpreter:
    """One model loaded into the C interpreter, with its own arena.

    Inputs are consumed by ``invoke`` unless ``keep_inputs`` is set (the firmware's default
    reuses their memory): call ``set_input`` before every ``invoke``.
    """

    def __init__(
        self,
        model: bytes,
        arena_size: int = 1 << 20,
        library: str | os.PathLike | None = None,
        keep_inputs: bool = False,
        variant: int = 0,
    ):
        if variant and library is None:
            library = default_library_path(variants=True)
        self._lib = load_library(library)
        self._model = ctypes.create_string_buffer(bytes(model), len(model))
        self._arena = ctypes.create_string_buffer(arena_size)
        self._ip = ctypes.create_string_buffer(self._lib.khil_interp_struct_size())
        self._err = ctypes.create_string_buffer(ERR_LEN)
        flags = (LOAD_KEEP_INPUTS if keep_inputs else 0) | variant
        status = self._lib.khil_load_ex(
            self._ip, self._model, len(model), self._arena, arena_size, flags,
            self._err, ERR_LEN,
        )
        if status != 0:
            raise InterpreterLoadError(status, self._err.value.decode(errors="replace"))
        self.inputs = [self._info(self._lib.khil_input, i)
                       for i in range(self._lib.khil_num_inputs(self._ip))]
        self.outputs = [self._info(self._lib.khil_output, i)
                        for i in range(self._lib.khil_num_outputs(self._ip))]

    def _raw_info(self, getter, index: int) -> _TensorInfo:
        info = _TensorInfo()
        status = getter(self._ip, index, ctypes.byref(info))
        if status != 0:
            raise InterpreterError(status, f"no tensor {index}")
        return info

    def _info(self, getter, index: int) -> TensorInfo:
        raw = self._raw_info(getter, index)
        dtype = TENSOR_TYPES.get(raw.type)
        if dtype is None:
            raise InterpreterLoadError(3, f"tensor type {raw.type} has no numpy equivalent")
        return TensorInfo(
            shape=tuple(raw.dims[: raw.ndim]),
            dtype=np.dtype(dtype),
            nbytes=raw.bytes,
            scale=raw.scale,
            zero_point=raw.zero_point,
            tflite_type=raw.type,
        )

    def set_input(self, index: int, value: np.ndarray) -> None:
        """Copies value (same dtype and element count as the input) into the input tensor."""
        spec = self.inputs[index]
        array = np.ascontiguousarray(value)
        if array.dtype != spec.dtype or array.nbytes != spec.nbytes:
            raise InputSizeError(
                f"input {index} expects {spec.dtype} of shape {spec.shape}, "
                f"got {array.dtype} of shape {array.shape}"
            )
        raw = self._raw_info(self._lib.khil_input, index)
        ctypes.memmove(raw.data, array.ctypes.data, spec.nbytes)

    def invoke(self) -> None:
        status = self._lib.khil_invoke(self._ip, self._err, ERR_LEN)
        if status != 0:
            raise InterpreterError(status, self._err.value.decode(errors="replace"))

    def get_output(self, index: int) -> np.ndarray:
        """A copy of output tensor index, shaped as the model declares it."""
        spec = self.outputs[index]
        raw = self._raw_info(self._lib.khil_output, index)
        data = ctypes.string_at(raw.data, spec.nbytes)
        return np.frombuffer(data, dtype=spec.dtype).reshape(spec.shape).copy()

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """set_input for each argument, invoke, and all outputs."""
        for i, value in enumerate(inputs):
            self.set_input(i, value)
        self.invoke()
        return [self.get_output(i) for i in range(len(self.outputs))]

    @property
    def arena_peak(self) -> int:
        """Arena bytes in use: planned activations, per-channel parameters and bookkeeping."""
        return int(self._lib.khil_arena_peak(self._ip))

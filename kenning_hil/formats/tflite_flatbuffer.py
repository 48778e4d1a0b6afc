"""Reads what the host needs from a `.tflite` flatbuffer — input/output tensors with their
quantisation, and the operators used — without any TFLite runtime installed.

Why our own reader: the io specification of a model must be known on the host (to quantise
inputs before sending them to a board) even where no TFLite runtime is installed, and a corrupt
file must give an error naming the file and the broken field, not a crash inside a C++ runtime.

Flatbuffer facts used (flatbuffers binary format; TFLite `schema.fbs` field order):
the file starts with a u32 offset to the root table, optionally followed by the identifier
"TFL3"; a table starts with an i32 offset back to its vtable (vtable = table - offset); the
vtable holds u16 vtable size, u16 table size, then one u16 offset per field (0 = absent);
reference fields hold a u32 offset relative to the field; vectors and strings start with a u32
length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kenning_hil.core.errors import ModelLoadError, os_reason

FILE_IDENTIFIER = b"TFL3"

# TensorType enum of schema.fbs -> numpy dtype name (None: no numpy equivalent)
TENSOR_TYPES: dict[int, str | None] = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: None, 6: "bool",
    7: "int16", 8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64",
    13: None, 14: None, 15: "uint32", 16: "uint16", 17: None, 18: None,
}

# BuiltinOperator enum of schema.fbs, codes 0..127 (later codes are reported by number)
BUILTIN_OPERATORS = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE "
    "EMBEDDING_LOOKUP FLOOR FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D "
    "LOCAL_RESPONSE_NORMALIZATION LOGISTIC LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU "
    "RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX SPACE_TO_DEPTH SVDF TANH "
    "CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB "
    "DIV SQUEEZE UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP "
    "TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX "
    "MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV "
    "SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT RSQRT SHAPE POW ARG_MIN "
    "FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT UNPACK "
    "REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE "
    "RESIZE_NEAREST_NEIGHBOR LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL "
    "REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE "
    "MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 NON_MAX_SUPPRESSION_V5 "
    "SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES"
).split()
CUSTOM_OPERATOR_CODE = 32
# TensorType names of schema.fbs, by code
TENSOR_TYPE_NAMES = (
    "FLOAT32 FLOAT16 INT32 UINT8 INT64 STRING BOOL INT16 COMPLEX64 INT8 FLOAT64 COMPLEX128 "
    "UINT64 RESOURCE VARIANT UINT32 UINT16 INT4 BFLOAT16"
).split()


@dataclass
class TFLiteTensor:
    """One tensor of a subgraph: what the io specification records."""

    name: str
    shape: list[int]
    dtype: str
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quantized_dimension: int = 0

    def io_spec_entry(self) -> dict:
        """The io specification entry: per-tensor values as numbers, per-channel as lists."""
        entry: dict = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.scale:
            quantised = len(self.scale) == 1
            entry["scale"] = float(self.scale[0]) if quantised else [float(s) for s in self.scale]
            entry["zero_point"] = (
                int(self.zero_point[0]) if quantised else [int(z) for z in self.zero_point]
            )
            entry["prequantized_dtype"] = "float32"
        return entry


@dataclass(frozen=True)
class TensorRecord:
    """What a runtime checks of every tensor before running a model: its TFLite type code,
    shape and whether it holds constant data (weights) in the file."""

    type_code: int
    shape: tuple[int, ...]
    constant: bool

    @property
    def type_name(self) -> str:
        """The schema's name of the type ("FLOAT32", "INT8"), as runtimes print it."""
        return TENSOR_TYPE_NAMES[self.type_code] if 0 <= self.type_code < len(
            TENSOR_TYPE_NAMES) else "UNKNOWN"


@dataclass(frozen=True)
class OperatorRecord:
    """One node of subgraph 0: builtin code (CUSTOM: 32) and tensor indices (-1: absent)."""

    code: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass
class TFLiteModelInfo:
    """Inputs, outputs and operators of the first subgraph of a `.tflite` model."""

    inputs: list[TFLiteTensor]
    outputs: list[TFLiteTensor]
    operators: list[str]  # operator name per node, in execution order
    version: int
    # every tensor and node of subgraph 0, for checks against what a runtime supports
    tensors: list[TensorRecord] = field(default_factory=list)
    nodes: list[OperatorRecord] = field(default_factory=list)
    input_indices: list[int] = field(default_factory=list)
    output_indices: list[int] = field(default_factory=list)

    def io_specification(self) -> dict:
        return {
            "input": [t.io_spec_entry() for t in self.inputs],
            "output": [t.io_spec_entry() for t in self.outputs],
        }


class _Reader:
    """Bounds-checked access to flatbuffer tables; errors name the file and the field."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source

    def fail(self, what: str) -> ModelLoadError:
        return ModelLoadError(f"{self.source}: not a valid TFLite flatbuffer ({what})")

    def unpack(self, fmt: str, offset: int, what: str):
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.data):
            raise self.fail(f"{what} at byte {offset} lies outside the {len(self.data)}-byte file")
        return struct.unpack_from("<" + fmt, self.data, offset)[0]

    def field_position(self, table: int, index: int, what: str) -> int | None:
        vtable = table - self.unpack("i", table, f"{what} vtable offset")
        vtable_size = self.unpack("H", vtable, f"{what} vtable size")
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return None
        relative = self.unpack("H", vtable + slot, f"{what} field {index}")
        return table + relative if relative else None

    def scalar(self, table: int, index: int, fmt: str, default, what: str):
        position = self.field_position(table, index, what)
        return default if position is None else self.unpack(fmt, position, what)

    def reference(self, table: int, index: int, what: str) -> int | None:
        position = self.field_position(table, index, what)
        if position is None:
            return None
        return position + self.unpack("I", position, what)

    def vector(self, table: int, index: int, what: str) -> tuple[int, int]:
        """(start of elements, length); (0, 0) when the field is absent."""
        start = self.reference(table, index, what)
        if start is None:
            return 0, 0
        length = self.unpack("I", start, f"{what} length")
        if start + 4 + length > len(self.data):
            raise self.fail(f"{what} of {length} elements runs past the end of the file")
        return start + 4, length

    def scalar_vector(self, table: int, index: int, dtype: str, what: str) -> np.ndarray:
        start, length = self.vector(table, index, what)
        count_bytes = length * np.dtype(dtype).itemsize
        if start + count_bytes > len(self.data):
            raise self.fail(f"{what} runs past the end of the file")
        return np.frombuffer(self.data, dtype="<" + dtype, count=length, offset=start)

    def tables(self, table: int, index: int, what: str) -> list[int]:
        start, length = self.vector(table, index, what)
        return [
            start + 4 * i + self.unpack("I", start + 4 * i, f"{what}[{i}]") for i in range(length)
        ]

    def string(self, table: int, index: int, what: str) -> str:
        start = self.reference(table, index, what)
        if start is None:
            return ""
        length = self.unpack("I", start, f"{what} length")
        raw = self.data[start + 4 : start + 4 + length]
        if len(raw) != length:
            raise self.fail(f"{what} runs past the end of the file")
        return raw.decode("utf-8", errors="replace")


def read_tflite_model(data: bytes, source: str | Path = "<bytes>") -> TFLiteModelInfo:
    """Parses a `.tflite` flatbuffer; raises ModelLoadError naming `source` when it is broken."""
    source = str(source)
    if len(data) < 8:
        raise ModelLoadError(f"{source}: not a valid TFLite flatbuffer ({len(data)} bytes)")
    if data[4:8] != FILE_IDENTIFIER:
        raise ModelLoadError(
            f"{source}: not a TFLite model "
            f"(file identifier {data[4:8]!r}, expected {FILE_IDENTIFIER!r})"
        )
    reader = _Reader(data, source)
    root = reader.unpack("I", 0, "root table offset")
    version = reader.scalar(root, 0, "I", 0, "Model.version")
    operator_codes = []
    builtin_codes = []
    for code_table in reader.tables(root, 1, "Model.operator_codes"):
        deprecated = reader.scalar(code_table, 0, "b", 0, "OperatorCode.deprecated_builtin_code")
        builtin = reader.scalar(code_table, 3, "i", 0, "OperatorCode.builtin_code")
        code = max(deprecated, builtin)  # older files fill only the deprecated byte
        builtin_codes.append(code)
        if code == CUSTOM_OPERATOR_CODE:
            operator_codes.append("CUSTOM:" + reader.string(code_table, 1, "custom_code"))
        elif 0 <= code < len(BUILTIN_OPERATORS):
            operator_codes.append(BUILTIN_OPERATORS[code])
        else:
            operator_codes.append(f"BUILTIN_{code}")
    subgraphs = reader.tables(root, 2, "Model.subgraphs")
    if not subgraphs:
        raise reader.fail("no subgraphs")
    subgraph = subgraphs[0]
    tensor_tables = reader.tables(subgraph, 0, "SubGraph.tensors")

    def tensor(index: int) -> TFLiteTensor:
        if not 0 <= index < len(tensor_tables):
            raise reader.fail(f"tensor index {index} outside 0..{len(tensor_tables) - 1}")
        table = tensor_tables[index]
        type_code = reader.scalar(table, 1, "b", 0, "Tensor.type")
        dtype = TENSOR_TYPES.get(type_code)
        if dtype is None:
            raise ModelLoadError(
                f"{source}: tensor {index} has TFLite type {type_code}, not supported on the host"
            )
        # `shape` is what runtimes allocate (a dynamic batch dimension reads 1 there), which is
        # what the host must send; shape_signature's -1 markers are not used.
        shape = [int(d) for d in reader.scalar_vector(table, 0, "i4", "Tensor.shape")]
        result = TFLiteTensor(reader.string(table, 3, "Tensor.name"), shape, dtype)
        quantization = reader.reference(table, 4, "Tensor.quantization")
        if quantization is not None:
            scales = reader.scalar_vector(quantization, 2, "f4", "QuantizationParameters.scale")
            zeros = reader.scalar_vector(
                quantization, 3, "i8", "QuantizationParameters.zero_point"
            )
            if len(scales):
                if len(zeros) != len(scales):
                    raise reader.fail(
                        f"tensor '{result.name}' has {len(scales)} scales, {len(zeros)} zero points"
                    )
                result.scale = [float(s) for s in scales]
                result.zero_point = [int(z) for z in zeros]
                result.quantized_dimension = reader.scalar(
                    quantization, 6, "i", 0, "QuantizationParameters.quantized_dimension"
                )
        return result

    _check_references(reader, root, subgraph, tensor_tables)
    input_indices = [int(i) for i in reader.scalar_vector(subgraph, 1, "i4", "SubGraph.inputs")]
    output_indices = [int(i) for i in reader.scalar_vector(subgraph, 2, "i4", "SubGraph.outputs")]
    inputs = [tensor(i) for i in input_indices]
    outputs = [tensor(i) for i in output_indices]
    operators = []
    nodes = []
    for op_table in reader.tables(subgraph, 3, "SubGraph.operators"):
        index = reader.scalar(op_table, 0, "I", 0, "Operator.opcode_index")
        if index >= len(operator_codes):
            raise reader.fail(f"operator code index {index} outside 0..{len(operator_codes) - 1}")
        operators.append(operator_codes[index])
        nodes.append(OperatorRecord(
            builtin_codes[index], operator_codes[index],
            tuple(int(t) for t in reader.scalar_vector(op_table, 1, "i4", "Operator.inputs")),
            tuple(int(t) for t in reader.scalar_vector(op_table, 2, "i4", "Operator.outputs")),
        ))
    return TFLiteModelInfo(inputs, outputs, operators, version,
                           _tensor_records(reader, root, tensor_tables), nodes,
                           input_indices, output_indices)


def _tensor_records(reader: _Reader, root: int, tensor_tables: list[int]) -> list[TensorRecord]:
    """Type, shape and constness of every tensor (a tensor is constant when its buffer holds
    data, inline or at an offset past the converter's "not placed" marker 1)."""
    buffers = reader.tables(root, 4, "Model.buffers")
    records = []
    for table in tensor_tables:
        buffer_index = reader.scalar(table, 2, "I", 0, "Tensor.buffer")
        constant = False
        if buffer_index and buffer_index < len(buffers):
            buffer = buffers[buffer_index]
            _, length = reader.vector(buffer, 0, "Buffer.data")
            offset = reader.scalar(buffer, 1, "Q", 0, "Buffer.offset")
            constant = length > 0 or offset > 1
        records.append(TensorRecord(
            reader.scalar(table, 1, "b", 0, "Tensor.type"),
            tuple(int(d) for d in reader.scalar_vector(table, 0, "i4", "Tensor.shape")),
            constant,
        ))
    return records


def _check_references(reader: _Reader, root: int, subgraph: int, tensor_tables: list[int]):
    """Checks what a runtime that trusts the file (TFLite Micro verifies nothing) would follow:
    buffer data inside the file, tensor -> buffer and operator -> tensor indices in range."""
    buffers = reader.tables(root, 4, "Model.buffers")
    for index, buffer in enumerate(buffers):
        reader.vector(buffer, 0, f"Buffer[{index}].data")
        offset = reader.scalar(buffer, 1, "Q", 0, f"Buffer[{index}].offset")
        size = reader.scalar(buffer, 2, "Q", 0, f"Buffer[{index}].size")
        if offset > 1 and offset + size > len(reader.data):
            raise reader.fail(f"Buffer[{index}] data at byte {offset} runs past the end")
    for index, table in enumerate(tensor_tables):
        buffer_index = reader.scalar(table, 2, "I", 0, "Tensor.buffer")
        if buffer_index >= max(len(buffers), 1):
            raise reader.fail(f"tensor {index} refers to buffer {buffer_index} of {len(buffers)}")
    for position, op_table in enumerate(reader.tables(subgraph, 3, "SubGraph.operators")):
        for slot, what in ((1, "inputs"), (2, "outputs")):
            for tensor_index in reader.scalar_vector(op_table, slot, "i4", f"Operator.{what}"):
                if not -1 <= tensor_index < len(tensor_tables):  # -1: optional input absent
                    raise reader.fail(
                        f"operator {position} {what} tensor {int(tensor_index)} outside "
                        f"0..{len(tensor_tables) - 1}"
                    )


def read_tflite_file(path: Path | str) -> TFLiteModelInfo:
    """Reads and parses a `.tflite` file; a missing or broken file is a ModelLoadError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read TFLite model ({os_reason(exc)})") from exc
    return read_tflite_model(data, path)

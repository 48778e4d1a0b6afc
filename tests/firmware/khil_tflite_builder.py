"""Writes small int8 TFLite flatbuffers for kernel tests, with the `flatbuffers` package.

Only the schema subset the firmware interpreter reads (facts from TFLite's schema.fbs): Model,
OperatorCode, SubGraph, Tensor, QuantizationParameters, Operator, Buffer and the options of
the seven supported operators. LiteRT loads these models too, so each one is checked against
LiteRT's reference kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np

# BuiltinOperator codes and their BuiltinOptions union types (schema facts).
ADD, AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D = 0, 1, 3, 4
FULLY_CONNECTED, MUL, RESHAPE, SOFTMAX = 9, 18, 22, 25
OPTIONS_TYPE = {
    CONV_2D: 1, DEPTHWISE_CONV_2D: 2, AVERAGE_POOL_2D: 5, FULLY_CONNECTED: 8,
    SOFTMAX: 9, ADD: 11, RESHAPE: 17, MUL: 21,
}
SAME, VALID = 0, 1
NONE, RELU, RELU_N1_TO_1, RELU6 = 0, 1, 2, 3
TYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.int8): 9}


@dataclass
class _Tensor:
    shape: tuple[int, ...]
    dtype: np.dtype
    buffer: int
    name: str
    scales: list[float] | None
    zero_points: list[int] | None
    quant_dim: int


@dataclass
class _Op:
    builtin: int
    inputs: list[int]
    outputs: list[int]
    # (slot, kind, value) with kind one of "u8", "i32", "f32", "bool", "i32vec"
    options: list[tuple[int, str, object]] = field(default_factory=list)


class TFLiteBuilder:
    """Collects tensors and operators of one subgraph, then serialises the model."""

    def __init__(self) -> None:
        self.buffers: list[bytes] = [b""]  # buffer 0: the schema's empty sentinel
        self.tensors: list[_Tensor] = []
        self.ops: list[_Op] = []

    def tensor(self, shape, dtype=np.int8, scale=None, zero_point=0, data=None,
               quant_dim=0) -> int:
        """Adds a tensor (constant when data is given); scale may be a list (per channel)."""
        dtype = np.dtype(dtype)
        buffer = 0
        if data is not None:
            array = np.ascontiguousarray(np.asarray(data, dtype=dtype).reshape(shape))
            self.buffers.append(array.tobytes())
            buffer = len(self.buffers) - 1
        scales = zero_points = None
        if scale is not None:
            scales = [float(s) for s in np.atleast_1d(scale)]
            zps = np.atleast_1d(zero_point)
            zero_points = [int(z) for z in (zps if zps.size == len(scales)
                                            else np.repeat(zps, len(scales)))]
        self.tensors.append(_Tensor(tuple(int(d) for d in shape), dtype, buffer,
                                    f"t{len(self.tensors)}", scales, zero_points, quant_dim))
        return len(self.tensors) - 1

    def op(self, builtin: int, inputs, outputs, options=()) -> None:
        self.ops.append(_Op(builtin, list(inputs), list(outputs), list(options)))

    # -- serialisation -------------------------------------------------------------------
    def build(self, inputs, outputs) -> bytes:
        b = flatbuffers.Builder(4096)
        codes = sorted({op.builtin for op in self.ops})

        def int_vector(values, kind="i32"):
            return b.CreateNumpyVector(np.asarray(values, dtype=np.int32 if kind == "i32"
                                                  else np.int64))

        def table_vector(offsets):
            b.StartVector(4, len(offsets), 4)
            for off in reversed(offsets):
                b.PrependUOffsetTRelative(off)
            return b.EndVector()

        buffer_offsets = []
        for data in self.buffers:
            data_vec = None
            if data:
                b.StartVector(1, len(data), 16)  # schema: force_align 16
                b.head = b.head - len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                data_vec = b.EndVector()
            b.StartObject(3)
            if data_vec is not None:
                b.PrependUOffsetTRelativeSlot(0, data_vec, 0)
            buffer_offsets.append(b.EndObject())

        tensor_offsets = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = int_vector(t.shape)
            quant = None
            if t.scales is not None:
                scale_vec = b.CreateNumpyVector(np.asarray(t.scales, dtype=np.float32))
                zp_vec = int_vector(t.zero_points, "i64")
                b.StartObject(7)
                b.PrependUOffsetTRelativeSlot(2, scale_vec, 0)
                b.PrependUOffsetTRelativeSlot(3, zp_vec, 0)
                b.PrependInt32Slot(6, t.quant_dim, 0)
                quant = b.EndObject()
            b.StartObject(5)
            b.PrependUOffsetTRelativeSlot(0, shape, 0)
            b.PrependUint8Slot(1, TYPE_CODES[t.dtype], 0)
            b.PrependUint32Slot(2, t.buffer, 0)
            b.PrependUOffsetTRelativeSlot(3, name, 0)
            if quant is not None:
                b.PrependUOffsetTRelativeSlot(4, quant, 0)
            tensor_offsets.append(b.EndObject())

        op_offsets = []
        for op in self.ops:
            vec_fields = {slot: int_vector(v) for slot, kind, v in op.options if kind == "i32vec"}
            b.StartObject(max([s for s, _, _ in op.options], default=0) + 1)
            for slot, kind, value in op.options:
                if kind == "u8":
                    b.PrependUint8Slot(slot, int(value), 0)
                elif kind == "i32":
                    b.PrependInt32Slot(slot, int(value), 0)
                elif kind == "f32":
                    b.PrependFloat32Slot(slot, float(value), 0.0)
                elif kind == "bool":
                    b.PrependBoolSlot(slot, bool(value), False)
                elif kind == "i32vec":
                    b.PrependUOffsetTRelativeSlot(slot, vec_fields[slot], 0)
            options = b.EndObject()
            ins, outs = int_vector(op.inputs), int_vector(op.outputs)
            b.StartObject(5)
            b.PrependUint32Slot(0, codes.index(op.builtin), 0)
            b.PrependUOffsetTRelativeSlot(1, ins, 0)
            b.PrependUOffsetTRelativeSlot(2, outs, 0)
            b.PrependUint8Slot(3, OPTIONS_TYPE[op.builtin], 0)
            b.PrependUOffsetTRelativeSlot(4, options, 0)
            op_offsets.append(b.EndObject())

        tensors_vec = table_vector(tensor_offsets)
        ops_vec = table_vector(op_offsets)
        in_vec, out_vec = int_vector(inputs), int_vector(outputs)
        sg_name = b.CreateString("main")
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, tensors_vec, 0)
        b.PrependUOffsetTRelativeSlot(1, in_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, out_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, ops_vec, 0)
        b.PrependUOffsetTRelativeSlot(4, sg_name, 0)
        subgraph = b.EndObject()

        code_offsets = []
        for code in codes:
            b.StartObject(4)
            b.PrependInt8Slot(0, min(code, 127), 0)
            b.PrependInt32Slot(2, 1, 1)
            b.PrependInt32Slot(3, code, 0)
            code_offsets.append(b.EndObject())
        codes_vec = table_vector(code_offsets)
        subgraphs_vec = table_vector([subgraph])
        buffers_vec = table_vector(buffer_offsets)
        description = b.CreateString("kenning-hil kernel test")
        b.StartObject(5)
        b.PrependUint32Slot(0, 3, 0)
        b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, subgraphs_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, description, 0)
        b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
        model = b.EndObject()
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())


# -- operator helpers (append one op and its constant tensors) -------------------------------

def conv_options(padding=SAME, stride=(1, 1), activation=NONE, dilation=(1, 1)):
    return [(0, "u8", padding), (1, "i32", stride[1]), (2, "i32", stride[0]),
            (3, "u8", activation), (4, "i32", dilation[1]), (5, "i32", dilation[0])]


def depthwise_options(padding=SAME, stride=(1, 1), multiplier=1, activation=NONE,
                      dilation=(1, 1)):
    return [(0, "u8", padding), (1, "i32", stride[1]), (2, "i32", stride[0]),
            (3, "i32", multiplier), (4, "u8", activation), (5, "i32", dilation[1]),
            (6, "i32", dilation[0])]


def pool_options(padding=SAME, stride=(1, 1), filter_size=(2, 2), activation=NONE):
    return [(0, "u8", padding), (1, "i32", stride[1]), (2, "i32", stride[0]),
            (3, "i32", filter_size[1]), (4, "i32", filter_size[0]), (5, "u8", activation)]


def fully_connected_options(activation=NONE, keep_num_dims=False):
    return [(0, "u8", activation), (2, "bool", keep_num_dims)]


def add_options(activation=NONE):
    return [(0, "u8", activation)]


def softmax_options(beta=1.0):
    return [(0, "f32", beta)]


def reshape_options(new_shape):
    return [(0, "i32vec", list(new_shape))]

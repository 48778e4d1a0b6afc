"""Structure-aware mutations of model files, for fuzzing what loads them (the target server
with its runtimes): the result is still a well-formed container (a protobuf message whose
lengths add up, a flatbuffer whose tables and vectors are where their offsets say) with one
to a few fields changed to boundary or odd values, fields deleted, duplicated or swapped.
Random bytes mostly stop at a loader's first check; these reach its deeper ones.

`mutate_protobuf(data, rng)` works on any protobuf (ONNX models); `mutate_tflite(data, rng)`
knows the fields of TFLite's schema that hold indices, shapes, types and lengths.
"""

from __future__ import annotations

import random
import struct

from kenning_hil.formats import protobuf

_VARINT_VALUES = (0, 1, 2, 3, 7, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
                  2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1)
_OP_TYPES = ("Add", "Conv", "Gemm", "MatMul", "Reshape", "Loop", "If", "Scan",
             "ConstantOfShape", "Expand", "Tile", "Resize", "NonZero", "TopK", "Unique", "Where",
             "Slice", "Split", "Concat", "Gather", "EPContext", "Softmax", "Pad", "Range", "")
_MAX_DEPTH = 16


class _Field:
    __slots__ = ("number", "wire_type", "value", "children")

    def __init__(self, number: int, wire_type: int, value, children=None):
        self.number, self.wire_type, self.value, self.children = (
            number, wire_type, value, children)


def _parse(data: bytes, depth: int) -> list[_Field] | None:
    """The fields of `data` as a message, or None when it is not one (then it is bytes)."""
    try:
        raw = list(protobuf.fields(data))
    except protobuf.WireFormatError:
        return None
    if not raw or any(number > 1000 for number, _, _ in raw):
        return None
    result = []
    for number, wire_type, value in raw:
        if wire_type == protobuf.LENGTH_DELIMITED:
            content = bytes(data[value[0] : value[1]])
            children = _parse(content, depth + 1) if depth < _MAX_DEPTH and content else None
            result.append(_Field(number, wire_type, content, children))
        else:
            result.append(_Field(number, wire_type, value))
    return result


def _varint(value: int) -> bytes:
    value &= 2**64 - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _serialize(fields: list[_Field]) -> bytes:
    out = bytearray()
    for field in fields:
        out += _varint(field.number << 3 | field.wire_type)
        if field.wire_type == protobuf.VARINT:
            out += _varint(field.value)
        elif field.wire_type == protobuf.LENGTH_DELIMITED:
            content = _serialize(field.children) if field.children is not None else field.value
            out += _varint(len(content)) + content
        elif field.wire_type == protobuf.FIXED64:
            out += (field.value & 2**64 - 1).to_bytes(8, "little")
        else:
            out += (field.value & 2**32 - 1).to_bytes(4, "little")
    return bytes(out)


def _all_fields(fields: list[_Field]) -> list[tuple[list[_Field], int]]:
    """(the list holding it, its index) for every field at every depth."""
    found, stack = [], [fields]
    while stack:
        current = stack.pop()
        for index, field in enumerate(current):
            found.append((current, index))
            if field.children is not None:
                stack.append(field.children)
    return found


def _mutate_field(siblings: list[_Field], index: int, rng: random.Random) -> None:
    field = siblings[index]
    choice = rng.random()
    if choice < 0.1:
        del siblings[index]
    elif choice < 0.2:
        siblings.insert(index, _Field(field.number, field.wire_type, field.value,
                                      field.children))
    elif choice < 0.25 and len(siblings) > 1:
        other = rng.randrange(len(siblings))
        siblings[index], siblings[other] = siblings[other], siblings[index]
    elif field.wire_type == protobuf.VARINT:
        values = (*_VARINT_VALUES, field.value + 1, max(field.value - 1, 0),
                  rng.getrandbits(rng.choice((8, 16, 32, 64))))
        field.value = rng.choice(values)
    elif field.wire_type in (protobuf.FIXED32, protobuf.FIXED64):
        fmt = "<f" if field.wire_type == protobuf.FIXED32 else "<d"
        special = rng.choice((0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf"),
                              1e38, 1e-45, 3.4e38))
        field.value = int.from_bytes(struct.pack(fmt, special), "little")
    elif field.children is not None and rng.random() < 0.3:
        field.children = None  # the message becomes opaque bytes, mutated next
        field.value = _mutate_bytes(field.value, rng)
    elif field.children is None:
        field.value = _mutate_bytes(field.value, rng)


def _mutate_bytes(value: bytes, rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.2:
        return rng.choice(_OP_TYPES).encode()
    if choice < 0.35:
        return b""
    if choice < 0.5:
        return value[: rng.randrange(len(value) + 1)]
    if choice < 0.6:
        return value * rng.choice((2, 3, 16))
    if choice < 0.75:
        return rng.randbytes(rng.randrange(1, 32))
    if not value:
        return b"\x00"
    data = bytearray(value)
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def mutate_protobuf(data: bytes, rng: random.Random, mutations: int | None = None) -> bytes:
    """`data` (a protobuf message) with 1-3 (or `mutations`) fields mutated; lengths of the
    enclosing messages are re-encoded, so the container stays well formed."""
    fields = _parse(bytes(data), 0)
    if fields is None:
        raise ValueError("not a protobuf message")
    for _ in range(mutations or rng.randrange(1, 4)):
        every = _all_fields(fields)
        if not every:
            break
        siblings, index = rng.choice(every)
        _mutate_field(siblings, index, rng)
    return _serialize(fields)


# --- TFLite flatbuffers ------------------------------------------------------------------------

# (field index, kind) of the tables of TFLite's schema.fbs that a mutation aims at. Kinds:
# a scalar format ("b", "B", "i", "I", "q"), "vec:<format>" (a vector's length and elements),
# "tables:<name>" (a vector of tables), "table:<name>" (one table), "opaque" (a table whose
# schema depends on another field: its fields are mutated as bytes and ints)
_TFLITE_SCHEMA: dict[str, tuple[tuple[int, str], ...]] = {
    "Model": ((0, "I"), (1, "tables:OperatorCode"), (2, "tables:SubGraph"),
              (4, "tables:Buffer"), (5, "vec:i")),
    "OperatorCode": ((0, "b"), (2, "i"), (3, "i")),
    "SubGraph": ((0, "tables:Tensor"), (1, "vec:i"), (2, "vec:i"), (3, "tables:Operator")),
    "Tensor": ((0, "vec:i"), (1, "b"), (2, "I"), (4, "table:Quantization"), (5, "B"),
               (7, "vec:i")),
    "Quantization": ((0, "vec:f"), (1, "vec:f"), (2, "vec:f"), (3, "vec:q"), (6, "i")),
    "Operator": ((0, "I"), (1, "vec:i"), (2, "vec:i"), (3, "B"), (4, "opaque"),
                 (5, "vec:B"), (6, "B"), (7, "vec:B"), (8, "vec:i")),
    "Buffer": ((0, "vec:B"), (1, "q"), (2, "q")),
}
_WIDTH = {"b": 1, "B": 1, "i": 4, "I": 4, "f": 4, "q": 8}


class _Slots:
    """Byte ranges of a flatbuffer that hold mutable values: (offset, format)."""

    def __init__(self, data: bytes):
        self.data = data
        self.slots: list[tuple[int, str]] = []

    def u32(self, offset: int) -> int | None:
        if 0 <= offset and offset + 4 <= len(self.data):
            return struct.unpack_from("<I", self.data, offset)[0]
        return None

    def field(self, table: int, index: int) -> int | None:
        back = self.u32(table)
        if back is None:
            return None
        vtable = table - struct.unpack("<i", back.to_bytes(4, "little"))[0]
        if not 0 <= vtable <= len(self.data) - 4:
            return None
        size = struct.unpack_from("<H", self.data, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > size or vtable + slot + 2 > len(self.data):
            return None
        relative = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return table + relative if relative else None

    def walk(self, table: int, name: str, budget: list[int]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            return
        self.slots.append((table, "i"))  # the offset to the vtable
        for index, kind in _TFLITE_SCHEMA[name]:
            position = self.field(table, index)
            if position is None:
                continue
            if kind in _WIDTH:
                self.slots.append((position, kind))
                continue
            target = self.u32(position)
            if target is None:
                continue
            self.slots.append((position, "I"))  # the reference itself
            start = position + target
            if kind == "opaque":
                self._opaque(start)
            elif kind.startswith("table:"):
                self.walk(start, kind[6:], budget)
            else:
                length = self.u32(start)
                if length is None:
                    continue
                self.slots.append((start, "I"))  # the vector's length
                if kind.startswith("vec:"):
                    width = _WIDTH[kind[4:]]
                    count = min(length, 64, (len(self.data) - start - 4) // width)
                    self.slots.extend((start + 4 + i * width, kind[4:]) for i in range(count))
                else:
                    for i in range(min(length, 256)):
                        element = start + 4 + 4 * i
                        offset = self.u32(element)
                        if offset is not None:
                            self.walk(element + offset, kind[7:], budget)

    def _opaque(self, table: int) -> None:
        for index in range(16):
            position = self.field(table, index)
            if position is not None:
                self.slots.append((position, "b"))


def _value(fmt: str, rng: random.Random, current: int) -> int:
    bits = 8 * _WIDTH[fmt]
    signed = fmt in ("b", "i", "q")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    choices = (0, 1, -1, 2, low, high, current + 1, current - 1, current * 2, current + 1000,
               rng.randint(low, high))
    return max(low, min(high, rng.choice(choices)))


def mutate_tflite(data: bytes, rng: random.Random, mutations: int | None = None) -> bytes:
    """`data` (a .tflite flatbuffer) with 1-3 (or `mutations`) of its indices, shapes, types,
    vector lengths, offsets or option bytes changed in place."""
    out = bytearray(data)
    root = struct.unpack_from("<I", data, 0)[0]
    slots = _Slots(bytes(data))
    slots.walk(root, "Model", [4096])
    if not slots.slots:
        raise ValueError("no TFLite fields found")
    for _ in range(mutations or rng.randrange(1, 4)):
        offset, fmt = rng.choice(slots.slots)
        if fmt == "f":
            special = rng.choice((0.0, -1.0, float("nan"), float("inf"), 1e-45, 3.4e38))
            struct.pack_into("<f", out, offset, special)
            continue
        current = struct.unpack_from("<" + fmt, out, offset)[0]
        struct.pack_into("<" + fmt, out, offset, _value(fmt, rng, current))
    return bytes(out)

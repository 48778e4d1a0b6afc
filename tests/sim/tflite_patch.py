"""Edits a TFLite flatbuffer in place to make test models: replace one builtin operator code
(a model with an operator the firmware does not support). Flatbuffer facts: the file starts
with the u32 offset of the root table; a table starts with an i32 offset back to its vtable
(u16 vtable size, u16 table size, u16 field offsets); Model field 1 is `operator_codes`;
OperatorCode field 0 is `deprecated_builtin_code` (i8), field 3 `builtin_code` (i32)."""

from __future__ import annotations

import struct

BUILTIN = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4,
           "FULLY_CONNECTED": 9, "MUL": 18, "RESHAPE": 22, "SOFTMAX": 25, "TANH": 28}


def _field(data: bytes, table: int, index: int) -> int | None:
    vtable = table - struct.unpack_from("<i", data, table)[0]
    vtable_size = struct.unpack_from("<H", data, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", data, vtable + slot)[0]
    return table + offset if offset else None


def replace_operator(model: bytes, old: str, new: str) -> bytes:
    """Returns a copy of `model` whose operator code `old` reads as `new`."""
    data = bytearray(model)
    root = struct.unpack_from("<I", data, 0)[0]
    codes = _field(data, root, 1)
    assert codes is not None, "model has no operator_codes"
    vector = codes + struct.unpack_from("<I", data, codes)[0]
    replaced = 0
    for i in range(struct.unpack_from("<I", data, vector)[0]):
        entry = vector + 4 + 4 * i
        table = entry + struct.unpack_from("<I", data, entry)[0]
        deprecated = _field(data, table, 0)
        builtin = _field(data, table, 3)
        code = struct.unpack_from("<i", data, builtin)[0] if builtin else None
        if code is None and deprecated is not None:
            code = struct.unpack_from("<b", data, deprecated)[0]
        if code == BUILTIN[old]:
            if deprecated is not None:
                struct.pack_into("<b", data, deprecated, BUILTIN[new])
            if builtin is not None:
                struct.pack_into("<i", data, builtin, BUILTIN[new])
            replaced += 1
    assert replaced, f"model has no {old} operator"
    return bytes(data)

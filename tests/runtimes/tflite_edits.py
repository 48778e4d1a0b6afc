"""Test helpers that edit `.tflite` flatbuffers in place (no TFLite library needed)."""

from __future__ import annotations

import struct

from kenning_hil.formats.tflite_flatbuffer import BUILTIN_OPERATORS, _Reader


def replace_operator(data: bytes, old: str, new_code: int) -> bytes:
    """The model with every use of builtin operator `old` turned into builtin `new_code`:
    a structurally valid model whose operator a runtime may lack."""
    patched = bytearray(data)
    reader = _Reader(data, "model")
    root = reader.unpack("I", 0, "root")
    old_code = BUILTIN_OPERATORS.index(old)
    found = False
    for table in reader.tables(root, 1, "operator_codes"):
        deprecated = reader.field_position(table, 0, "deprecated_builtin_code")
        builtin = reader.field_position(table, 3, "builtin_code")
        code = max(reader.unpack("b", deprecated, "") if deprecated else 0,
                   reader.unpack("i", builtin, "") if builtin else 0)
        if code != old_code:
            continue
        found = True
        if builtin:
            struct.pack_into("<i", patched, builtin, new_code)
        if deprecated:
            struct.pack_into("<b", patched, deprecated, min(new_code, 127))
    if not found:
        raise ValueError(f"model has no {old} operator")
    return bytes(patched)

"""The protobuf wire format, read without a schema: the fields of one message, for checks
that must look inside a file (an ONNX model) before its own loader does, without importing
a protobuf library (`import onnx` alone takes seconds).

Only what a check needs: field number, wire type and value (an int for varints and fixed
widths, a (start, end) byte range for length-delimited fields). Groups (wire types 3 and 4,
unused by proto3 files) and truncated data are a `WireFormatError`.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireFormatError(ValueError):
    """The bytes are not a protobuf message."""


def read_varint(data: bytes | memoryview, position: int, end: int) -> tuple[int, int]:
    """(value, position after it); at most 10 bytes, as protobuf writes them."""
    value = 0
    for shift in range(0, 70, 7):
        if position >= end:
            raise WireFormatError(f"truncated varint at byte {position}")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
    raise WireFormatError(f"varint longer than 10 bytes before byte {position}")


def fields(
    data: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    """(field number, wire type, value) of each field of the message in data[start:end]."""
    end = len(data) if end is None else end
    position = start
    while position < end:
        key, position = read_varint(data, position, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(f"field number 0 at byte {position}")
        if wire_type == VARINT:
            value, position = read_varint(data, position, end)
            yield number, wire_type, value
        elif wire_type == LENGTH_DELIMITED:
            length, position = read_varint(data, position, end)
            if length > end - position:
                raise WireFormatError(
                    f"field {number} at byte {position} is {length} bytes long, "
                    f"{end - position} remain"
                )
            yield number, wire_type, (position, position + length)
            position += length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if size > end - position:
                raise WireFormatError(f"truncated fixed-width field {number} at byte {position}")
            yield number, wire_type, int.from_bytes(data[position : position + size], "little")
            position += size
        else:
            raise WireFormatError(f"unsupported wire type {wire_type} at byte {position}")

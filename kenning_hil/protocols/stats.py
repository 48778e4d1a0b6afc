"""Target statistics (the STATS answer): JSON over TCP, 48-byte records over UART.

UART record (PROTOCOL.md): ``char name[32]; uint64 type; uint64 value`` little-endian, type
0 = default, 1 = allocation (bytes), 2 = inference time (ns). Kenning's UART host keeps only
allocation records; we keep all of them. Both forms decode into a dict of lists, the shape of
`Measurements`: ``{"target_inference_step": [ns, ...], "peak_allocated": [bytes], ...}`` (the
names are `kenning_hil.core.measurements`' constants).
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

from kenning_hil.core.errors import KenningHILError

STAT_NAME_LENGTH = 32
_RECORD = struct.Struct(f"<{STAT_NAME_LENGTH}sQQ")
STAT_RECORD_SIZE = _RECORD.size
assert STAT_RECORD_SIZE == 48


class StatType(IntEnum):
    DEFAULT = 0
    ALLOCATION = 1
    INFERENCE_TIME = 2


class StatsFormatError(KenningHILError):
    """A STATS payload that is neither a JSON object nor whole 48-byte records."""


def pack_stat_records(records: list[tuple[str, int, int]]) -> bytes:
    """Packs (name, type, value) records as a target sends them."""
    out = bytearray()
    for name, stat_type, value in records:
        encoded = name.encode("ascii")
        if len(encoded) > STAT_NAME_LENGTH:
            raise ValueError(f"statistic name '{name}' longer than {STAT_NAME_LENGTH} bytes")
        out += _RECORD.pack(encoded, int(stat_type), int(value))
    return bytes(out)


def unpack_stat_records(data: bytes) -> list[tuple[str, StatType | int, int]]:
    """(name, type, value) of each record; unknown types are kept as plain ints."""
    if len(data) % STAT_RECORD_SIZE:
        raise StatsFormatError(
            f"STATS payload of {len(data)} bytes is not a whole number of "
            f"{STAT_RECORD_SIZE}-byte records"
        )
    records = []
    for offset in range(0, len(data), STAT_RECORD_SIZE):
        raw_name, stat_type, value = _RECORD.unpack_from(data, offset)
        name = raw_name.split(b"\0", 1)[0].decode("ascii", errors="replace")
        if not name:
            raise StatsFormatError(f"STATS record at byte {offset} has an empty name")
        try:
            stat_type = StatType(stat_type)
        except ValueError:
            pass
        records.append((name, stat_type, value))
    return records


def records_to_measurements(records: list[tuple[str, int, int]]) -> dict[str, list]:
    """Records -> dict of lists; a name repeated in several records collects all values.
    Units follow the record type: bytes for allocation, nanoseconds for inference time."""
    measurements: dict[str, list] = {}
    for name, _, value in records:
        measurements.setdefault(name, []).append(value)
    return measurements


def encode_json_stats(stats: dict[str, Any]) -> bytes:
    return json.dumps(stats, separators=(",", ":")).encode("utf-8")


def decode_json_stats(data: bytes) -> dict[str, list]:
    """A JSON object of lists (a scalar value becomes a one-element list)."""
    try:
        stats = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatsFormatError(f"STATS payload is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(stats, dict):
        raise StatsFormatError(
            f"STATS payload must be a JSON object, got {type(stats).__name__}"
        )
    return {key: value if isinstance(value, list) else [value] for key, value in stats.items()}


def decode_stats(data: bytes) -> dict[str, list]:
    """Either form, told apart by the leading ``{`` of JSON (a record starts with its name)."""
    if not data:
        return {}
    if data.lstrip()[:1] == b"{":
        return decode_json_stats(data)
    return records_to_measurements(unpack_stat_records(data))

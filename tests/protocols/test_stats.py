"""STATS payloads: UART 48-byte records and TCP JSON."""

import pytest

from kenning_hil.protocols.stats import (
    STAT_RECORD_SIZE,
    StatsFormatError,
    StatType,
    decode_stats,
    encode_json_stats,
    pack_stat_records,
    unpack_stat_records,
)


def test_records_as_the_zephyr_runtime_sends_them():
    data = pack_stat_records(
        [
            ("peak_allocated", StatType.ALLOCATION, 20480),
            ("target_inference_step", StatType.INFERENCE_TIME, 1_500_000),
            ("target_inference_step_timestamp", StatType.INFERENCE_TIME, 99),
            ("target_inference_step", StatType.INFERENCE_TIME, 1_400_000),
        ]
    )
    assert len(data) == 4 * STAT_RECORD_SIZE == 192
    assert data[:14] == b"peak_allocated" and data[14:32] == b"\0" * 18
    assert data[32:40] == (1).to_bytes(8, "little")
    stats = decode_stats(data)
    assert stats == {
        "peak_allocated": [20480],
        "target_inference_step": [1_500_000, 1_400_000],
        "target_inference_step_timestamp": [99],
    }


def test_unknown_record_type_is_kept():
    records = unpack_stat_records(pack_stat_records([("x", 7, 1)]))
    assert records == [("x", 7, 1)]


def test_json_stats():
    assert decode_stats(encode_json_stats({"target_inference_step": [1, 2], "mem": 5})) == {
        "target_inference_step": [1, 2],
        "mem": [5],
    }


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"x" * 47, "not a whole number of 48-byte records"),
        (b"{not json", "not valid UTF-8 JSON"),
        (b"[1, 2]", "not a whole number"),
        (b"\0" * 48, "empty name"),
    ],
)
def test_malformed_stats_are_named(payload, message):
    with pytest.raises(StatsFormatError, match=message):
        decode_stats(payload)

"""Timing thresholds in several units: each applies where the target measures that unit; a
note says a bound went unchecked only when no bound in the target's own unit is left."""

import pytest

from kenning_hil.core.measurements import Latency, Measurements
from kenning_hil.judge.thresholds import parse_thresholds
from kenning_hil.run.harness import split_timing_thresholds
from kenning_hil.run.results import Result


def result(source: str, values: list[float]) -> Result:
    latency = Latency.from_measurements({source: values})
    return Result("t::x", "board", "m", [], len(values), {"accuracy": 1.0}, latency, 100,
                  Measurements())


BOARD = ("target_inference_instructions", [7.5e6, 7.6e6, 7.5e6])
HOST = ("target_inference_step", [40_000.0, 42_000.0, 41_000.0])  # ns


@pytest.mark.parametrize(
    ("measured", "bounds", "checked", "noted"),
    [
        (BOARD, {"latency.p95": "50ms", "instructions.p95": "8M"}, ["instructions.p95"], []),
        (HOST, {"latency.p95": "50ms", "instructions.p95": "8M"}, ["latency.p95"], []),
        (BOARD, {"latency.p95": "50ms", "accuracy": 0.9}, ["accuracy"], ["latency.p95"]),
        (HOST, {"instructions.p50": "8M"}, [], ["instructions.p50"]),
    ],
)
def test_each_unit_applies_where_it_is_measured(measured, bounds, checked, noted):
    thresholds = parse_thresholds(bounds, "test")
    applicable, notes = split_timing_thresholds(result(*measured), thresholds)
    assert [t.metric for t in applicable] == checked
    assert len(notes) == len(noted)
    for metric, note in zip(noted, notes):
        assert note.startswith(f"threshold '{metric} <=") and "not checked: target 'board'" in note

"""Distinct outputs beside every agreement and comparison figure (#23 finding 4): an
exact-match rate over samples that all gave the same output checks one output."""

from __future__ import annotations

import numpy as np

from kenning_hil.judge.agreement import (
    OutputTolerance,
    PairAgreement,
    compare_outputs,
    distinct_outputs,
    render_agreement_table,
)

ENTRY = {"name": "y", "shape": [-1, 3], "dtype": "int8", "scale": 0.5, "zero_point": 0}


def test_distinct_outputs_counts_whole_samples_across_outputs():
    first = np.array([[1, 2], [1, 2], [1, 2], [3, 4]], dtype=np.int8)
    second = np.array([[0], [5], [0], [0]], dtype=np.int8)
    assert distinct_outputs([first]) == 2
    assert distinct_outputs([first, second]) == 3  # samples 0 and 2 alone are equal
    assert distinct_outputs([np.zeros((0, 2))]) == 0


def test_a_comparison_reports_distinct_outputs_and_warns_below_half():
    same = np.tile(np.array([[1.0, -0.5, 0.0]], dtype=np.float32), (10, 1))
    pair = compare_outputs([same], [same.copy()], [ENTRY], OutputTolerance(), "ref", "board")
    assert pair.passed and pair.distinct_outputs == 1
    assert pair.to_dict()["distinct_outputs"] == 1
    assert "(1 distinct outputs)" in pair.summary()
    assert "only 1 distinct outputs in 10 samples" in pair.few_distinct_warning()
    assert "warning: only 1 distinct outputs" in pair.summary()

    varied = (np.arange(30, dtype=np.float32).reshape(10, 3) - 15) / 2
    pair = compare_outputs([varied], [varied.copy()], [ENTRY], OutputTolerance(), "ref", "b")
    assert pair.distinct_outputs == 10 and pair.few_distinct_warning() == ""
    assert "warning" not in pair.summary()
    # exactly half is enough
    half = np.repeat(varied[:5], 2, axis=0)
    pair = compare_outputs([half], [half.copy()], [ENTRY], OutputTolerance(), "ref", "b")
    assert pair.distinct_outputs == 5 and pair.few_distinct_warning() == ""


def test_the_agreement_table_has_a_distinct_outputs_column():
    row = PairAgreement("m.tflite", "litert-ref", "tflm", 20, 1.0, 1.0, 0, None, 17)
    table = render_agreement_table([row]).splitlines()
    assert "distinct outputs" in table[0]
    assert table[2].startswith("| m.tflite | litert-ref vs tflm | 20 | 17 | 100% |")

"""The judge of differential tests (judge/agreement.py): tolerances as suites and hil.compare
give them, and outputs compared sample by sample in quantisation steps or float values."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.iospec import dequantize
from kenning_hil.judge.agreement import (
    EXACT,
    OutputTolerance,
    compare_outputs,
    parse_output_tolerance,
)

INT8_OUT = {"name": "Identity", "shape": [-1, 4], "dtype": "int8", "scale": 0.00390625 * 3,
            "zero_point": -7}
FLOAT_OUT = {"name": "logits", "shape": [-1, 3], "dtype": "float32"}


def dequantised(q) -> np.ndarray:
    """What a runtime hands over for a quantised output: (q - zp) * scale in float32."""
    return dequantize(np.asarray(q, np.int8), INT8_OUT["scale"], INT8_OUT["zero_point"])


@pytest.mark.parametrize("value, expected", [
    (None, EXACT),
    ({"exact": True}, EXACT),
    ({"max_lsb": 0}, EXACT),
    ({"max_lsb": 3}, OutputTolerance(max_lsb=3)),
    ({"atol": "1e-5"}, OutputTolerance(max_lsb=None, atol=1e-5)),  # YAML reads 1e-5 as text
    ({"atol": 0.01, "rtol": 0.1}, OutputTolerance(max_lsb=None, atol=0.01, rtol=0.1)),
])
def test_tolerances(value, expected):
    assert parse_output_tolerance(value, "here") == expected


@pytest.mark.parametrize("value, message", [
    ({"exact": False}, "here: 'exact' can only be true"),
    ({"exact": True, "max_lsb": 1}, "here: 'exact' cannot be combined with max_lsb"),
    ({"max_lsb": 1, "atol": 0.1}, "here: 'max_lsb' (quantisation steps) cannot be combined"),
    ({"max_lsb": -1}, "here: 'max_lsb' must be a non-negative integer, not -1"),
    ({"max_lsb": 1.5}, "here: 'max_lsb' must be a non-negative integer, not 1.5"),
    ({"atol": "small"}, "here: 'atol' must be a non-negative number, not 'small'"),
    ({"max_lbs": 1}, "here: unknown tolerance key 'max_lbs' (known: exact, max_lsb, atol"),
    ({}, "here: empty tolerance"),
    ("exact", "here: a comparison tolerance is a mapping"),
])
def test_bad_tolerances_are_one_line_errors(value, message):
    with pytest.raises(ConfigurationError) as error:
        parse_output_tolerance(value, "here")
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_quantised_outputs_compared_in_steps_from_their_dequantised_values():
    reference = [[-128, 0, 5, 127], [1, 2, 3, 4], [9, 9, 9, 9]]
    target = [[-128, 0, 5, 127], [1, 4, 3, 3], [9, 9, 9, 10]]
    pair = compare_outputs([dequantised(reference)], [dequantised(target)], [INT8_OUT], EXACT,
                           "ref", "board")
    assert pair.unit == "steps"
    assert (pair.samples, pair.exact_samples) == (3, 1)
    assert pair.exact_match_rate == pytest.approx(1 / 3)
    assert pair.max_difference == 2
    assert pair.max_at == {"sample": 1, "output": "Identity", "element": 1}
    assert pair.per_sample_max_difference == [0, 2, 1]
    assert pair.failing_samples == [1, 2]
    assert pair.first_mismatch == {"sample": 1, "output": "Identity", "element": 1,
                                   "reference": [1, 2, 3, 4], "target": [1, 4, 3, 3]}
    message = pair.failure()
    assert "in 2 of 3 samples, first sample 1" in message
    assert "max difference 2 steps at sample 1 (Identity)" in message
    assert "reference [1, 2, 3, 4], board [1, 4, 3, 3]" in message
    # within two steps it passes, and says so in the record
    loose = compare_outputs([dequantised(reference)], [dequantised(target)], [INT8_OUT],
                            OutputTolerance(max_lsb=2), "ref", "board")
    assert loose.passed and loose.failure() == ""
    record = loose.to_dict()
    assert record["tolerance"] == {"max_lsb": 2}
    assert record["per_sample"]["max_difference"] == [0, 2, 1]
    assert record["first_failing_sample"] is None


def test_float_outputs_with_atol_and_rtol():
    reference = np.array([[1.0, -2.0, 0.0], [10.0, 10.0, 10.0]], np.float32)
    target = reference + np.array([[0.001, 0.0, 0.0], [0.5, 0.0, 0.0]], np.float32)
    pair = compare_outputs([reference], [target], [FLOAT_OUT],
                           OutputTolerance(max_lsb=None, atol=0.01, rtol=0.01), "a", "b")
    assert pair.unit == "abs"
    assert pair.failing_samples == [1]  # 0.5 > 0.01 + 0.01 * 10
    assert pair.max_difference == pytest.approx(0.5)
    assert pair.max_relative_difference == pytest.approx(0.05)
    with pytest.raises(ConfigurationError, match="needs quantised outputs; output 'logits'"):
        compare_outputs([reference], [target], [FLOAT_OUT], OutputTolerance(max_lsb=1), "a",
                        "b")


def test_outputs_that_do_not_match_in_shape_are_an_error():
    with pytest.raises(ConfigurationError, match=r"output 'Identity': board gave shape \(2, 4\)"):
        compare_outputs([dequantised([[1, 2, 3, 4]] * 3)], [dequantised([[1, 2, 3, 4]] * 2)],
                        [INT8_OUT], EXACT, "ref", "board")


def test_captured_outputs_tell_whether_two_runs_had_the_same_inputs():
    from kenning_hil.run.results import CapturedOutputs

    inputs = [np.arange(8, dtype=np.float32).reshape(2, 4)]
    first, same, other = CapturedOutputs(), CapturedOutputs(), CapturedOutputs()
    first(inputs, [np.zeros((2, 3))])
    same([inputs[0].copy()], [np.ones((2, 3))])
    other([inputs[0][::-1]], [np.zeros((2, 3))])
    assert first.inputs_digest == same.inputs_digest != other.inputs_digest
    assert [a.shape for a in first.arrays()] == [(2, 3)]

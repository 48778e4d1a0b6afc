"""The root causes written down in docs/firmware-interpreter.md, kept true: each runtime's
difference from LiteRT's reference kernels is reproduced exactly by one arithmetic variant of
the firmware interpreter, and is not there without it."""

from __future__ import annotations

import pytest

from .khil_arithmetic_survey import survey

SAMPLES = 12


@pytest.fixture
def model(request, mlperf_tiny_dir):
    path = mlperf_tiny_dir / request.param
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def by_pair(rows):
    return {(r.first, r.second): r for r in rows}


@pytest.mark.parametrize("model", ["ad01_int8.tflite"], indirect=True)
def test_tflm_differs_only_by_fully_connected_requantisation(model, interp_libraries):
    pytest.importorskip("tflite_micro")
    pytest.importorskip("ai_edge_litert")
    rows = by_pair(survey(model, SAMPLES, pairs=(
        ("litert-ref", "khil", ""), ("litert-ref", "tflm", ""),
        ("tflm", "khil[fc-fixed-point]", ""), ("litert-opt", "khil[fc-fixed-point,ties-up]", ""),
    ), libraries=interp_libraries))
    assert rows["litert-ref", "khil"].exact_rate == 1.0
    assert rows["litert-ref", "tflm"].element_rate < 0.95  # the difference is real ...
    assert rows["tflm", "khil[fc-fixed-point]"].exact_rate == 1.0  # ... and fully explained
    assert rows["litert-opt", "khil[fc-fixed-point,ties-up]"].exact_rate == 1.0


@pytest.mark.parametrize("model", ["pretrainedResnet_quant.tflite"], indirect=True)
def test_litert_default_differs_by_fp32_requantisation(model, interp_libraries):
    pytest.importorskip("ai_edge_litert")
    rows = by_pair(survey(model, SAMPLES, pairs=(
        ("litert-ref", "litert", ""), ("litert", "khil[fp32-requant]", ""),
        ("litert", "khil[single-rounding]", ""),
    ), libraries=interp_libraries))
    assert rows["litert-ref", "litert"].max_difference > 5
    assert rows["litert", "khil[fp32-requant]"].exact_rate == 1.0
    assert rows["litert", "khil[single-rounding]"].element_rate < 1.0

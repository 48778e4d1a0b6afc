"""Agreement between the TFLite runtimes on the same random int8 inputs: LiteRT reference
kernels (the oracle), LiteRT default kernels and TFLite Micro, for the four MLPerf Tiny int8
models (from the models path) and the project's own digits int8 model.

The exact-match expectations are regression checks of what was measured with ai-edge-litert
2.3.0 and tflite-micro 0.dev20261023 (table in docs/runtimes.md); why the kernels differ where
they do is analysed in docs/firmware-interpreter.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kenning_hil.datasets.mlperf_tiny import MLPERF_TINY_MODELS, mlperf_tiny_model_path

pytest.importorskip("ai_edge_litert", reason="needs the 'litert' extra")
pytest.importorskip("tflite_micro", reason="needs the 'tflm' extra")

from optimizers.conftest import digits_dataset, digits_int8_tflite, digits_onnx  # noqa: E402,F401

from kenning_hil.judge.agreement import compare_runtimes, render_agreement_table  # noqa: E402

SAMPLES = 100

# (model, first runtime, second runtime) pairs measured to agree bit for bit
EXACT_PAIRS = {
    ("kws", "litert-ref", "tflm"),
    ("vww", "litert-ref", "tflm"),
    ("ad", "litert-ref", "litert"),
    ("digits", "litert-ref", "litert"),
}


@pytest.fixture(params=[m.name for m in MLPERF_TINY_MODELS] + ["digits"])
def model(request) -> tuple[str, Path]:
    if request.param == "digits":
        return "digits", request.getfixturevalue("digits_int8_tflite")
    spec = next(m for m in MLPERF_TINY_MODELS if m.name == request.param)
    path = mlperf_tiny_model_path(spec, request.getfixturevalue("models_dir"))
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny model {path} absent (set KENNING_HIL_MODELS)")
    return request.param, path


def test_runtimes_agree(model):
    name, path = model
    rows = compare_runtimes(path, count=SAMPLES, seed=0)
    print("\n" + render_agreement_table(rows))
    assert len(rows) == 3
    for row in rows:
        assert row.samples == SAMPLES
        if (name, row.first, row.second) in EXACT_PAIRS:
            assert row.exact_rate == 1.0, f"{name}: {row.first} vs {row.second} no longer exact"
        # Optimised and reference int8 kernels round differently, never by much:
        assert row.max_difference <= 64, row
        if row.top1_agreement is not None:
            assert row.top1_agreement >= 0.95, row
        if (row.first, row.second) == ("litert-ref", "tflm"):
            # TFLM runs reference-style kernels: at most a few quantisation steps apart
            assert row.max_difference <= 8, row

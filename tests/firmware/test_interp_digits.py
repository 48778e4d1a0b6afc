"""The project's own digits MLP, quantised to int8 TFLite by the project's TFLite optimizer,
through the firmware interpreter: identical to LiteRT's reference kernels on random inputs and
on real digits samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kenning_hil.sim.interp_lib import FirmwareInterpreter

from .test_interp_mlperf import litert_reference

DIGITS_ONNX = Path(__file__).resolve().parents[2] / "models" / "digits" / "digits-mlp.onnx"


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory) -> Path:
    if not DIGITS_ONNX.is_file():
        pytest.skip(f"{DIGITS_ONNX} missing")
    pytest.importorskip("tensorflow", reason="the TFLite optimizer needs tensorflow")
    from kenning_hil.datasets.digits import DigitsDataset
    from kenning_hil.optimizers.tflite import TFLiteCompiler

    path = tmp_path_factory.mktemp("digits") / "digits-int8.tflite"
    TFLiteCompiler(DigitsDataset(), path).compile(DIGITS_ONNX)
    return path


def test_digits_int8_bit_exact(digits_int8, interp_library):
    reference = litert_reference(digits_int8)
    ours = FirmwareInterpreter(digits_int8.read_bytes(), library=interp_library)
    (inp,) = reference.get_input_details()
    out = reference.get_output_details()[0]["index"]
    rng = np.random.default_rng(64)
    samples = [rng.integers(-128, 127, size=inp["shape"], endpoint=True, dtype=np.int8)
               for _ in range(20)]
    # real digits, quantised with the model's input parameters
    from sklearn.datasets import load_digits

    scale, zero_point = inp["quantization"]
    images = load_digits().data[:20] / 16.0
    samples += [np.clip(np.round(img / scale) + zero_point, -128, 127).astype(np.int8)
                .reshape(inp["shape"]) for img in images]
    for x in samples:
        reference.set_tensor(inp["index"], x)
        reference.invoke()
        (got,) = ours.run(x)
        assert np.array_equal(got, reference.get_tensor(out))

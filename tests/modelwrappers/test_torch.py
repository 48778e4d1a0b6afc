"""PyTorchWrapper and the PyTorch ONNX conversion support matrix."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.core.errors import ModelLoadError
from kenning_hil.core.onnxconversion import SupportStatus, render_support_matrix

torch = pytest.importorskip("torch", reason="needs the 'torch' extra: pip install torch (CPU)")
pytest.importorskip("onnxruntime", reason="needs the 'onnx' extra")

from kenning_hil.modelwrappers.torch import PyTorchWrapper  # noqa: E402
from kenning_hil.modelwrappers.torch_onnxconversion import (  # noqa: E402
    PyTorchONNXConversion,
    digits_mlp,
)


def test_digits_mlp_in_torch_equals_the_onnx_model(tmp_path):
    import onnxruntime as ort

    from kenning_hil.modelwrappers.torch_onnxconversion import DIGITS_ONNX

    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    with torch.no_grad():
        ours = digits_mlp()(torch.from_numpy(x)).numpy()
    expected = ort.InferenceSession(str(DIGITS_ONNX)).run(None, {"pixels": x})[0]
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_digits_mlp_without_the_model_names_it(tmp_path):
    """An installed package has no models/digits/: the error says where it looked."""
    missing = tmp_path / "digits-mlp.onnx"
    with pytest.raises(ModelLoadError, match=f"digits model {missing} not found .*onnx_path"):
        digits_mlp(missing)


def test_torchscript_file_round_trip_and_onnx_export(tmp_path):
    module = PyTorchWrapper(tmp_path / "m.pt", from_file=False, model=digits_mlp(),
                            input_shapes=[[1, 64]], input_names=["pixels"],
                            output_names=["probabilities"])
    module.save_model(tmp_path / "m.pt")
    loaded = PyTorchWrapper(tmp_path / "m.pt", input_shapes=[[1, 64]], input_names=["pixels"],
                            output_names=["probabilities"])
    spec = loaded.get_io_specification()
    assert spec["input"] == [{"name": "pixels", "shape": [-1, 64], "dtype": "float32"}]
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    np.testing.assert_allclose(loaded.run_inference([x])[0], module.run_inference([x])[0])
    loaded.save_to_onnx(tmp_path / "m.onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    np.testing.assert_allclose(session.run(None, {"pixels": x})[0],
                               loaded.run_inference([x])[0], atol=1e-6)


def test_exported_program_gives_its_own_input_shapes(tmp_path):
    program = torch.export.export(digits_mlp(), (torch.zeros(1, 64),))
    torch.export.save(program, tmp_path / "m.pt2")
    wrapper = PyTorchWrapper(tmp_path / "m.pt2")
    assert wrapper.get_io_specification()["input"][0]["shape"] == [-1, 64]


def test_not_a_torch_file_is_named(tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ModelLoadError, match=r"model\.pt: not a TorchScript"):
        PyTorchWrapper(bogus, input_shapes=[[1, 4]]).prepare_model()


def test_support_matrix(tmp_path):
    results = {r.model: r for r in PyTorchONNXConversion().check_conversions(tmp_path)}
    for name in ("digits-mlp", "tiny-cnn", "depthwise-separable", "lstm"):
        assert results[name].exported is SupportStatus.SUPPORTED, results[name].detail
        assert results[name].imported is SupportStatus.NOT_IMPLEMENTED
        assert "onnx2torch" in results[name].detail
    assert results["rfft"].exported is SupportStatus.ERROR
    assert "fft" in results["rfft"].detail
    table = render_support_matrix(list(results.values()))
    assert "| digits-mlp | supported | not implemented |" in table

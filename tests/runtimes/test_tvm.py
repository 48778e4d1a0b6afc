"""TVM runtime: the Relax VM running the compiled digits library."""

from __future__ import annotations

import pytest

from kenning_hil.core.errors import ConfigurationError, ModelLoadError
from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.runtimes.tvm import TVMRuntime

pytest.importorskip("tvm", reason="needs the 'tvm' extra: pip install 'kenning-hil[tvm]'")


def test_run_locally_matches_fp32_accuracy(digits_tvm_library, digits_onnx, digits_dataset):
    from kenning_hil.runtimes.onnxruntime import ONNXRuntime

    wrapper = ONNXWrapper(digits_onnx, digits_dataset)
    tvm_result = TVMRuntime().run_locally(digits_dataset, wrapper, digits_tvm_library)
    ort_result = ONNXRuntime().run_locally(digits_dataset, wrapper, digits_onnx)
    assert tvm_result["accuracy"] == ort_result["accuracy"]
    assert tvm_result["compiled_model_size"] == digits_tvm_library.stat().st_size


def test_library_received_as_bytes_runs(digits_tvm_library, digits_dataset):
    import numpy as np

    runtime = TVMRuntime()
    runtime.prepare_model(digits_tvm_library.read_bytes())
    (x,), _ = next(iter(digits_dataset.iter_chunks(3)))
    (probabilities,) = runtime.run_batch([x])
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_not_a_library_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.so"
    bogus.write_bytes(b"\x7fELF not really")
    runtime = TVMRuntime()
    runtime.model_path = bogus
    with pytest.raises(ModelLoadError, match=r"model\.so: TVMRuntime cannot load the library"):
        runtime.prepare_local()


def test_unknown_device_is_rejected():
    with pytest.raises(ConfigurationError, match="device must be one of"):
        TVMRuntime(device="tpu")

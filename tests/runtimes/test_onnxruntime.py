"""ONNXRuntime: model loading (file, bytes), providers, session reuse, batching, local runs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx_test_models import gemm_softmax_model, identity_model

from kenning_hil.core.errors import ConfigurationError, ModelLoadError
from kenning_hil.datasets.digits import DigitsDataset
from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.runtimes.onnxruntime import ONNXRuntime, default_execution_providers

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"


def loaded(model: Path, **kwargs) -> ONNXRuntime:
    runtime = ONNXRuntime(**kwargs)
    runtime.model_path = model
    runtime.prepare_local()
    return runtime


def test_default_providers_prefer_cuda_when_available():
    available = onnxruntime.get_available_providers()
    providers = default_execution_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert ("CUDAExecutionProvider" in providers) == ("CUDAExecutionProvider" in available)
    assert loaded(DIGITS_MODEL).session.get_providers()[0] == providers[0]


def test_explicit_providers(tmp_path):
    runtime = loaded(DIGITS_MODEL, execution_providers=["CPUExecutionProvider"])
    assert runtime.session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(ConfigurationError, match="'NoSuchExecutionProvider'\\] are not available"):
        loaded(DIGITS_MODEL, execution_providers=["NoSuchExecutionProvider"])


def test_model_from_bytes_is_saved_when_asked(tmp_path):
    target = tmp_path / "received" / "model.onnx"
    runtime = ONNXRuntime(save_model_path=target)
    assert runtime.prepare_model(DIGITS_MODEL.read_bytes())
    assert target.read_bytes() == DIGITS_MODEL.read_bytes() and runtime.model_path == target
    in_memory = ONNXRuntime()
    assert in_memory.prepare_model(DIGITS_MODEL.read_bytes()) and in_memory.model_path is None


def test_bad_models_are_model_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="received model \\(9 bytes\\) is not a valid ONNX"):
        ONNXRuntime().prepare_model(b"not onnx!")
    with pytest.raises(ModelLoadError, match="does not exist"):
        loaded(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(ModelLoadError, match="junk.onnx is not a valid ONNX model"):
        loaded(junk)
    with pytest.raises(ModelLoadError, match="no model path set"):
        ONNXRuntime().prepare_model(None)


def test_session_is_kept_for_an_unchanged_file_and_reloaded_after_a_change(tmp_path):
    model = gemm_softmax_model(tmp_path / "m.onnx", 4, 3, seed=1)
    runtime = loaded(model)
    session = runtime.session
    runtime.prepare_local()
    assert runtime.session is session
    gemm_softmax_model(tmp_path / "m.onnx", 5, 3, seed=2)  # same path, new model
    os.utime(model, ns=(0, 10**18))  # a distinct mtime even on coarse-clock filesystems
    runtime.prepare_local()
    assert runtime.session is not session
    assert runtime.input_spec[0]["shape"] == [-1, 5]


def test_num_threads():
    assert loaded(DIGITS_MODEL, num_threads=1).session is not None
    with pytest.raises(ConfigurationError, match="num_threads must be >= 0"):
        ONNXRuntime(num_threads=-1)


def test_io_spec_with_unknown_names_is_rejected(tmp_path):
    runtime = loaded(DIGITS_MODEL)
    spec = {"input": [{"name": "image", "shape": [-1, 64], "dtype": "float32"}],
            "output": [{"name": "probabilities", "shape": [-1, 10], "dtype": "float32"}]}
    with pytest.raises(ConfigurationError, match="names inputs \\['image'\\] that the model"):
        runtime.read_io_specification(spec)


def test_batches_and_all_run_paths_agree():
    runtime = loaded(DIGITS_MODEL)
    (x,), _ = DigitsDataset(subset="all").get_data()
    x = x[:23]
    batches = runtime.make_batches([x], 5)
    assert [len(b["pixels"]) for b in batches] == [5, 5, 5, 5, 3]
    session = onnxruntime.InferenceSession(str(DIGITS_MODEL), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"pixels": x})
    prepared = np.concatenate([runtime.run_prepared_batch(b)[0] for b in batches])
    np.testing.assert_array_equal(prepared, expected)
    (fused,) = runtime.run_batch([x])
    np.testing.assert_array_equal(fused, expected)
    runtime.load_input([x])
    runtime.run()
    np.testing.assert_array_equal(runtime.extract_output()[0], expected)


def test_batches_of_several_inputs(tmp_path):
    model = identity_model(tmp_path / "m.onnx", [("a", "float32", [None, 2]),
                                                  ("b", "int64", [None])])
    runtime = loaded(model)
    a, b = np.arange(14, dtype=np.float32).reshape(7, 2), np.arange(7)
    batches = runtime.make_batches([a, b], 3)
    assert [len(batch["b"]) for batch in batches] == [3, 3, 1]
    outputs = [runtime.run_prepared_batch(batch) for batch in batches]
    np.testing.assert_array_equal(np.concatenate([o[0] for o in outputs]), a)
    np.testing.assert_array_equal(np.concatenate([o[1] for o in outputs]), b)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_run_locally_on_digits(batch_size):
    dataset = DigitsDataset(batch_size=batch_size)
    wrapper = ONNXWrapper(DIGITS_MODEL, dataset)
    measurements = ONNXRuntime(disable_performance_measurements=True).run_locally(
        dataset, wrapper, DIGITS_MODEL
    )
    assert measurements["accuracy"] == wrapper.test_inference()["accuracy"] >= 0.95
    assert len(measurements["target_inference_step"]) == -(-359 // batch_size)


def test_from_json():
    runtime = ONNXRuntime.from_json(
        {"execution_providers": ["CPUExecutionProvider"], "num_threads": 2}, protocol=None
    )
    assert runtime.execution_providers == ["CPUExecutionProvider"] and runtime.num_threads == 2
    with pytest.raises(ConfigurationError, match="'num_threads' must be an integer"):
        ONNXRuntime.from_json({"num_threads": "2"})

"""ONNXWrapper: loading real ONNX files, io spec from the graph, saving, host inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper
from onnx_test_models import gemm_softmax_model, identity_model

from kenning_hil.core.errors import ConfigurationError, ModelLoadError
from kenning_hil.datasets.digits import DigitsDataset
from kenning_hil.formats.onnx import io_specification_from_onnx
from kenning_hil.modelwrappers.onnx import ONNXWrapper

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"


def test_digits_model_io_specification():
    spec = ONNXWrapper(DIGITS_MODEL).get_io_specification_from_model()
    assert spec == {
        "input": [{"name": "pixels", "shape": [-1, 64], "dtype": "float32"}],
        "output": [{"name": "probabilities", "shape": [-1, 10], "dtype": "float32"}],
    }


def test_io_spec_excludes_initializers_and_keeps_fixed_dims(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.INT32, [1, 3]),
            helper.make_tensor_value_info("bias", TensorProto.INT32, [1, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, "n"])],
        initializer=[helper.make_tensor("bias", TensorProto.INT32, [1, 3], [1, 2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    spec = io_specification_from_onnx(model)
    assert spec["input"] == [{"name": "x", "shape": [1, 3], "dtype": "int32"}]
    assert spec["output"] == [{"name": "y", "shape": [1, -1], "dtype": "int32"}]


def test_missing_file_and_non_onnx_files_are_model_load_errors(tmp_path):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("this is not a model\n" * 20)
    with pytest.raises(ModelLoadError, match="notes.onnx is not a valid ONNX model"):
        ONNXWrapper(not_onnx).prepare_model()
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is not a valid ONNX model"):
        ONNXWrapper(empty).get_io_specification()
    wrapper = ONNXWrapper(tmp_path / "later.onnx", from_file=False)
    with pytest.raises(ConfigurationError, match="cannot build a model"):
        wrapper.prepare_model()


def test_prepare_model_loads_once():
    wrapper = ONNXWrapper(DIGITS_MODEL)
    assert not wrapper.model_prepared
    wrapper.prepare_model()
    model = wrapper.model
    wrapper.prepare_model()
    assert wrapper.model_prepared and wrapper.model is model


def test_save_model_and_save_to_onnx_write_loadable_copies(tmp_path):
    wrapper = ONNXWrapper(DIGITS_MODEL)
    wrapper.save_model(tmp_path / "a" / "copy.onnx")
    wrapper.save_to_onnx(tmp_path / "b.onnx")
    for path in (tmp_path / "a" / "copy.onnx", tmp_path / "b.onnx"):
        assert onnx.load(str(path)) == onnx.load(str(DIGITS_MODEL))


def test_load_model_switches_to_another_file(tmp_path):
    other = gemm_softmax_model(tmp_path / "other.onnx", 3, 2)
    wrapper = ONNXWrapper(DIGITS_MODEL)
    wrapper.get_io_specification()
    wrapper.load_model(other)
    assert wrapper.get_path() == other
    assert wrapper.get_io_specification()["input"][0]["shape"] == [-1, 3]


def test_framework_and_version():
    assert ONNXWrapper(DIGITS_MODEL).get_framework_and_version() == ("onnx", onnx.__version__)


def test_run_inference_matches_onnxruntime():
    dataset = DigitsDataset(batch_size=8)
    (x,), _ = next(iter(dataset))
    (ours,) = ONNXWrapper(DIGITS_MODEL, dataset).run_inference([x])
    session = onnxruntime.InferenceSession(str(DIGITS_MODEL), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"pixels": x})
    np.testing.assert_array_equal(ours, expected)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, rtol=1e-5)


def test_run_inference_feeds_several_inputs_in_graph_order(tmp_path):
    tensors = [("a", "float32", [None, 2]), ("b", "int64", [None])]
    model = identity_model(tmp_path / "m.onnx", tensors)
    a, b = np.ones((3, 2), np.float32), np.arange(3)
    out_a, out_b = ONNXWrapper(model).run_inference([a, b])
    np.testing.assert_array_equal(out_a, a)
    np.testing.assert_array_equal(out_b, b)


def test_held_out_accuracy_of_the_shipped_model():
    measurements = ONNXWrapper(DIGITS_MODEL, DigitsDataset(batch_size=32)).test_inference()
    assert measurements["accuracy"] >= 0.95
    assert measurements["top_3_accuracy"] >= measurements["accuracy"]


def test_from_json_with_dataset_context():
    dataset = DigitsDataset()
    wrapper = ONNXWrapper.from_json({"model_path": str(DIGITS_MODEL)}, dataset=dataset)
    assert wrapper.dataset is dataset and wrapper.model_path == DIGITS_MODEL
    with pytest.raises(ConfigurationError, match="'model_path' must be a string, got 5"):
        ONNXWrapper.from_json({"model_path": 5})

"""ModelWrapper base class (through ONNXWrapper, a real subclass) and its tensor/bytes helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx_test_models import gemm_softmax_model, identity_model

from kenning_hil.core.errors import ConfigurationError, InputSizeError, ModelLoadError
from kenning_hil.core.iospec import io_spec_path
from kenning_hil.core.model import (
    check_tensors,
    concatenate_batches,
    split_batches,
    split_tensors_from_bytes,
    wire_dtype,
)
from kenning_hil.datasets.digits import DigitsDataset
from kenning_hil.modelwrappers.onnx import ONNXWrapper

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"

TWO_INPUTS = [
    {"name": "a", "shape": [-1, 2], "dtype": "float32"},
    {"name": "b", "shape": [-1, 3], "dtype": "int8", "prequantized_dtype": "float64",
     "scale": 0.5, "zero_point": 0},
]


def test_wire_dtype_is_the_prequantized_dtype_when_present():
    assert wire_dtype(TWO_INPUTS[0]) == np.float32
    assert wire_dtype(TWO_INPUTS[1]) == np.float64


def test_split_tensors_from_bytes_infers_the_batch():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.arange(9, dtype=np.float64).reshape(3, 3)
    arrays = split_tensors_from_bytes(a.tobytes() + b.tobytes(), TWO_INPUTS, "test")
    np.testing.assert_array_equal(arrays[0], a)
    np.testing.assert_array_equal(arrays[1], b)
    assert arrays[1].dtype == np.float64


@pytest.mark.parametrize("size", [0, 31, 33])
def test_split_tensors_from_bytes_rejects_sizes_no_batch_matches(size):
    # one sample is 2 * 4 + 3 * 8 = 32 bytes
    with pytest.raises(InputSizeError, match="multiple of 32 bytes per sample"):
        split_tensors_from_bytes(b"\0" * size, TWO_INPUTS, "test")


def test_split_tensors_from_bytes_respects_a_fixed_batch():
    spec = [{"name": "x", "shape": [1, 4], "dtype": "uint8"}]
    assert split_tensors_from_bytes(b"abcd", spec, "t")[0].shape == (1, 4)
    with pytest.raises(InputSizeError, match="fixed batch of 1, got data for 2 samples"):
        split_tensors_from_bytes(b"abcdefgh", spec, "t")


def test_check_tensors():
    check_tensors([np.zeros((5, 2)), np.zeros((5, 3))], TWO_INPUTS, "t")
    with pytest.raises(InputSizeError, match="got 1 tensors, the model has 2"):
        check_tensors([np.zeros((5, 2))], TWO_INPUTS, "t")
    with pytest.raises(InputSizeError, match="'b' expects samples of shape \\[3\\].*got .*\\[4\\]"):
        check_tensors([np.zeros((5, 2)), np.zeros((5, 4))], TWO_INPUTS, "t")


def test_split_and_concatenate_batches_round_trip():
    a, b = np.arange(14).reshape(7, 2), np.arange(21).reshape(7, 3)
    batches = split_batches([a, b], 3)
    assert [len(batch[0]) for batch in batches] == [3, 3, 1]
    joined = concatenate_batches(batches)
    np.testing.assert_array_equal(joined[0], a)
    np.testing.assert_array_equal(joined[1], b)
    single = concatenate_batches(split_batches([a], 2))
    np.testing.assert_array_equal(single[0], a)


def test_missing_model_file_is_a_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ONNXWrapper(tmp_path / "missing.onnx")
    ONNXWrapper(tmp_path / "to-be-made.onnx", from_file=False)  # nothing to load yet


def test_model_name_defaults_to_the_file_name():
    assert ONNXWrapper(DIGITS_MODEL).model_name == "digits-mlp"
    assert ONNXWrapper(DIGITS_MODEL, model_name="mlp").model_name == "mlp"
    assert ONNXWrapper(DIGITS_MODEL).get_path() == DIGITS_MODEL


def test_io_spec_file_takes_precedence_over_the_model(tmp_path):
    model = gemm_softmax_model(tmp_path / "m.onnx", 4, 2)
    from_graph = ONNXWrapper(model).get_io_specification()
    assert from_graph["input"] == [{"name": "x", "shape": [-1, 4], "dtype": "float32"}]
    spec = json.loads(json.dumps(from_graph))
    spec["output"][0]["class_names"] = ["no", "yes"]
    io_spec_path(model).write_text(json.dumps(spec))
    assert ONNXWrapper(model).get_io_specification()["output"][0]["class_names"] == ["no", "yes"]


def test_save_io_specification(tmp_path):
    model = gemm_softmax_model(tmp_path / "m.onnx", 4, 2)
    wrapper = ONNXWrapper(model)
    written = wrapper.save_io_specification()
    assert written == io_spec_path(model)
    assert json.loads(written.read_text()) == wrapper.get_io_specification_from_model()
    elsewhere = wrapper.save_io_specification(tmp_path / "copy" / "other.onnx")
    assert elsewhere == tmp_path / "copy" / "other.onnx.json" and elsewhere.is_file()


def test_parse_io_specification_from_json(tmp_path):
    model = gemm_softmax_model(tmp_path / "m.onnx", 6, 3)
    derived = ONNXWrapper.parse_io_specification_from_json({"model_path": str(model)})
    assert derived["output"] == [{"name": "y", "shape": [-1, 3], "dtype": "float32"}]
    io_spec_path(model).write_text(json.dumps({"input": [], "output": []}))
    assert ONNXWrapper.parse_io_specification_from_json({"model_path": str(model)}) == {
        "input": [],
        "output": [],
    }
    with pytest.raises(ConfigurationError, match="missing required parameter 'model_path'"):
        ONNXWrapper.parse_io_specification_from_json({})


def test_bytes_round_trip_follows_the_io_spec(tmp_path):
    model = identity_model(
        tmp_path / "id.onnx", [("a", "float32", [None, 2]), ("b", "int16", [None, 3])]
    )
    wrapper = ONNXWrapper(model)
    a = np.array([[1.5, -2.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([[1, 2, 3], [-4, 5, 6]], dtype=np.int16)
    data = wrapper.convert_input_to_bytes([a, b.astype(np.int64)])  # cast to the spec dtype
    assert data == a.tobytes() + b.tobytes()
    outputs = wrapper.convert_output_from_bytes(a.tobytes() + b.tobytes())
    np.testing.assert_array_equal(outputs[0], a)
    np.testing.assert_array_equal(outputs[1], b)
    assert outputs[1].dtype == np.int16 and outputs[0].flags.writeable
    with pytest.raises(InputSizeError):
        wrapper.convert_input_to_bytes([a])
    with pytest.raises(InputSizeError):
        wrapper.convert_output_from_bytes(b"\0" * 5)


def test_default_pre_and_postprocessing_pass_data_through():
    wrapper = ONNXWrapper(DIGITS_MODEL)
    data = [np.ones((2, 64), dtype=np.float32)]
    assert wrapper.preprocess_input(data) is data
    assert wrapper.postprocess_outputs(data) is data
    assert wrapper.get_output_formats() == ["onnx"]


def test_unsupported_life_cycle_steps_are_configuration_errors(tmp_path):
    wrapper = ONNXWrapper(DIGITS_MODEL)
    with pytest.raises(ConfigurationError, match="does not support training"):
        wrapper.train_model(32, 0.01, 1, tmp_path)


def test_test_inference_measures_quality_and_time():
    dataset = DigitsDataset(batch_size=16)
    wrapper = ONNXWrapper(DIGITS_MODEL, dataset)
    measurements = wrapper.test_inference()
    assert measurements["total"] == 359
    assert measurements["accuracy"] >= 0.95
    assert np.array(measurements["eval_confusion_matrix"]).sum() == 359
    steps = measurements["inference_step"]
    assert len(steps) == 23 and all(isinstance(s, int) and s > 0 for s in steps)
    stamps = measurements["inference_step_timestamp"]
    assert stamps == sorted(stamps) and len(stamps) == 23


def test_test_inference_needs_a_dataset():
    with pytest.raises(ConfigurationError, match="needs a dataset"):
        ONNXWrapper(DIGITS_MODEL).test_inference()

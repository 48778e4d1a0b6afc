"""Optimizer base class: format matching, paths, io spec handling, through a real ONNX pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.iospec import io_spec_path
from kenning_hil.core.optimizer import Optimizer, consult_model_type
from kenning_hil.modelwrappers.onnx import ONNXWrapper

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"


class ShapeInference(Optimizer):
    """A real ONNX -> ONNX pass: runs ONNX shape inference and saves the annotated model."""

    input_formats = ["onnx", "keras"]
    output_formats = ["onnx"]

    def compile(self, input_model_path, io_spec=None):
        model = onnx.shape_inference.infer_shapes(onnx.load(str(input_model_path)))
        self.compiled_model_path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(self.compiled_model_path))
        self.save_io_specification(input_model_path, io_spec)

    def get_framework_and_version(self):
        return "onnx", onnx.__version__


class TFLiteOnly(ShapeInference):
    input_formats = ["tflite"]
    output_formats = ["tflite"]


class KerasFirst(ShapeInference):
    output_formats = ["keras", "onnx"]


def test_compile_writes_a_working_model_and_its_io_spec(tmp_path):
    optimizer = ShapeInference(None, tmp_path / "out" / "digits.onnx")
    spec = ONNXWrapper(DIGITS_MODEL).get_io_specification()
    optimizer.compile(DIGITS_MODEL, spec)
    compiled = optimizer.compiled_model_path
    assert optimizer.load_io_specification(compiled) == spec
    assert optimizer.get_spec_path(compiled) == io_spec_path(compiled)
    inferred = onnx.load(str(compiled)).graph.value_info
    assert {v.name for v in inferred} >= {"fc1", "logits"}
    session = onnxruntime.InferenceSession(str(compiled), providers=["CPUExecutionProvider"])
    assert session.run(None, {"pixels": np.zeros((2, 64), np.float32)})[0].shape == (2, 10)


def test_io_spec_defaults_to_the_input_models_saved_one(tmp_path):
    source = tmp_path / "src.onnx"
    source.write_bytes(DIGITS_MODEL.read_bytes())
    optimizer = ShapeInference(None, tmp_path / "a.onnx")
    optimizer.compile(source)  # no io spec anywhere: none written
    assert optimizer.load_io_specification(optimizer.compiled_model_path) is None
    spec = {"input": [{"name": "pixels", "shape": [-1, 64], "dtype": "float32", "note": 1}],
            "output": [{"name": "probabilities", "shape": [-1, 10], "dtype": "float32"}]}
    io_spec_path(source).write_text(json.dumps(spec))
    optimizer.compile(source)
    assert optimizer.load_io_specification(optimizer.compiled_model_path) == spec


def test_consult_model_type_picks_the_first_offered_format_accepted():
    wrapper = ONNXWrapper(DIGITS_MODEL)
    optimizer = ShapeInference(None, Path("x.onnx"))
    assert optimizer.consult_model_type(wrapper) == "onnx"
    assert consult_model_type(optimizer, KerasFirst(None, Path("k"))) == "keras"
    assert consult_model_type(optimizer, KerasFirst(None, Path("k")), force_onnx=True) == "onnx"


def test_consult_model_type_error_names_both_blocks_and_formats():
    with pytest.raises(ConfigurationError) as error:
        TFLiteOnly(None, Path("t")).consult_model_type(ONNXWrapper(DIGITS_MODEL))
    message = str(error.value)
    assert "TFLiteOnly cannot take the model from ONNXWrapper" in message
    assert "ONNXWrapper outputs ['onnx']" in message and "TFLiteOnly accepts ['tflite']" in message
    with pytest.raises(ConfigurationError, match="need 'onnx' in both"):
        consult_model_type(TFLiteOnly(None, Path("t")), ONNXWrapper(DIGITS_MODEL), force_onnx=True)


def test_input_type_and_compiled_model_path_setters(tmp_path):
    optimizer = ShapeInference(None, tmp_path / "a.onnx")
    assert optimizer.inputtype == "onnx"
    optimizer.set_input_type("keras")
    assert optimizer.inputtype == "keras"
    with pytest.raises(ConfigurationError, match="input type 'tflite' is not one of"):
        optimizer.set_input_type("tflite")
    optimizer.set_compiled_model_path(tmp_path / "b.onnx")
    assert optimizer.compiled_model_path == tmp_path / "b.onnx"
    assert optimizer.get_input_formats() == ["onnx", "keras"]
    assert optimizer.get_output_formats() == ["onnx"]


def test_from_json_requires_the_compiled_model_path(tmp_path):
    optimizer = ShapeInference.from_json({"compiled_model_path": str(tmp_path / "c.onnx")})
    assert optimizer.compiled_model_path == tmp_path / "c.onnx" and optimizer.dataset is None
    with pytest.raises(ConfigurationError, match="missing required parameter 'compiled_model"):
        ShapeInference.from_json({})

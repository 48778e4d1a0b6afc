"""TFLiteCompiler: the digits ONNX model to an int8 .tflite, run on LiteRT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError, InputSizeError, ModelLoadError
from kenning_hil.core.iospec import io_spec_path
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file
from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.optimizers.tflite import TFLiteCompiler

from .conftest import needs

FIRMWARE_OPERATORS = {
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "ADD", "RESHAPE",
    "SOFTMAX",
}


def test_digits_int8_has_int8_io_and_firmware_operators(digits_int8_tflite):
    info = read_tflite_file(digits_int8_tflite)
    assert [t.dtype for t in info.inputs + info.outputs] == ["int8", "int8"]
    assert set(info.operators) <= FIRMWARE_OPERATORS
    spec = json.loads(io_spec_path(digits_int8_tflite).read_text())
    entry = spec["input"][0]
    assert entry["name"] == "pixels"  # the source model's name, not the converter's
    assert entry["dtype"] == "int8" and entry["prequantized_dtype"] == "float32"
    # inputs are pixels / 16 in [0, 1]: calibration must have found that range
    assert entry["scale"] == pytest.approx(1 / 255, rel=0.05)
    assert entry["zero_point"] == -128


def test_digits_int8_accuracy_within_one_point_of_fp32(
    digits_int8_tflite, digits_onnx, digits_dataset
):
    needs("ai_edge_litert", "litert")
    from kenning_hil.runtimes.litert import LiteRTRuntime
    from kenning_hil.runtimes.onnxruntime import ONNXRuntime

    wrapper = ONNXWrapper(digits_onnx, digits_dataset)
    fp32 = ONNXRuntime().run_locally(digits_dataset, wrapper, digits_onnx)["accuracy"]
    int8 = LiteRTRuntime().run_locally(digits_dataset, wrapper, digits_int8_tflite)["accuracy"]
    assert fp32 > 0.95
    assert abs(int8 - fp32) <= 0.01


def test_calibration_data_of_wrong_shape_names_the_model(tmp_path, digits_onnx):
    needs("tensorflow", "tensorflow")
    from kenning_hil.datasets.digits import DigitsDataset

    images = DigitsDataset(image_layout="nhwc")  # [1, 8, 8, 1], the model takes [1, 64]
    compiler = TFLiteCompiler(images, tmp_path / "m.tflite")
    with pytest.raises(InputSizeError, match=r"calibration sample 0 .*\[\[1, 8, 8, 1\]\].*"
                       r"digits-mlp\.onnx takes \[\[1, 64\]\]"):
        compiler.compile(digits_onnx)
    assert not (tmp_path / "m.tflite").exists()


def test_int8_without_dataset_is_a_configuration_error(tmp_path, digits_onnx):
    needs("tensorflow", "tensorflow")
    with pytest.raises(ConfigurationError, match="needs a dataset for calibration"):
        TFLiteCompiler(None, tmp_path / "m.tflite").compile(digits_onnx)


def test_unknown_source_format_is_named(tmp_path):
    source = tmp_path / "model.pt"
    source.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=r"model\.pt: cannot tell the model format"):
        TFLiteCompiler(None, tmp_path / "m.tflite").compile(source)


def test_keras_source_converts_to_int8(tmp_path):
    tf = needs("tensorflow", "tensorflow")
    rng = np.random.default_rng(0)
    inputs = tf.keras.Input((6,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="relu")(inputs))
    source = tmp_path / "dense.keras"
    model.save(source)

    class Samples:  # the only part of a Dataset the compiler uses
        def calibration_dataset_generator(self, percentage, seed):
            for _ in range(20):
                yield [rng.standard_normal((1, 6)).astype(np.float32)]

    compiled = tmp_path / "dense.tflite"
    TFLiteCompiler(Samples(), compiled).compile(source)
    info = read_tflite_file(compiled)
    assert info.inputs[0].shape == [1, 6] and info.inputs[0].dtype == "int8"
    assert "FULLY_CONNECTED" in info.operators


def test_formats_chain_onnx_wrapper_to_tflite_to_litert(tmp_path, digits_onnx):
    from kenning_hil.runtimes.litert import LiteRTRuntime

    compiler = TFLiteCompiler(None, tmp_path / "m.tflite")
    assert compiler.consult_model_type(ONNXWrapper(digits_onnx)) == "onnx"
    assert LiteRTRuntime().consult_model_type(compiler) == "tflite"

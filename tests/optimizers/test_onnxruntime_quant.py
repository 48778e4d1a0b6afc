"""ONNXRuntimeQuantizer: static QDQ int8 quantisation of the digits model."""

from __future__ import annotations

import json

import pytest

from kenning_hil.core.errors import ConfigurationError, InputSizeError
from kenning_hil.core.iospec import io_spec_path
from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.optimizers.onnxruntime_quant import ONNXRuntimeQuantizer

from .conftest import needs


def test_qdq_model_keeps_float_io_and_quantises_every_gemm(digits_int8_onnx, digits_onnx):
    onnx = needs("onnx", "onnx")
    model = onnx.load(str(digits_int8_onnx))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("Gemm") == 2
    for node in model.graph.node:
        if node.op_type == "Gemm":  # each Gemm reads only dequantised (int8) tensors
            producers = {n.output[0]: n.op_type for n in model.graph.node}
            assert {producers.get(name) for name in node.input} == {"DequantizeLinear"}
    spec = json.loads(io_spec_path(digits_int8_onnx).read_text())
    assert spec == json.loads(io_spec_path(digits_onnx).read_text())


def test_accuracy_within_one_point_of_fp32(digits_int8_onnx, digits_onnx, digits_dataset):
    from kenning_hil.runtimes.onnxruntime import ONNXRuntime

    wrapper = ONNXWrapper(digits_onnx, digits_dataset)
    fp32 = ONNXRuntime().run_locally(digits_dataset, wrapper, digits_onnx)["accuracy"]
    int8 = ONNXRuntime().run_locally(digits_dataset, wrapper, digits_int8_onnx)["accuracy"]
    assert abs(int8 - fp32) <= 0.01


def test_calibration_data_of_wrong_shape_names_the_model(tmp_path, digits_onnx):
    needs("onnxruntime", "onnx")
    from kenning_hil.datasets.digits import DigitsDataset

    quantizer = ONNXRuntimeQuantizer(DigitsDataset(image_layout="nhwc"), tmp_path / "q.onnx")
    with pytest.raises(InputSizeError, match=r"\[\[1, 8, 8, 1\]\], model .*digits-mlp\.onnx "
                       r"takes \[\[-1, 64\]\]"):
        quantizer.compile(digits_onnx)


def test_without_dataset_is_a_configuration_error(tmp_path, digits_onnx):
    needs("onnxruntime", "onnx")
    with pytest.raises(ConfigurationError, match="needs a dataset"):
        ONNXRuntimeQuantizer(None, tmp_path / "q.onnx").compile(digits_onnx)


def test_parameters_are_validated():
    with pytest.raises(ConfigurationError, match="calibration_method.*'MinMax'"):
        ONNXRuntimeQuantizer.from_json(
            {"compiled_model_path": "q.onnx", "calibration_method": "Best"}
        )

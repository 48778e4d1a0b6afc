"""The ONNX → TensorFlow translator against ONNX Runtime, on graphs built with onnx.helper."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="needs the 'onnx' extra")
ort = pytest.importorskip("onnxruntime", reason="needs the 'onnx' extra")
tf = pytest.importorskip("tensorflow", reason="needs the 'tensorflow' extra")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from kenning_hil.core.errors import KenningHILError  # noqa: E402
from kenning_hil.formats.tflite_flatbuffer import read_tflite_model  # noqa: E402
from kenning_hil.optimizers.onnx_to_tensorflow import (  # noqa: E402
    OnnxToTensorFlow,
    UnsupportedOperatorError,
)


def _model(nodes, inits, in_shape, out_shape, opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(a.astype(np.float32), n) for n, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _cnn(rng):
    inits = {
        "w1": rng.standard_normal((8, 1, 3, 3)) * 0.3, "b1": rng.standard_normal(8),
        "w2": rng.standard_normal((8, 1, 3, 3)) * 0.3,
        "g": rng.standard_normal(8) * 0.1 + 1, "bb": rng.standard_normal(8),
        "m": rng.standard_normal(8), "v": np.abs(rng.standard_normal(8)) + 0.5,
        "w3": rng.standard_normal((16, 8, 1, 1)) * 0.3,
        "w4": rng.standard_normal((16, 10)) * 0.3, "b4": rng.standard_normal(10),
        "k": rng.standard_normal((16, 1, 1)),
        "lo6": np.array(0.0), "hi6": np.array(6.0),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("BatchNormalization", ["c2", "g", "bb", "m", "v"], ["bn"]),
        helper.make_node("Clip", ["bn", "lo6", "hi6"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], strides=[2, 2]),
        helper.make_node("Mul", ["c3", "k"], ["sc"]),  # per-channel constant, NCHW broadcast
        helper.make_node("GlobalAveragePool", ["sc"], ["gp"]),
        helper.make_node("Flatten", ["gp"], ["f"]),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["lo"]),
        helper.make_node("Softmax", ["lo"], ["y"], axis=1),
    ]
    return _model(nodes, inits, [1, 1, 8, 8], [1, 10], opset=11)


def test_cnn_matches_onnxruntime_and_converts_without_transposes():
    rng = np.random.default_rng(0)
    model = _cnn(rng)
    function = OnnxToTensorFlow(model, "cnn.onnx").concrete_function()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(5):
        x = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
        ours = function(tf.constant(x))["y"].numpy()
        np.testing.assert_allclose(ours, session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    operators = set(read_tflite_model(converter.convert(), "cnn.tflite").operators)
    # NCHW input with one channel becomes NHWC by a reshape; the conv stack stays NHWC
    assert "TRANSPOSE" not in operators
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"} <= operators


def test_flatten_of_multichannel_map_keeps_onnx_element_order():
    rng = np.random.default_rng(1)
    inits = {"w": rng.standard_normal((3, 2, 3, 3)), "w2": rng.standard_normal((27, 4))}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["y"]),
    ]
    model = _model(nodes, {**inits, "shape": np.array([1, -1])}, [1, 2, 5, 5], [1, 4])
    model.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([1, -1]), "shape"))
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    ours = OnnxToTensorFlow(model).concrete_function()(tf.constant(x))["y"].numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_unsupported_operator_is_named_with_the_file():
    nodes = [helper.make_node("Erf", ["x"], ["y"])]
    model = _model(nodes, {}, [1, 4], [1, 4])
    with pytest.raises(UnsupportedOperatorError, match=r"model\.onnx.*Erf") as info:
        OnnxToTensorFlow(model, "model.onnx")
    assert isinstance(info.value, KenningHILError)

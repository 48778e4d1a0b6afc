"""TVMCompiler: ONNX → Relax → shared library, checked against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError, ModelLoadError
from kenning_hil.optimizers.tvm import TVMCompiler

from .conftest import needs


def test_library_matches_onnxruntime_for_any_batch(digits_tvm_library, digits_onnx):
    ort = needs("onnxruntime", "onnx")
    from kenning_hil.runtimes.tvm import TVMRuntime

    runtime = TVMRuntime()
    runtime.model_path = digits_tvm_library
    runtime.prepare_local()
    session = ort.InferenceSession(str(digits_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 7):  # the ONNX batch dimension is symbolic and stays so
        x = rng.random((batch, 64), dtype=np.float32)
        (ours,) = runtime.run_batch([x])
        np.testing.assert_allclose(ours, session.run(None, {"pixels": x})[0], atol=1e-5)


def test_bad_target_is_a_configuration_error(tmp_path, digits_onnx):
    needs("tvm", "tvm")
    with pytest.raises(ConfigurationError, match="invalid TVM target 'no-such-target'"):
        TVMCompiler(None, tmp_path / "m.so", target="no-such-target").compile(digits_onnx)


def test_operator_without_frontend_converter_is_named(tmp_path):
    needs("tvm", "tvm")
    onnx = needs("onnx", "onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Det", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match=r"det\.onnx: TVM's ONNX frontend has no "
                       r"converter for operator\(s\) Det"):
        TVMCompiler(None, tmp_path / "m.so").compile(path)

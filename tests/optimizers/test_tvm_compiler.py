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


def _conv_relu_model(path):
    """Conv 3×3 (padding 1) + bias + ReLU with a symbolic batch dimension, random weights."""
    onnx = needs("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1] * 4),
         helper.make_node("Relu", ["c"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 16, 16])],
        [weight, bias],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_llvm_kernels_are_scheduled_parallel_and_vectorized(tmp_path):
    """TVM's default llvm pipeline leaves kernels as naive single-threaded loops (25x slower than
    ONNX Runtime); the convolution kernel must come out with parallel and vectorized loops."""
    tvm = needs("tvm", "tvm")
    onnx = needs("onnx", "onnx")
    import tvm_ffi
    from tvm.relax.frontend.onnx import from_onnx

    from kenning_hil.optimizers.tvm import cpu_pipeline

    path = _conv_relu_model(tmp_path / "conv.onnx")
    target = tvm.target.Target("llvm")
    module = from_onnx(onnx.load(str(path)), keep_params_in_input=False)
    with tvm.transform.PassContext(opt_level=3):
        module = cpu_pipeline(target)(module)
    kinds: dict[str, set] = {}
    for gvar, func in module.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc):
            found: set = set()
            tvm_ffi.structural_walk(
                func.body, [(tvm.tirx.For, lambda loop, found=found: found.add(loop.kind))],
                order="post",
            )
            kinds[gvar.name_hint] = found
    conv = [name for name in kinds if "conv2d" in name]
    assert conv, f"no convolution kernel among {sorted(kinds)}"
    for name in conv:
        assert tvm.tirx.ForKind.PARALLEL in kinds[name], f"{name}: no parallel loop"
        assert tvm.tirx.ForKind.VECTORIZED in kinds[name], f"{name}: no vectorized loop"


def test_scheduled_convolution_matches_onnxruntime(tmp_path):
    needs("tvm", "tvm")
    ort = needs("onnxruntime", "onnxruntime")
    from kenning_hil.runtimes.tvm import TVMRuntime

    path = _conv_relu_model(tmp_path / "conv.onnx")
    TVMCompiler(None, tmp_path / "conv.so").compile(path)
    runtime = TVMRuntime()
    runtime.model_path = tmp_path / "conv.so"
    runtime.prepare_model(None)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(runtime.run_batch([x])[0], session.run(None, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)

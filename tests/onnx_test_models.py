"""Small real ONNX models built with onnx.helper, for the core, wrapper, runtime, pipeline and
CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 13


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def gemm_softmax_model(path: Path, in_features: int, out_features: int, seed: int = 0) -> Path:
    """float32 [batch, in] -> Gemm -> Softmax -> float32 [batch, out]; input 'x', output 'y'."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
    bias = rng.standard_normal(out_features).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["logits"], transB=1),
            helper.make_node("Softmax", ["logits"], ["y"], axis=1),
        ],
        "gemm_softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", in_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", out_features])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return _save(graph, path)


def identity_model(path: Path, tensors: list[tuple[str, str, list]]) -> Path:
    """One Identity per (name, numpy dtype, shape) input; outputs are named '<name>_out'.

    Shapes may use None for a dynamic dimension."""
    from onnx import helper

    def info(name: str, dtype: str, shape: list):
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        dims = ["batch" if dim is None else dim for dim in shape]
        return helper.make_tensor_value_info(name, elem, dims)

    graph = helper.make_graph(
        [helper.make_node("Identity", [name], [f"{name}_out"]) for name, _, _ in tensors],
        "identities",
        [info(name, dtype, shape) for name, dtype, shape in tensors],
        [info(f"{name}_out", dtype, shape) for name, dtype, shape in tensors],
    )
    return _save(graph, path)

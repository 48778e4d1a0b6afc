"""Builds a TensorFlow function that computes an ONNX graph, so the TensorFlow Lite converter
can quantise ONNX models (the project's fp32 models are ONNX).

Why our own translator: the maintained ONNX → TensorFlow converters pull in large, version-
pinned dependency trees; the models we quantise for microcontrollers use a small operator set,
which this module covers op by op. An operator outside that set is a clear
`UnsupportedOperatorError` naming the node, never a wrong model.

Layout: ONNX is NCHW, TensorFlow Lite kernels are NHWC. Activations produced by convolutions
and pools stay NHWC and are turned back to NCHW only where an operator needs ONNX's layout
(Flatten, Reshape, Gemm, ...), so a conv stack converts without a transpose per layer. Where
a transpose only moves a dimension of size 1 it is emitted as a reshape, which microcontroller
interpreters without TRANSPOSE also run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ModelLoadError, import_optional

_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_TO_NCHW = (0, 3, 1, 2)


class UnsupportedOperatorError(ModelLoadError):
    """The ONNX graph uses an operator (or an attribute of one) this translator lacks."""


@dataclass
class _Value:
    """A tensor during translation: TensorFlow tensor (or numpy constant) and its layout."""

    tensor: Any
    nhwc: bool = False  # True: a 4-D tensor whose ONNX (NCHW) value is stored as NHWC

    @property
    def is_constant(self) -> bool:
        return isinstance(self.tensor, np.ndarray)


SUPPORTED_OPERATORS = (
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv",
    "Div", "Dropout", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "Identity", "LeakyRelu",
    "MatMul", "MaxPool", "Mul", "Relu", "Reshape", "Shape", "Sigmoid", "Softmax", "Squeeze", "Sub",
    "Tanh", "Transpose", "Unsqueeze",
)


def static_input_shapes(model, batch_size: int = 1) -> dict[str, list[int]]:
    """Shapes of the graph inputs, symbolic dimensions replaced by `batch_size`."""
    initializers = {init.name for init in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.dim_value > 0 else batch_size for d in dims]
    return shapes


def unsupported_operators(model) -> list[str]:
    """Operator types in `model` this translator cannot build (empty when all are covered)."""
    return sorted({n.op_type for n in model.graph.node if n.op_type not in SUPPORTED_OPERATORS}
                  | {f"{n.domain}.{n.op_type}" for n in model.graph.node
                     if n.domain not in ("", "ai.onnx")})


def import_tensorflow(purpose: str):
    """TensorFlow, with its C++ INFO and WARNING logs off unless the user asked for them
    (TF_CPP_MIN_LOG_LEVEL already set): pytest hides them, but they would bury the output
    of `kenning-hil` commands."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = import_optional("tensorflow", "tensorflow", purpose)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    return tf


class OnnxToTensorFlow:
    """Translates one ONNX model into a TensorFlow concrete function with static shapes."""

    def __init__(self, model, source: Path | str = "<memory>", batch_size: int = 1):
        self.tf = import_tensorflow("int8 TFLite quantisation")
        self.model = model
        self.source = str(source)
        missing = unsupported_operators(model)
        if missing:
            raise UnsupportedOperatorError(
                f"{self.source}: ONNX operator(s) {', '.join(missing)} not supported by the "
                f"ONNX→TensorFlow translator (supported: {', '.join(SUPPORTED_OPERATORS)})"
            )
        from onnx import numpy_helper

        self.constants = {
            init.name: numpy_helper.to_array(init) for init in model.graph.initializer
        }
        self.input_shapes = static_input_shapes(model, batch_size)
        self.input_names = list(self.input_shapes)
        self.output_names = [o.name for o in model.graph.output]

    def concrete_function(self):
        """A `tf.function` over the graph inputs (float32, static shapes), traced once."""
        tf = self.tf
        signature = [
            tf.TensorSpec(shape, tf.float32, name=_tf_name(name))
            for name, shape in self.input_shapes.items()
        ]

        @tf.function(input_signature=signature, autograph=False)
        def graph_function(*inputs):
            return self.build(list(inputs))

        return graph_function.get_concrete_function()

    def build(self, inputs: list) -> dict[str, Any]:
        """Emits the TensorFlow ops for the graph; returns outputs keyed by safe names."""
        values: dict[str, _Value] = {n: _Value(c) for n, c in self.constants.items()}
        for name, tensor in zip(self.input_names, inputs):
            values[name] = _Value(tensor)
        for node in self.model.graph.node:
            operands = [values[name] if name else None for name in node.input]
            handler = getattr(self, "_op_" + node.op_type)
            try:
                result = handler(node, operands, _attributes(node))
            except UnsupportedOperatorError:
                raise
            except (ValueError, TypeError) as exc:
                raise ModelLoadError(
                    f"{self.source}: cannot translate node '{node.name}' ({node.op_type}): {exc}"
                ) from exc
            results = result if isinstance(result, list) else [result]
            for name, value in zip(node.output, results):
                values[name] = value
        return {
            _tf_name(name): self._as_tensor(self._nchw(values[name]))
            for name in self.output_names
        }

    # -- layout helpers ------------------------------------------------------------------------

    def _as_tensor(self, value: _Value):
        if value.is_constant:
            return self.tf.constant(value.tensor)
        return value.tensor

    def _transpose(self, tensor, perm: tuple[int, ...]):
        """Transpose, as a reshape when only size-1 dimensions move (keeps the op set small)."""
        tf = self.tf
        shape = tensor.shape.as_list()
        if _nonunit_order_kept(shape, perm):
            return tf.reshape(tensor, [shape[p] for p in perm])
        return tf.transpose(tensor, perm)

    def _nchw(self, value: _Value) -> _Value:
        if value.nhwc:
            return _Value(self._transpose(value.tensor, _NHWC_TO_NCHW))
        return value

    def _nhwc(self, value: _Value) -> _Value:
        if value.nhwc:
            return value
        if value.is_constant:
            return _Value(np.transpose(value.tensor, _NCHW_TO_NHWC), nhwc=True)
        if len(value.tensor.shape) != 4:
            raise ValueError(f"expected a 4-D NCHW tensor, got shape {value.tensor.shape}")
        return _Value(self._transpose(value.tensor, _NCHW_TO_NHWC), nhwc=True)

    def _constant(self, value: _Value | None, what: str) -> np.ndarray:
        if value is None or not value.is_constant:
            raise UnsupportedOperatorError(f"{self.source}: {what} must be a constant initializer")
        return value.tensor

    # -- element-wise ----------------------------------------------------------------------------

    def _binary(self, operands: list[_Value], fn):
        a, b = operands
        if a.nhwc or b.nhwc:
            # A per-channel constant broadcasts in NCHW as [C,1,1]; bring it to NHWC too.
            if a.nhwc and b.is_constant:
                return _Value(fn(a.tensor, _constant_to_nhwc(b.tensor)), nhwc=True)
            if b.nhwc and a.is_constant:
                return _Value(fn(_constant_to_nhwc(a.tensor), b.tensor), nhwc=True)
            if a.nhwc and b.nhwc:
                return _Value(fn(a.tensor, b.tensor), nhwc=True)
            a, b = self._nchw(a), self._nchw(b)
        return _Value(fn(self._as_tensor(a), self._as_tensor(b)))

    def _op_Add(self, node, operands, attrs):
        return self._binary(operands, lambda x, y: x + y)

    def _op_Sub(self, node, operands, attrs):
        return self._binary(operands, lambda x, y: x - y)

    def _op_Mul(self, node, operands, attrs):
        return self._binary(operands, lambda x, y: x * y)

    def _op_Div(self, node, operands, attrs):
        return self._binary(operands, lambda x, y: x / y)

    def _unary(self, operands, fn):
        x = operands[0]
        return _Value(fn(self._as_tensor(x)), nhwc=x.nhwc)

    def _op_Relu(self, node, operands, attrs):
        return self._unary(operands, self.tf.nn.relu)

    def _op_LeakyRelu(self, node, operands, attrs):
        alpha = attrs.get("alpha", 0.01)
        return self._unary(operands, lambda t: self.tf.nn.leaky_relu(t, alpha=alpha))

    def _op_Sigmoid(self, node, operands, attrs):
        return self._unary(operands, self.tf.math.sigmoid)

    def _op_Tanh(self, node, operands, attrs):
        return self._unary(operands, self.tf.math.tanh)

    def _op_Clip(self, node, operands, attrs):
        low = attrs.get("min", -np.inf)
        high = attrs.get("max", np.inf)
        if len(operands) > 1 and operands[1] is not None:
            low = float(self._constant(operands[1], "Clip min"))
        if len(operands) > 2 and operands[2] is not None:
            high = float(self._constant(operands[2], "Clip max"))
        if low == 0.0 and high == 6.0:
            return self._unary(operands, self.tf.nn.relu6)  # one RELU6 op after conversion
        return self._unary(operands, lambda t: self.tf.clip_by_value(t, low, high))

    def _op_Identity(self, node, operands, attrs):
        return operands[0]

    def _op_Dropout(self, node, operands, attrs):
        return operands[0]  # inference: identity

    def _op_Softmax(self, node, operands, attrs):
        x = self._nchw(operands[0])
        tensor = self._as_tensor(x)
        rank = len(tensor.shape)
        axis = attrs.get("axis", -1 if _opset(self.model) >= 13 else 1)
        if axis < 0:
            axis += rank
        if axis != rank - 1:
            raise UnsupportedOperatorError(
                f"{self.source}: Softmax over axis {axis} of a rank-{rank} tensor unsupported "
                "(only the last axis)"
            )
        return _Value(self.tf.nn.softmax(tensor, axis=-1))

    # -- linear algebra --------------------------------------------------------------------------

    def _op_Gemm(self, node, operands, attrs):
        tf = self.tf
        a = self._as_tensor(self._nchw(operands[0]))
        b = operands[1]
        if attrs.get("transA", 0):
            a = tf.transpose(a)
        b_tensor = b.tensor if b.is_constant else self._as_tensor(b)
        if attrs.get("transB", 0):
            b_tensor = b_tensor.T if b.is_constant else tf.transpose(b_tensor)
        alpha = attrs.get("alpha", 1.0)
        if b.is_constant:
            b_tensor = np.ascontiguousarray(b_tensor * np.float32(alpha))
            y = tf.matmul(a, b_tensor)
        else:
            y = tf.matmul(a, b_tensor) * alpha
        if len(operands) > 2 and operands[2] is not None:
            c = operands[2]
            beta = attrs.get("beta", 1.0)
            y = y + (c.tensor * np.float32(beta) if c.is_constant else self._as_tensor(c) * beta)
        return _Value(y)

    def _op_MatMul(self, node, operands, attrs):
        a = self._as_tensor(self._nchw(operands[0]))
        b = self._nchw(operands[1])
        return _Value(self.tf.matmul(a, b.tensor if b.is_constant else self._as_tensor(b)))

    # -- convolution and pooling -----------------------------------------------------------------

    def _op_Conv(self, node, operands, attrs):
        tf = self.tf
        weight = self._constant(operands[1], f"Conv '{node.name}' weight")
        if weight.ndim != 4:
            raise UnsupportedOperatorError(
                f"{self.source}: Conv '{node.name}' is {weight.ndim - 2}-D; only 2-D supported"
            )
        x = self._nhwc(operands[0])
        c_in = x.tensor.shape[3]
        c_out, c_per_group, kh, kw = weight.shape
        group = attrs.get("group", 1)
        strides = attrs.get("strides", [1, 1])
        dilations = attrs.get("dilations", [1, 1])
        tensor, padding = self._padding(node, x.tensor, (kh, kw), strides, dilations, attrs, 0.0)
        if group == 1:
            kernel = np.transpose(weight, (2, 3, 1, 0))  # [kh, kw, C_in, C_out]
            y = tf.nn.conv2d(tensor, kernel, strides=[1, *strides, 1], padding=padding,
                             dilations=[1, *dilations, 1])
        elif group == c_in and c_per_group == 1:
            multiplier = c_out // c_in
            kernel = np.transpose(weight.reshape(c_in, multiplier, kh, kw), (2, 3, 0, 1))
            y = tf.nn.depthwise_conv2d(tensor, kernel, strides=[1, *strides, 1],
                                       padding=padding, dilations=dilations)
        else:
            raise UnsupportedOperatorError(
                f"{self.source}: Conv '{node.name}' with group={group} (neither 1 nor depthwise) "
                "unsupported"
            )
        if len(operands) > 2 and operands[2] is not None:
            y = tf.nn.bias_add(y, self._constant(operands[2], "Conv bias"))
        return _Value(y, nhwc=True)

    def _padding(self, node, tensor, kernel, strides, dilations, attrs, pad_value):
        """Returns (possibly explicitly padded tensor, 'SAME' | 'VALID') matching ONNX pads."""
        if attrs.get("ceil_mode", 0):
            raise UnsupportedOperatorError(f"{self.source}: {node.op_type} ceil_mode=1 unsupported")
        in_h, in_w = tensor.shape[1], tensor.shape[2]
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad == "VALID":
            return tensor, "VALID"
        same = []
        for size, k, s, d in zip((in_h, in_w), kernel, strides, dilations):
            effective = (k - 1) * d + 1
            out = -(-size // s)
            total = max((out - 1) * s + effective - size, 0)
            same.append((total // 2, total - total // 2))
        if auto_pad in ("SAME_UPPER",):
            return tensor, "SAME"
        if auto_pad == "SAME_LOWER":
            pads = [same[0][1], same[1][1], same[0][0], same[1][0]]
        else:
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
        top, left, bottom, right = pads
        if (top, left, bottom, right) == (0, 0, 0, 0):
            return tensor, "VALID"
        if [(top, bottom), (left, right)] == same:
            return tensor, "SAME"
        padded = self.tf.pad(tensor, [[0, 0], [top, bottom], [left, right], [0, 0]],
                             constant_values=pad_value)
        return padded, "VALID"

    def _op_MaxPool(self, node, operands, attrs):
        x = self._nhwc(operands[0])
        kernel = attrs["kernel_shape"]
        strides = attrs.get("strides", [1, 1])
        if attrs.get("dilations", [1, 1]) != [1, 1]:
            raise UnsupportedOperatorError(f"{self.source}: dilated MaxPool unsupported")
        tensor, padding = self._padding(node, x.tensor, kernel, strides, [1, 1], attrs,
                                        float("-inf"))
        y = self.tf.nn.max_pool2d(tensor, kernel, [1, *strides, 1], padding)
        return _Value(y, nhwc=True)

    def _op_AveragePool(self, node, operands, attrs):
        x = self._nhwc(operands[0])
        kernel = attrs["kernel_shape"]
        strides = attrs.get("strides", [1, 1])
        tensor, padding = self._padding(node, x.tensor, kernel, strides, [1, 1], attrs, 0.0)
        if padding == "SAME" and attrs.get("count_include_pad", 0):
            raise UnsupportedOperatorError(
                f"{self.source}: AveragePool '{node.name}' count_include_pad=1 with padding"
            )
        y = self.tf.nn.avg_pool2d(tensor, kernel, [1, *strides, 1], padding)
        return _Value(y, nhwc=True)

    def _op_GlobalAveragePool(self, node, operands, attrs):
        # An average pool over the whole plane (AVERAGE_POOL_2D), not MEAN: microcontroller
        # interpreters implement the former far more often.
        x = self._nhwc(operands[0])
        plane = x.tensor.shape.as_list()[1:3]
        y = self.tf.nn.avg_pool2d(x.tensor, plane, [1, 1, 1, 1], "VALID")
        return _Value(y, nhwc=True)

    def _op_BatchNormalization(self, node, operands, attrs):
        scale, bias, mean, var = (self._constant(v, "BatchNormalization parameter")
                                  for v in operands[1:5])
        factor = (scale / np.sqrt(var + attrs.get("epsilon", 1e-5))).astype(np.float32)
        shift = (bias - mean * factor).astype(np.float32)
        x = operands[0]
        if x.nhwc:
            return _Value(x.tensor * factor + shift, nhwc=True)
        tensor = self._as_tensor(x)
        extra = len(tensor.shape) - 2
        shape = [-1] + [1] * extra
        return _Value(tensor * factor.reshape(shape) + shift.reshape(shape))

    # -- shape ---------------------------------------------------------------------------------
    # Shapes are static, so shape arithmetic (PyTorch's x.view(x.size(0), -1)) folds to
    # numpy constants.

    def _op_Constant(self, node, operands, attrs):
        if "value" not in attrs:
            raise UnsupportedOperatorError(f"{self.source}: Constant '{node.name}' without value")
        from onnx import numpy_helper

        return _Value(numpy_helper.to_array(attrs["value"]))

    def _op_Shape(self, node, operands, attrs):
        x = operands[0]
        shape = list(x.tensor.shape) if x.is_constant else x.tensor.shape.as_list()
        if x.nhwc:
            shape = [shape[p] for p in _NHWC_TO_NCHW]
        return _Value(np.array(shape, dtype=np.int64))

    def _op_Gather(self, node, operands, attrs):
        data = self._constant(operands[0], f"Gather '{node.name}' data")
        indices = self._constant(operands[1], f"Gather '{node.name}' indices")
        return _Value(np.take(data, indices, axis=attrs.get("axis", 0)))

    def _op_Cast(self, node, operands, attrs):
        from onnx import helper

        x = operands[0]
        dtype = helper.tensor_dtype_to_np_dtype(attrs["to"])
        if x.is_constant:
            return _Value(x.tensor.astype(dtype))
        if dtype != np.float32:
            raise UnsupportedOperatorError(f"{self.source}: Cast of activations to {dtype}")
        return x

    def _op_Flatten(self, node, operands, attrs):
        x = self._nchw(operands[0])
        tensor = self._as_tensor(x)
        shape = tensor.shape.as_list()
        axis = attrs.get("axis", 1)
        outer = int(np.prod(shape[:axis])) if axis else 1
        return _Value(self.tf.reshape(tensor, [outer, int(np.prod(shape[axis:]))]))

    def _op_Reshape(self, node, operands, attrs):
        x = self._nchw(operands[0])
        shape = [int(s) for s in self._constant(operands[1], f"Reshape '{node.name}' shape")]
        current = x.tensor.shape if x.is_constant else x.tensor.shape.as_list()
        shape = [current[i] if s == 0 else s for i, s in enumerate(shape)]
        if x.is_constant:
            return _Value(x.tensor.reshape(shape))
        return _Value(self.tf.reshape(x.tensor, shape))

    def _op_Transpose(self, node, operands, attrs):
        x = self._nchw(operands[0])
        perm = attrs.get("perm")
        if x.is_constant:
            return _Value(np.transpose(x.tensor, perm))
        perm = perm or list(reversed(range(len(x.tensor.shape))))
        return _Value(self._transpose(x.tensor, tuple(perm)))

    def _axes(self, node, operands, attrs) -> list[int] | None:
        if len(operands) > 1 and operands[1] is not None:
            return [int(a) for a in self._constant(operands[1], f"{node.op_type} axes")]
        return attrs.get("axes")

    def _op_Squeeze(self, node, operands, attrs):
        x = self._nchw(operands[0])
        axes = self._axes(node, operands, attrs)
        if x.is_constant:
            return _Value(np.squeeze(x.tensor, axis=tuple(axes) if axes else None))
        return _Value(self.tf.squeeze(x.tensor, axis=axes))

    def _op_Unsqueeze(self, node, operands, attrs):
        x = self._nchw(operands[0])
        axes = self._axes(node, operands, attrs)
        if x.is_constant:
            return _Value(np.expand_dims(x.tensor, tuple(axes)))
        tensor = x.tensor
        shape = tensor.shape.as_list()
        rank = len(shape) + len(axes)
        for axis in sorted(a + rank if a < 0 else a for a in axes):
            shape.insert(axis, 1)
        return _Value(self.tf.reshape(tensor, shape))

    def _op_Concat(self, node, operands, attrs):
        axis = attrs["axis"]
        if all(v.is_constant for v in operands):
            return _Value(np.concatenate([v.tensor for v in operands], axis=axis))
        if all(v.nhwc for v in operands) and axis in (1, -3):
            return _Value(self.tf.concat([v.tensor for v in operands], axis=3), nhwc=True)
        tensors = [self._as_tensor(self._nchw(v)) for v in operands]
        return _Value(self.tf.concat(tensors, axis=axis))


def _constant_to_nhwc(array: np.ndarray) -> np.ndarray:
    """A constant broadcast against an NCHW tensor, rearranged to broadcast against NHWC."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim < 3:
        if array.ndim == 0 or array.size == 1:
            return array
        raise ValueError(f"constant of shape {array.shape} broadcasts along W, not channels")
    while array.ndim < 4:
        array = array[np.newaxis]
    return np.transpose(array, _NCHW_TO_NHWC)


def _nonunit_order_kept(shape: list[int], perm: tuple[int, ...]) -> bool:
    """True when the permutation keeps the order of the dimensions larger than 1."""
    before = [i for i in range(len(shape)) if shape[i] != 1]
    after = [p for p in perm if shape[p] != 1]
    return before == after


def _attributes(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def _tf_name(name: str) -> str:
    """TensorFlow signature names allow only [A-Za-z0-9_.-/] and must not start with '_'."""
    safe = "".join(c if c.isalnum() or c in "_.-/" else "_" for c in name)
    return safe if safe and safe[0].isalpha() else "t" + safe

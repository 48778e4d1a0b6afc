"""A ResNet-18-sized float32 CNN as ONNX, built with onnx.helper and random weights (He
initialisation, biases zero): 11.7 M parameters, 1.8 GFLOP per 224×224 image. Its purpose is
GPU-sized work for runtime benchmarks and GPU tests; it classifies nothing.

Layout as torchvision's resnet18 (batch norm folded into the convolutions): 7×7/2 stem, 3×3/2
max pool, four stages of two basic blocks (64, 128, 256, 512 channels; a 1×1/2 projection on
the shortcut where the shape changes), global average pool, 1000-way fully connected layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STAGES = (64, 128, 256, 512)


def build_resnet18(num_classes: int = 1000, image_size: int = 224, seed: int = 0):
    """The model as an onnx.ModelProto with a symbolic batch dimension "N"."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, initializers = [], []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        fan_in = int(np.prod(shape[1:]))
        array = rng.standard_normal(shape).astype(np.float32) * np.float32(np.sqrt(2 / fan_in))
        initializers.append(numpy_helper.from_array(array, name))
        return name

    def zeros(name: str, size: int) -> str:
        initializers.append(numpy_helper.from_array(np.zeros(size, np.float32), name))
        return name

    def conv(x: str, name: str, c_in: int, c_out: int, k: int, stride: int, relu: bool) -> str:
        out = f"{name}_out"
        nodes.append(helper.make_node(
            "Conv", [x, weight(f"{name}_w", (c_out, c_in, k, k)), zeros(f"{name}_b", c_out)],
            [out], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
        ))
        if not relu:
            return out
        nodes.append(helper.make_node("Relu", [out], [f"{name}_relu"]))
        return f"{name}_relu"

    x = conv("input", "stem", 3, 64, 7, 2, relu=True)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, channels = "pool", 64
    for stage, width in enumerate(STAGES):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"s{stage}b{block}"
            y = conv(x, f"{name}c1", channels, width, 3, stride, relu=True)
            y = conv(y, f"{name}c2", width, width, 3, 1, relu=False)
            shortcut = x
            if stride != 1 or channels != width:
                shortcut = conv(x, f"{name}proj", channels, width, 1, stride, relu=False)
            nodes.append(helper.make_node("Add", [y, shortcut], [f"{name}_sum"]))
            nodes.append(helper.make_node("Relu", [f"{name}_sum"], [f"{name}_out"]))
            x, channels = f"{name}_out", width
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["features"]))
    nodes.append(helper.make_node(
        "Gemm", ["features", weight("fc_w", (num_classes, 512)), zeros("fc_b", num_classes)],
        ["logits"], transB=1,
    ))
    graph = helper.make_graph(
        nodes, "resnet18_random",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["N", 3, image_size, image_size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def save_resnet18(path: Path, **kwargs) -> Path:
    """Builds the model and writes it (about 47 MB) with its io specification."""
    import onnx

    from kenning_hil.core.iospec import io_spec_path, save_io_specification
    from kenning_hil.formats.onnx import io_specification_from_onnx

    model = build_resnet18(**kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    save_io_specification(io_spec_path(path), io_specification_from_onnx(model, str(path)))
    return path

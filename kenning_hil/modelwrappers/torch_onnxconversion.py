"""ONNX conversion support matrix for PyTorch: which small models export to ONNX (checked by
running the export on ONNX Runtime against PyTorch's own outputs), and whether they import
back.

Import: no maintained ONNX → PyTorch importer installs here. onnx2torch (the maintained one)
requires torchvision, and PyPI's torchvision wheels require the CUDA build of torch; the CPU
torchvision lives only on PyTorch's own package index. So the import direction reports
NOT_IMPLEMENTED with that reason instead of pretending.

    python -m kenning_hil.modelwrappers.torch_onnxconversion [OUTPUT_DIR]

prints the matrix as a Markdown table.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ModelLoadError, import_optional
from kenning_hil.core.onnxconversion import ModelEntry, ONNXConversion, render_support_matrix

# The digits model belongs to kenning-hil's source checkout (models/digits/, made by
# scripts/train_digits.py); an installed package has no copy, so digits_mlp takes a path.
DIGITS_ONNX = Path(__file__).resolve().parents[2] / "models" / "digits" / "digits-mlp.onnx"
IMPORT_REASON = (
    "no ONNX->PyTorch importer installable with CPU torch (onnx2torch needs torchvision, whose "
    "PyPI wheels need CUDA torch)"
)


def _torch():
    return import_optional("torch", "torch", "PyTorch ONNX conversion")


def digits_mlp(onnx_path: Path | None = None) -> Any:
    """The project's digits MLP (64 -> 64 ReLU -> 10 softmax) in PyTorch, with the weights of
    `onnx_path` (default: the checkout's models/digits/digits-mlp.onnx)."""
    path = Path(onnx_path) if onnx_path is not None else DIGITS_ONNX
    if not path.is_file():
        raise ModelLoadError(f"digits model {path} not found (it comes with kenning-hil's "
                             "source checkout, models/digits/; pass onnx_path)")
    torch = _torch()
    onnx = import_optional("onnx", "onnx", "reading the digits model")
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    layers = []
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    for node in gemms:
        weight, bias = weights[node.input[1]], weights[node.input[2]]
        attrs = {a.name: a.i for a in node.attribute}
        if not attrs.get("transB", 0):
            weight = weight.T  # Gemm B is [in, out]; Linear wants [out, in]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear, torch.nn.ReLU()]
    layers[-1] = torch.nn.Softmax(dim=1)
    return torch.nn.Sequential(*layers).eval()


def tiny_cnn() -> Any:
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def depthwise_separable() -> Any:
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU6(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(),
        nn.Conv2d(16, 32, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, 2),
    ).eval()


def small_lstm() -> Any:
    torch = _torch()

    class LastStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lstm = torch.nn.LSTM(10, 16, batch_first=True)
            self.head = torch.nn.Linear(16, 12)

        def forward(self, x):
            sequence, _ = self.lstm(x)
            return self.head(sequence[:, -1])

    return LastStep().eval()


def spectrum_magnitude() -> Any:
    """FFT magnitudes: ONNX has DFT since opset 17, but PyTorch's TorchScript exporter does not
    export torch.fft: an expected export failure."""
    torch = _torch()

    class Spectrum(torch.nn.Module):
        def forward(self, x):
            return torch.fft.rfft(x).abs()

    return Spectrum().eval()


class PyTorchONNXConversion(ONNXConversion):
    """Export (and import) checks for a handful of small PyTorch models."""

    def __init__(self):
        super().__init__("pytorch", _torch().__version__)

    def prepare(self) -> None:
        self.add_entry("digits-mlp", digits_mlp, input_shape=[1, 64])
        self.add_entry("tiny-cnn", tiny_cnn, input_shape=[1, 1, 8, 8])
        self.add_entry("depthwise-separable", depthwise_separable, input_shape=[1, 3, 32, 32])
        self.add_entry("lstm", small_lstm, input_shape=[1, 49, 10])
        self.add_entry("rfft", spectrum_magnitude, input_shape=[1, 64])

    def onnx_export(self, modelentry: ModelEntry, exportpath: Path):
        """Exports with the wrapper's save_to_onnx, then checks ONNX Runtime reproduces
        PyTorch's outputs (max abs difference 1e-4)."""
        from kenning_hil.modelwrappers.torch import PyTorchWrapper

        torch = _torch()
        shape = modelentry.parameters["input_shape"]
        wrapper = PyTorchWrapper(
            exportpath, from_file=False, model=modelentry.modelgenerator(), input_shapes=[shape],
            input_names=["input"], output_names=["output"],
        )
        wrapper.save_to_onnx(exportpath)
        ort = import_optional("onnxruntime", "onnx", "checking exported models")
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        session = ort.InferenceSession(str(exportpath), providers=["CPUExecutionProvider"])
        exported = session.run(None, {"input": x.numpy()})[0]
        with torch.no_grad():
            expected = wrapper.model(x).numpy()
        difference = float(np.abs(exported - expected).max())
        if difference > 1e-4:
            raise ValueError(f"ONNX Runtime output differs from PyTorch by {difference:.3g}")
        return None

    def onnx_import(self, modelentry: ModelEntry, importpath: Path):
        raise NotImplementedError(IMPORT_REASON)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(argv[0]) if argv else Path(scratch)
        results = PyTorchONNXConversion().check_conversions(directory)
    print(render_support_matrix(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

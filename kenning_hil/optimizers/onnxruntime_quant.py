"""ONNXRuntimeQuantizer ("onnxruntime-quant"): static int8 post-training quantisation of ONNX
models in QDQ form (QuantizeLinear/DequantizeLinear pairs around each quantised operator),
with ONNX Runtime's `quantize_static`, calibrated on samples drawn from the Dataset.

The QDQ model keeps float32 inputs and outputs (its first QuantizeLinear does the input
quantisation), so its io specification is the source model's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import (
    ConfigurationError,
    InputSizeError,
    ModelLoadError,
    one_line,
)
from kenning_hil.core.errors import import_optional as _import_optional
from kenning_hil.core.iospec import io_spec_path, save_io_specification
from kenning_hil.core.optimizer import CalibratedOptimizer

CALIBRATION_METHODS = ("MinMax", "Entropy", "Percentile")
QUANT_TYPES = ("int8", "uint8")


def _quantization():
    return _import_optional("onnxruntime.quantization", "onnx", "ONNX int8 quantisation")


class ONNXRuntimeQuantizer(CalibratedOptimizer):
    """Static int8 (QDQ) post-training quantisation of ONNX models."""

    input_formats = ["onnx"]
    output_formats = ["onnx"]

    arguments_structure = {
        "activation_type": {
            "description": "Integer type of quantised activations",
            "type": str,
            "enum": list(QUANT_TYPES),
            "default": "int8",
        },
        "weight_type": {
            "description": "Integer type of quantised weights",
            "type": str,
            "enum": list(QUANT_TYPES),
            "default": "int8",
        },
        "per_channel": {
            "description": "Quantise weights per output channel",
            "type": bool,
            "default": True,
        },
        "calibration_method": {
            "description": "How activation ranges are chosen from calibration data",
            "type": str,
            "enum": list(CALIBRATION_METHODS),
            "default": "MinMax",
        },
    }

    def __init__(self, dataset: Any = None, compiled_model_path: Path | None = None,
                 activation_type: str = "int8", weight_type: str = "int8",
                 per_channel: bool = True, calibration_method: str = "MinMax",
                 **calibration: Any):
        super().__init__(dataset, compiled_model_path, **calibration)
        self.activation_type = activation_type
        self.weight_type = weight_type
        self.per_channel = per_channel
        self.calibration_method = calibration_method

    def get_framework_and_version(self) -> tuple[str, str]:
        ort = _import_optional("onnxruntime", "onnx", "ONNX int8 quantisation")
        return "onnxruntime", ort.__version__

    def compile(self, input_model_path: Path, io_spec: dict | None = None) -> None:
        from kenning_hil.formats.onnx import load_onnx_and_io_spec

        input_model_path = Path(input_model_path)
        model, io_spec = load_onnx_and_io_spec(input_model_path, io_spec, self)
        if self.dataset is None:
            raise ConfigurationError(
                f"ONNXRuntimeQuantizer: int8 quantisation of {input_model_path} needs a "
                "dataset for calibration"
            )
        quantization = _quantization()
        initializers = {init.name for init in model.graph.initializer}
        graph_inputs = [v for v in model.graph.input if v.name not in initializers]
        feeds = self._calibration_feeds(input_model_path, graph_inputs)
        reader = _ListDataReader(quantization.CalibrationDataReader, feeds)
        types = {"int8": quantization.QuantType.QInt8, "uint8": quantization.QuantType.QUInt8}
        self.compiled_model_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="kenning-hil-ortq-") as scratch:
            # quant_pre_process (shape inference + graph optimisation) is what ONNX Runtime
            # recommends before static quantisation; it gives better-placed QDQ nodes. Its
            # symbolic shape inference needs sympy and is only for dynamic-shape models.
            prepared = Path(scratch) / "prepared.onnx"
            try:
                quantization.quant_pre_process(
                    str(input_model_path), str(prepared), skip_symbolic_shape=True
                )
                quantization.quantize_static(
                    str(prepared),
                    str(self.compiled_model_path),
                    reader,
                    quant_format=quantization.QuantFormat.QDQ,
                    per_channel=self.per_channel,
                    activation_type=types[self.activation_type],
                    weight_type=types[self.weight_type],
                    calibrate_method=getattr(
                        quantization.CalibrationMethod, self.calibration_method
                    ),
                )
            except (ConfigurationError, InputSizeError):
                raise
            except Exception as exc:  # noqa: BLE001 - quantisation raises many types
                reason = one_line(exc, 500)
                raise ModelLoadError(
                    f"{input_model_path}: ONNX Runtime static quantisation failed: {reason}"
                ) from exc
        save_io_specification(io_spec_path(self.compiled_model_path), io_spec)

    def _calibration_feeds(self, path: Path, graph_inputs: list) -> list[dict[str, np.ndarray]]:
        """Calibration feeds {input name: array}, each checked against the graph's inputs."""
        shapes = [
            [d.dim_value if d.dim_value > 0 else None for d in v.type.tensor_type.shape.dim]
            for v in graph_inputs
        ]
        return [
            {v.name: a for v, a in zip(graph_inputs, arrays)}
            for arrays in self.calibration_samples(path, shapes)
        ]

def _ListDataReader(base: type, feeds: list[dict[str, np.ndarray]]):
    """A CalibrationDataReader (ONNX Runtime's interface) over prepared feeds."""

    class ListDataReader(base):
        def __init__(self):
            self._iterator = iter(feeds)

        def get_next(self):
            return next(self._iterator, None)

        def rewind(self):
            self._iterator = iter(feeds)

    return ListDataReader()

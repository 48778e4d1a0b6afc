"""Blocks for the compile cache key tests (importable by dotted path from a scenario entry):
a real ONNX optimizer that writes the contents of a calibration file into the compiled
model's metadata and counts its compilations, and an ONNX wrapper of another type."""

from __future__ import annotations

from pathlib import Path

from kenning_hil.core.optimizer import Optimizer
from kenning_hil.modelwrappers.onnx import ONNXWrapper

COMPILES: list[str] = []  # one entry per compilation in this process


class CalibrationTagOptimizer(Optimizer):
    arguments_structure = {
        "calibration_file": {"type": Path, "required": True, "description": "tag source"},
    }
    input_formats = ["onnx"]
    output_formats = ["onnx"]

    def __init__(self, dataset=None, compiled_model_path=None, calibration_file=None):
        super().__init__(dataset, compiled_model_path)
        self.calibration_file = Path(calibration_file)

    def compile(self, input_model_path, io_spec=None):
        import onnx

        model = onnx.load(str(input_model_path))
        tag = self.calibration_file.read_text()
        onnx.helper.set_model_props(model, {"calibration": tag})
        onnx.save(model, str(self.compiled_model_path))
        self.save_io_specification(input_model_path, io_spec)
        COMPILES.append(tag)

    def get_framework_and_version(self):
        import onnx

        return "onnx", onnx.__version__


class OtherONNXWrapper(ONNXWrapper):
    """The same ONNX model through another wrapper class."""

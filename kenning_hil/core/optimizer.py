"""Optimizer: one compilation or optimisation step (quantisation, conversion, compilation) that
turns a model file into another (Kenning's Optimizer API), and the format matching shared by
every block of a chain (model wrapper -> optimizers -> runtime).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.args import ArgumentsHandler
from kenning_hil.core.errors import ConfigurationError, InputSizeError
from kenning_hil.core.iospec import io_spec_path, load_io_specification, save_io_specification


def consult_model_type(block: Any, previous_block: Any, force_onnx: bool = False) -> str:
    """The model format `previous_block` should hand to `block`.

    The first of the previous block's output formats that `block` accepts; with `force_onnx`,
    "onnx" if both support it. Raises ConfigurationError naming both blocks and their formats.
    """
    offered = list(previous_block.get_output_formats())
    accepted = list(block.get_input_formats())
    if force_onnx:
        if "onnx" in offered and "onnx" in accepted:
            return "onnx"
    else:
        for model_format in offered:
            if model_format in accepted:
                return model_format
    wanted = "'onnx' in both" if force_onnx else "a common format"
    raise ConfigurationError(
        f"{type(block).__name__} cannot take the model from {type(previous_block).__name__}: "
        f"{type(previous_block).__name__} outputs {offered or 'nothing'}, "
        f"{type(block).__name__} accepts {accepted or 'nothing'} (need {wanted})"
    )


class Optimizer(ArgumentsHandler):
    """Compiles a model to a different format or runtime."""

    arguments_structure = {
        "compiled_model_path": {
            "argparse_name": "--compiled-model-path",
            "description": "Where the compiled model is written (its io spec goes to + '.json')",
            "type": Path,
            "required": True,
        },
    }

    input_formats: list[str] = []
    """Model formats `compile` accepts, preferred first."""
    output_formats: list[str] = []
    """Model formats `compile` produces."""

    def __init__(self, dataset: Any = None, compiled_model_path: Path | None = None):
        if compiled_model_path is None:
            raise ConfigurationError(f"{type(self).__name__}: compiled_model_path is required")
        self.dataset = dataset
        self.compiled_model_path = Path(compiled_model_path)
        self.inputtype: str | None = self.input_formats[0] if self.input_formats else None

    @abstractmethod
    def compile(self, input_model_path: Path, io_spec: dict | None = None) -> None:
        """Compiles the model at `input_model_path` to `compiled_model_path`.

        Uses `io_spec` when given, else the one saved as `input_model_path + ".json"`; saves the
        compiled model's io spec as `compiled_model_path + ".json"`.
        """

    @abstractmethod
    def get_framework_and_version(self) -> tuple[str, str]:
        """(framework name, framework version)."""

    def get_input_formats(self) -> list[str]:
        return list(self.input_formats)

    def get_output_formats(self) -> list[str]:
        return list(self.output_formats)

    def consult_model_type(self, previous_block: Any, force_onnx: bool = False) -> str:
        """The format in which `previous_block` should pass the model to this optimizer."""
        return consult_model_type(self, previous_block, force_onnx)

    def set_compiled_model_path(self, compiled_model_path: Path) -> None:
        self.compiled_model_path = Path(compiled_model_path)

    def set_input_type(self, inputtype: str) -> None:
        """Sets the format of the model `compile` will get."""
        if inputtype not in self.input_formats:
            raise ConfigurationError(
                f"{type(self).__name__}: input type {inputtype!r} is not one of "
                f"{self.input_formats}"
            )
        self.inputtype = inputtype

    def get_spec_path(self, model_path: Path) -> Path:
        return io_spec_path(model_path)

    def load_io_specification(self, model_path: Path) -> dict | None:
        """The io spec saved as `model_path + ".json"`, or None when there is none."""
        return load_io_specification(io_spec_path(model_path))

    def save_io_specification(self, input_model_path: Path, io_spec: dict | None = None) -> None:
        """Saves `io_spec` (default: the input model's saved one, if any) as the compiled
        model's io spec."""
        if io_spec is None:
            io_spec = self.load_io_specification(input_model_path)
        if io_spec is None:
            return
        save_io_specification(io_spec_path(self.compiled_model_path), io_spec)


class CalibratedOptimizer(Optimizer):
    """An Optimizer that calibrates quantisation on samples drawn from its Dataset."""

    arguments_structure = {
        "calibration_percentage": {
            "description": "Fraction of the dataset's train split used for calibration",
            "type": float,
            "default": 0.25,
        },
        "calibration_max_samples": {
            "description": "Upper bound on calibration samples",
            "type": int,
            "default": 500,
        },
        "calibration_seed": {
            "description": "Seed of the calibration sample draw",
            "type": int,
            "default": 12345,
        },
    }

    def __init__(self, dataset: Any = None, compiled_model_path: Path | None = None,
                 calibration_percentage: float = 0.25, calibration_max_samples: int = 500,
                 calibration_seed: int = 12345):
        super().__init__(dataset, compiled_model_path)
        self.calibration_percentage = calibration_percentage
        self.calibration_max_samples = calibration_max_samples
        self.calibration_seed = calibration_seed

    def calibration_samples(
        self, model_path: Path, input_shapes: list[list[int | None]]
    ) -> list[list[np.ndarray]]:
        """Up to `calibration_max_samples` samples (float32 arrays, one per model input),
        each checked against `input_shapes` (None: any size). Errors name the model, the
        dataset and the shapes."""
        owner, dataset_name = type(self).__name__, type(self.dataset).__name__
        if self.dataset is None:
            raise ConfigurationError(
                f"{owner}: int8 quantisation of {model_path} needs a dataset for calibration"
            )
        generator = self.dataset.calibration_dataset_generator(
            self.calibration_percentage, self.calibration_seed
        )
        samples = []
        for index, sample in zip(range(self.calibration_max_samples), generator):
            arrays = [np.asarray(a, dtype=np.float32) for a in sample]
            if len(arrays) != len(input_shapes) or any(
                len(a.shape) != len(e) or any(x is not None and x != y for x, y in zip(e, a.shape))
                for a, e in zip(arrays, input_shapes)
            ):
                expected = [[-1 if x is None else x for x in e] for e in input_shapes]
                raise InputSizeError(
                    f"{owner}: calibration sample {index} from {dataset_name} has shape(s) "
                    f"{[list(a.shape) for a in arrays]}, model {model_path} takes {expected}"
                )
            samples.append(arrays)
        if not samples:
            raise ConfigurationError(f"{owner}: dataset {dataset_name} gave no calibration samples")
        return samples

"""What the runtimes for `.tflite` flatbuffers (LiteRT, TFLite Micro) share: taking the model
from bytes or a file, checking it before a C++ runtime sees it, reading the io specification
from the flatbuffer, and running a batch as a sequence of batch-1 inferences (TFLite models
for microcontrollers have a fixed batch of 1).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ModelLoadError, ModelNotLoadedError, one_line, os_reason
from kenning_hil.core.runtime import SAVE_MODEL_PATH_ARGUMENT, Runtime, save_received_model
from kenning_hil.formats.tflite_flatbuffer import TFLiteModelInfo, read_tflite_model


class FlatbufferRuntime(Runtime):
    """Base of runtimes that execute `.tflite` flatbuffers one sample at a time."""

    input_formats = ["tflite"]

    arguments_structure = {
        "save_model_path": SAVE_MODEL_PATH_ARGUMENT,
    }

    def __init__(self, protocol=None, disable_performance_measurements: bool = False,
                 save_model_path: Path | None = None, model_path: Path | None = None):
        super().__init__(protocol, disable_performance_measurements)
        self.save_model_path = Path(save_model_path) if save_model_path is not None else None
        # model_path: the local model (run_locally sets it too); not a JSON parameter
        self.model_path = Path(model_path) if model_path is not None else None
        self.model_info: TFLiteModelInfo | None = None
        self.interpreter: Any = None  # the subclass's framework object, made by _load
        self._inputs: list[np.ndarray] | None = None
        self._outputs: list[np.ndarray] | None = None

    def unload_model(self) -> None:
        super().unload_model()
        self.model_info = self.interpreter = self._inputs = self._outputs = None

    def _source_name(self) -> str:
        return str(self.model_path) if self.model_path is not None else "received model"

    def prepare_model(self, input_data: bytes | None) -> bool:
        """Loads the model from `input_data`, or from `model_path` when None.

        Received bytes are also saved to `save_model_path` when one is set. A corrupt flatbuffer or
        a model the runtime cannot run raises ModelLoadError naming the model and the cause.
        """
        if input_data is None:
            if self.model_path is None:
                raise ModelLoadError(f"{type(self).__name__}: no model given and no model_path")
            try:
                data = self.model_path.read_bytes()
            except OSError as exc:
                raise ModelLoadError(
                    f"{self.model_path}: cannot read TFLite model ({os_reason(exc)})"
                ) from exc
        else:
            data = bytes(input_data)
            self.model_path = None
            if self.save_model_path is not None:
                self.model_path = save_received_model(data, self.save_model_path)
        self.model_info = read_tflite_model(data, self._source_name())
        try:
            self._load(data)
        except (RuntimeError, ValueError) as exc:
            raise ModelLoadError(
                f"{self._source_name()}: {type(self).__name__} cannot load the model: "
                f"{one_line(exc, 400)}"
            ) from exc
        return True

    @abstractmethod
    def _load(self, model_bytes: bytes) -> None:
        """Creates the interpreter for `model_bytes` (already checked to be a flatbuffer)."""

    @abstractmethod
    def _invoke(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        """Runs one batch-1 sample (model-ready arrays); returns the raw outputs."""

    def get_io_specification_from_model(self) -> dict | None:
        return self.model_info.io_specification() if self.model_info is not None else None

    def load_input(self, input_data: list[np.ndarray]) -> bool:
        self._inputs = list(input_data)
        return True

    def run(self) -> None:
        if self.model_info is None:
            raise ModelNotLoadedError(f"{type(self).__name__}: no model loaded (prepare_model)")
        if self._inputs is None:
            raise ModelNotLoadedError(f"{type(self).__name__}: no input loaded (load_input)")
        self._outputs = self.run_batch_raw(self._inputs)

    def run_batch_raw(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Raw outputs for a batch, computed sample by sample."""
        count = len(inputs[0]) if inputs else 0
        if count == 1:
            return [np.array(o) for o in self._invoke(inputs)]
        per_sample = [self._invoke([x[i : i + 1] for x in inputs]) for i in range(count)]
        return [np.concatenate(parts) for parts in zip(*per_sample)]

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self.model_info is None:
            raise ModelNotLoadedError(f"{type(self).__name__}: no model loaded (prepare_model)")
        return self.run_batch_raw(inputs)

    def extract_raw_output(self) -> list[np.ndarray]:
        if self._outputs is None:
            raise ModelNotLoadedError(f"{type(self).__name__}: run() has not produced outputs")
        return self._outputs


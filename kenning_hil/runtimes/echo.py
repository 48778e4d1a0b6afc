"""EchoRuntime: a diagnostic target that does no inference work.

It accepts any model bytes, takes its tensors from the io specification, and answers every
inference with zeros of the output shapes. Served with ``kenning-hil serve --runtime echo``
it isolates what the protocol and transport cost per inference (the protocol benchmark and
the robustness tests use it); it says nothing about any model's quality.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import InputSizeError, ModelLoadError, ModelNotLoadedError
from kenning_hil.core.iospec import numpy_dtype, output_entries, tensor_shape
from kenning_hil.core.model import wire_dtype
from kenning_hil.core.runtime import Runtime


class EchoRuntime(Runtime):
    """Zeros out, whatever comes in (a protocol diagnostic, not a model runtime)."""

    input_formats = ["onnx", "tflite", "bin"]
    isolated_when_served = False  # runs no model: served in-process, measuring the protocol

    def __init__(self, protocol: Any = None, disable_performance_measurements: bool = False):
        super().__init__(protocol, disable_performance_measurements)
        self.model_size: int | None = None
        self._batch: int | None = None
        self._zeros: dict[int, list[np.ndarray]] = {}

    def prepare_model(self, input_data: bytes | None) -> bool:
        if input_data is None:
            if self.model_path is None or not Path(self.model_path).is_file():
                raise ModelLoadError(f"EchoRuntime: model file {self.model_path} does not exist")
            input_data = Path(self.model_path).read_bytes()
        self.model_size = len(input_data)
        return True

    def unload_model(self) -> None:
        super().unload_model()
        self.model_size = self._batch = None
        self._zeros.clear()
        self._zero_bytes: dict[int, bytes] = {}
        self._sample_bytes = 0

    def read_io_specification(self, io_spec: dict) -> None:
        super().read_io_specification(io_spec)
        self._zeros.clear()
        self._zero_bytes: dict[int, bytes] = {}
        self._sample_bytes = sum(
            math.prod(tensor_shape(e)[1:]) * wire_dtype(e).itemsize for e in self.input_spec
        )

    def prepare_input(self, input_data: bytes) -> bool:
        """Checks the size only: parsing the tensors would be work this runtime exists to
        leave out."""
        if self.model_size is None:
            raise ModelNotLoadedError("EchoRuntime: no model loaded (prepare_model)")
        sample = getattr(self, "_sample_bytes", 0)
        if not sample or not input_data or len(input_data) % sample:
            raise InputSizeError(
                f"EchoRuntime: got {len(input_data)} input bytes, expected a positive "
                f"multiple of {sample} per sample"
            )
        self._batch = len(input_data) // sample
        return True

    def upload_output(self, input_data: bytes) -> bytes:
        """Zeros of the outputs' size (zero is zero bytes in every dtype)."""
        if self._batch is None:
            raise ModelNotLoadedError("EchoRuntime: no output yet (run)")
        data = self._zero_bytes.get(self._batch)
        if data is None:
            data = b"".join(a.tobytes() for a in self.extract_output())
            self._zero_bytes[self._batch] = data
        return data

    def load_input(self, input_data: list[np.ndarray]) -> bool:
        if self.model_size is None:
            raise ModelNotLoadedError("EchoRuntime: no model loaded (prepare_model)")
        self._batch = len(input_data[0]) if input_data else 1
        return True

    def run(self) -> None:
        if self.model_size is None:
            raise ModelNotLoadedError("EchoRuntime: no model loaded (prepare_model)")
        if self._batch is None:
            raise ModelNotLoadedError("EchoRuntime: no input loaded (prepare_input)")

    def extract_raw_output(self) -> list[np.ndarray]:
        if self._batch is None:
            raise ModelNotLoadedError("EchoRuntime: no output yet (run)")
        if self.io_specification is None:
            raise ModelNotLoadedError("EchoRuntime: needs an io specification for output shapes")
        zeros = self._zeros.get(self._batch)
        if zeros is None:  # built once per batch size: the diagnostic should cost nothing
            zeros = [
                np.zeros(tensor_shape(e, self._batch), numpy_dtype(e))
                for e in output_entries(self.io_specification)
            ]
            self._zeros[self._batch] = zeros
        return zeros

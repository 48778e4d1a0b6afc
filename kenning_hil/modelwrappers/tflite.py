"""TFLiteWrapper: a `.tflite` model (typically int8) as the source of a pipeline.

Its io specification is read from the flatbuffer itself (names, shapes, dtypes, and the scale
and zero point of each quantised tensor), so the host can quantise float inputs and dequantise
int8 outputs without a TFLite runtime. Host inference (`run_inference`) uses LiteRT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kenning_hil.core.errors import ModelNotLoadedError, import_optional
from kenning_hil.core.iospec import dequantize_entry, is_quantized, quantize_entry
from kenning_hil.core.model import ModelWrapper, check_tensors
from kenning_hil.formats.tflite_flatbuffer import TFLiteModelInfo, read_tflite_file


class TFLiteWrapper(ModelWrapper):
    """A TensorFlow Lite flatbuffer model; quantised io handled through its io spec."""

    output_formats = ["tflite"]

    def __init__(self, model_path: Path, dataset=None, from_file: bool = True,
                 model_name: str | None = None):
        super().__init__(model_path, dataset, from_file, model_name)
        self._info: TFLiteModelInfo | None = None
        self._interpreter = None

    @property
    def model_info(self) -> TFLiteModelInfo:
        """Parsed flatbuffer (inputs, outputs, operators); raises ModelLoadError if corrupt."""
        if self._info is None:
            self._info = read_tflite_file(self.model_path)
        return self._info

    def get_io_specification_from_model(self) -> dict[str, list[dict]]:
        return self.model_info.io_specification()

    def get_framework_and_version(self) -> tuple[str, str]:
        try:
            from importlib.metadata import version

            return "tflite", version("ai-edge-litert")
        except Exception:  # noqa: BLE001 - the flatbuffer needs no runtime to be described
            return "tflite", f"schema {self.model_info.version}"

    def prepare_model(self) -> None:
        if self.model_prepared:
            return
        _ = self.model_info  # validate the file before handing it to the C++ runtime
        litert = import_optional("ai_edge_litert.interpreter", "litert", "TFLite host inference")
        self._interpreter = litert.Interpreter(model_path=str(self.model_path))
        self._interpreter.allocate_tensors()
        self.model_prepared = True

    def save_model(self, model_path: Path) -> None:
        Path(model_path).write_bytes(self.model_path.read_bytes())

    def run_inference(self, X: list) -> list:
        """Runs one batch; float inputs are quantised and int8 outputs dequantised per io spec."""
        if self._interpreter is None:
            raise ModelNotLoadedError(f"{self.model_path}: prepare_model() was not called")
        spec = self.get_io_specification()
        check_tensors(X, spec["input"], f"{type(self).__name__} input")
        interpreter = self._interpreter
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        batch = len(X[0])
        results: list[list[np.ndarray]] = [[] for _ in outputs]
        for index in range(batch):  # TFLite models have a fixed batch of 1
            for detail, entry, array in zip(inputs, spec["input"], X):
                sample = array[index : index + 1]
                if is_quantized(entry) and np.asarray(sample).dtype.kind == "f":
                    sample = quantize_entry(sample, entry)
                interpreter.set_tensor(detail["index"], np.asarray(sample, dtype=detail["dtype"]))
            interpreter.invoke()
            for slot, (detail, entry) in enumerate(zip(outputs, spec["output"])):
                value = interpreter.get_tensor(detail["index"])
                if is_quantized(entry):
                    value = dequantize_entry(value, entry)
                results[slot].append(value)
        return [np.concatenate(parts) for parts in results]

"""ONNXWrapper: any ONNX model file; its io specification is read from the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError, import_optional
from kenning_hil.core.model import ModelWrapper
from kenning_hil.formats.onnx import _onnx, io_specification_from_onnx, load_onnx_model


class ONNXWrapper(ModelWrapper):
    """Wraps an ONNX model; runs it on the host with ONNX Runtime's CPU provider."""

    output_formats = ["onnx"]

    def __init__(
        self,
        model_path: Path,
        dataset: Any = None,
        from_file: bool = True,
        model_name: str | None = None,
    ):
        super().__init__(model_path, dataset, from_file, model_name)
        self.model: Any = None
        self._session: Any = None

    def prepare_model(self) -> None:
        if self.model_prepared:
            return
        if not self.from_file:
            raise ConfigurationError(
                "ONNXWrapper cannot build a model; give an existing ONNX file (from_file=True)"
            )
        self.load_model(self.model_path)

    def load_model(self, model_path: Path) -> None:
        self.model = load_onnx_model(model_path)
        self.model_path = Path(model_path)
        self._session = None
        self.io_specification = None
        self.model_prepared = True

    def save_model(self, model_path: Path) -> None:
        self.prepare_model()
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        _onnx().save(self.model, str(model_path))

    def save_to_onnx(self, model_path: Path) -> None:
        self.save_model(model_path)

    def get_framework_and_version(self) -> tuple[str, str]:
        return "onnx", _onnx().__version__

    def get_io_specification_from_model(self) -> dict[str, list[dict]]:
        self.prepare_model()
        return io_specification_from_onnx(self.model, str(self.model_path))

    @classmethod
    def derive_io_spec_from_json_params(cls, params: dict) -> dict[str, list[dict]]:
        path = Path(params["model_path"])
        return io_specification_from_onnx(load_onnx_model(path), str(path))

    def run_inference(self, X: list) -> list:
        if self._session is None:
            self.prepare_model()
            ort = import_optional("onnxruntime", "onnx", "running ONNX models")
            self._session = ort.InferenceSession(
                self.model.SerializeToString(), providers=["CPUExecutionProvider"]
            )
            self._input_names = [i.name for i in self._session.get_inputs()]
        return self._session.run(None, dict(zip(self._input_names, X)))

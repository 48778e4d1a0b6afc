"""PyTorchWrapper: a PyTorch model — a TorchScript file (`torch.jit.save`, usually `.pt`), an
exported program (`torch.export.save`, `.pt2`), or an `nn.Module` handed over in code — with
`save_to_onnx` for the optimizers that take ONNX.

A PyTorch module does not record its input shapes, so the io specification comes from the
`input_shapes` parameter (or from the example inputs of an exported program). ONNX export uses
PyTorch's TorchScript-based exporter (`dynamo=False`): it needs no extra package (the dynamo
exporter needs onnxscript) and handles the CNN/MLP models this project deploys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError, ModelLoadError, import_optional, one_line
from kenning_hil.core.model import ModelWrapper


def _torch():
    return import_optional("torch", "torch", "PyTorch models")


class PyTorchWrapper(ModelWrapper):
    """Wraps a TorchScript model, an exported program or an `nn.Module` (from_file=False)."""

    output_formats = ["onnx", "torch"]  # optimizers here take ONNX: offered first
    native_format = "torch"  # the file is TorchScript / an exported program

    arguments_structure = {
        "input_shapes": {
            "description": "Shape of each input, batch first, e.g. [[1, 64]] (for files without "
            "example inputs)",
            "type": object,
            "nullable": True,
            "default": None,
        },
        "input_names": {
            "description": "Names of the inputs in the io spec and ONNX graph",
            "type": str,
            "is_list": True,
            "nullable": True,
            "default": None,
        },
        "output_names": {
            "description": "Names of the outputs in the io spec and ONNX graph",
            "type": str,
            "is_list": True,
            "nullable": True,
            "default": None,
        },
        "opset": {"description": "ONNX opset of save_to_onnx", "type": int, "default": 17},
    }

    def __init__(self, model_path: Path, dataset: Any = None, from_file: bool = True,
                 model_name: str | None = None, input_shapes: list[list[int]] | None = None,
                 input_names: list[str] | None = None, output_names: list[str] | None = None,
                 opset: int = 17, model: Any = None):
        super().__init__(model_path, dataset, from_file, model_name)
        self.model = model
        self.input_shapes = [list(s) for s in input_shapes] if input_shapes else None
        self.input_names = list(input_names) if input_names else None
        self.output_names = list(output_names) if output_names else None
        self.opset = opset
        if model is not None:
            self.model_prepared = True

    # -- loading ---------------------------------------------------------------------------------

    def prepare_model(self) -> None:
        if self.model_prepared:
            return
        if not self.from_file:
            raise ConfigurationError("PyTorchWrapper: from_file=False needs the module (model=)")
        self.load_model(self.model_path)

    def load_model(self, model_path: Path) -> None:
        torch = _torch()
        path = Path(model_path)
        try:
            if path.suffix == ".pt2":
                program = torch.export.load(str(path))
                if self.input_shapes is None:
                    args, _ = program.example_inputs
                    self.input_shapes = [list(a.shape) for a in args]
                self.model = program.module()  # already in inference form: no eval()
            else:
                self.model = torch.jit.load(str(path), map_location="cpu")
                self.model.eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and zip errors
            reason = one_line(exc, 300)
            raise ModelLoadError(
                f"{path}: not a TorchScript (.pt) or exported program (.pt2) model: {reason}"
            ) from exc
        self.model_prepared = True

    def save_model(self, model_path: Path) -> None:
        """Saves the model as TorchScript (scripted; traced when scripting fails)."""
        torch = _torch()
        self.prepare_model()
        path = Path(model_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.model, torch.jit.ScriptModule):
            self.model.save(str(path))
            return
        try:
            scripted = torch.jit.script(self.model)
        except Exception:  # noqa: BLE001 - scripting fails on dynamic Python; tracing remains
            scripted = torch.jit.trace(self.model, tuple(self._example_inputs()))
        scripted.save(str(path))

    def save_to_onnx(self, model_path: Path) -> None:
        torch = _torch()
        self.prepare_model()
        path = Path(model_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        inputs = self._example_inputs()
        spec = self.get_io_specification()
        input_names = [e["name"] for e in spec["input"]]
        output_names = [e["name"] for e in spec["output"]]
        dynamic = {name: {0: "batch"} for name in input_names + output_names}
        try:
            torch.onnx.export(
                self.model, tuple(inputs), str(path), dynamo=False, opset_version=self.opset,
                input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
            )
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            reason = one_line(exc, 400)
            raise ModelLoadError(
                f"{self.model_name}: PyTorch ONNX export failed: {reason}"
            ) from exc

    # -- io specification -----------------------------------------------------------------------

    def _example_inputs(self) -> list:
        torch = _torch()
        if self.input_shapes is None:
            raise ConfigurationError(
                f"PyTorchWrapper {self.model_name}: input_shapes is required to describe the "
                "model's inputs"
            )
        generator = torch.Generator().manual_seed(0)
        return [torch.randn(*shape, generator=generator) for shape in self.input_shapes]

    def get_io_specification_from_model(self) -> dict[str, list[dict]]:
        torch = _torch()
        self.prepare_model()
        inputs = self._example_inputs()
        with torch.no_grad():
            outputs = self.model(*inputs)
        outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        input_names = self.input_names or [f"input_{i}" for i in range(len(inputs))]
        output_names = self.output_names or [f"output_{i}" for i in range(len(outputs))]
        if len(input_names) != len(inputs) or len(output_names) != len(outputs):
            raise ConfigurationError(
                f"PyTorchWrapper {self.model_name}: {len(input_names)} input / "
                f"{len(output_names)} output names for a model with {len(inputs)} inputs and "
                f"{len(outputs)} outputs"
            )

        def entry(name: str, tensor: Any) -> dict:
            dtype = str(tensor.dtype).removeprefix("torch.")
            return {"name": name, "shape": [-1, *tensor.shape[1:]], "dtype": dtype}

        return {
            "input": [entry(n, t) for n, t in zip(input_names, inputs)],
            "output": [entry(n, t) for n, t in zip(output_names, outputs)],
        }

    def get_framework_and_version(self) -> tuple[str, str]:
        return "torch", _torch().__version__

    # -- inference ---------------------------------------------------------------------------------

    def run_inference(self, X: list) -> list:
        torch = _torch()
        self.prepare_model()
        with torch.no_grad():
            outputs = self.model(*[torch.from_numpy(np.ascontiguousarray(x)) for x in X])
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        return [o.numpy() for o in outputs]

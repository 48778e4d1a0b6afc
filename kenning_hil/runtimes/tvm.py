"""TVMRuntime: runs modules made by `TVMCompiler` on the Relax virtual machine, on the CPU or a
GPU (`device`: "cpu", "cuda"; the module must have been compiled for that device). A module is
a shared library (``.so``) or a tar of object files (``.tar``, what Kenning's TVMCompiler
writes), which TVM links with the host C compiler when loading it; a module received over the
protocol is told apart by its first bytes, since TVM picks the loader by the file's suffix.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import (
    ConfigurationError,
    ModelLoadError,
    ModelNotLoadedError,
    import_optional,
    one_line,
)
from kenning_hil.core.runtime import SAVE_MODEL_PATH_ARGUMENT, Runtime, save_received_model

DEVICES = ("cpu", "cuda")
TAR_SUFFIX = ".tar"
LIBRARY_SUFFIX = ".so"


def module_suffix(data: bytes) -> str:
    """The suffix TVM loads `data` by: ``.tar`` for a tar archive (plain or gzip-compressed,
    as `export_library` writes it), else ``.so``."""
    if data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar":
        return TAR_SUFFIX
    return LIBRARY_SUFFIX


def _tvm():
    return import_optional("tvm", "tvm", "the TVM runtime")


class TVMRuntime(Runtime):
    """Runs TVM Relax executables (shared libraries) with the Relax VM."""

    input_formats = ["tvm"]
    loads_native_code = True  # the model is a shared library: loading it runs its code

    arguments_structure = {
        "save_model_path": {
            **SAVE_MODEL_PATH_ARGUMENT,
            "description": "Where a library received from a client is saved (none: a temporary "
            "file, as the VM loads libraries from files)",
        },
        "device": {
            "description": "Device the library was compiled for",
            "type": str,
            "enum": list(DEVICES),
            "default": "cpu",
        },
        "entry_function": {
            "description": "Relax function to call",
            "type": str,
            "default": "main",
        },
    }

    def __init__(self, protocol: Any = None, disable_performance_measurements: bool = False,
                 save_model_path: Path | None = None, device: str = "cpu",
                 entry_function: str = "main"):
        super().__init__(protocol, disable_performance_measurements)
        if device not in DEVICES:
            raise ConfigurationError(f"TVMRuntime: device must be one of {DEVICES}, got {device!r}")
        self.save_model_path = Path(save_model_path) if save_model_path else None
        self.device_name = device
        self.entry_function = entry_function
        self.vm: Any = None
        self._function: Any = None
        self._inputs: list[Any] | None = None
        self._outputs: list[np.ndarray] | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None

    def _device(self) -> Any:
        tvm = _tvm()
        device = tvm.cuda(0) if self.device_name == "cuda" else tvm.cpu(0)
        if not device.exist:
            raise ConfigurationError(f"TVMRuntime: device '{self.device_name}' is not present")
        return device

    def prepare_model(self, input_data: bytes | None) -> bool:
        tvm = _tvm()
        if input_data is not None:
            suffix = module_suffix(bytes(input_data[:512]))
            if self.save_model_path is not None:
                path = self.save_model_path
                if path.suffix != suffix:  # Kenning's default name is model.tar, for any module
                    path = path.with_name(path.name + suffix)
            else:
                self._scratch = tempfile.TemporaryDirectory(prefix="kenning-hil-tvm-")
                path = Path(self._scratch.name) / f"model{suffix}"
            self.model_path = save_received_model(bytes(input_data), path)
        if self.model_path is None or not Path(self.model_path).is_file():
            raise ModelLoadError(f"TVMRuntime: model library {self.model_path} does not exist")
        device = self._device()
        try:
            library = tvm.runtime.load_module(str(self.model_path))
            self.vm = tvm.relax.VirtualMachine(library, device)
            self._function = self.vm[self.entry_function]
        except Exception as exc:  # noqa: BLE001 - TVM raises its own error types
            raise ModelLoadError(
                f"{self.model_path}: TVMRuntime cannot load the library on {self.device_name}: "
                f"{one_line(exc, 300)}"
            ) from exc
        self.device = device
        return True

    def unload_model(self) -> None:
        super().unload_model()
        self.vm = self._function = self._inputs = self._outputs = None
        if self._scratch is not None:  # the received library's temporary copy
            self._scratch.cleanup()
            self._scratch = None

    def load_input(self, input_data: list[np.ndarray]) -> bool:
        if self.vm is None:
            raise ModelNotLoadedError("TVMRuntime: no model loaded (prepare_model)")
        tvm = _tvm()
        self._inputs = [
            tvm.runtime.tensor(np.ascontiguousarray(x), self.device) for x in input_data
        ]
        return True

    def run(self) -> None:
        if self.vm is None:
            raise ModelNotLoadedError("TVMRuntime: no model loaded (prepare_model)")
        if self._inputs is None:
            raise ModelNotLoadedError("TVMRuntime: no input loaded (prepare_input)")
        self._outputs = _to_numpy(self._function(*self._inputs))

    def extract_raw_output(self) -> list[np.ndarray]:
        if self._outputs is None:
            raise ModelNotLoadedError("TVMRuntime: no output yet (run)")
        return self._outputs

    def run_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.load_input(inputs)
        # .numpy() copies back to the host, which also waits for a GPU to finish
        return _to_numpy(self._function(*self._inputs))


def _to_numpy(result: Any) -> list[np.ndarray]:
    """The VM returns a tensor or a (nested) tuple of them; flatten to numpy arrays."""
    if hasattr(result, "numpy"):
        return [result.numpy()]
    arrays: list[np.ndarray] = []
    for item in result:
        arrays.extend(_to_numpy(item))
    return arrays

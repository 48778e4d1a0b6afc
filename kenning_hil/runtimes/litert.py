"""LiteRTRuntime: `.tflite` models on LiteRT (`ai_edge_litert.interpreter.Interpreter`), the
maintained TensorFlow Lite runtime.

`reference_kernels` selects `OpResolverType.BUILTIN_REF`: TFLite's reference kernels, the
bit-exact oracle our firmware's int8 interpreter is checked against. By default the optimised
builtin kernels run (with LiteRT's default XNNPACK delegate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kenning_hil.core.errors import import_optional
from kenning_hil.runtimes.tflite_common import FlatbufferRuntime


class LiteRTRuntime(FlatbufferRuntime):
    """Runs `.tflite` models with LiteRT, optionally on its reference kernels."""

    arguments_structure = {
        "reference_kernels": {
            "description": "Use TFLite's reference kernels (BUILTIN_REF), the bit-exact oracle",
            "type": bool,
            "default": False,
        },
        "num_threads": {
            "description": "Interpreter threads (None: LiteRT's default)",
            "type": int,
            "nullable": True,
            "default": None,
        },
    }

    def __init__(self, protocol=None, disable_performance_measurements: bool = False,
                 save_model_path: Path | None = None,
                 model_path: Path | None = None, reference_kernels: bool = False,
                 num_threads: int | None = None):
        super().__init__(protocol, disable_performance_measurements, save_model_path,
                         model_path)
        self.reference_kernels = reference_kernels
        self.num_threads = num_threads
        self.interpreter = None

    def _load(self, model_bytes: bytes) -> None:
        litert = import_optional("ai_edge_litert.interpreter", "litert", "the LiteRT runtime")
        resolver = (
            litert.OpResolverType.BUILTIN_REF if self.reference_kernels
            else litert.OpResolverType.AUTO
        )
        self.interpreter = litert.Interpreter(
            model_content=model_bytes,
            num_threads=self.num_threads,
            experimental_op_resolver_type=resolver,
        )
        self.interpreter.allocate_tensors()
        self._input_indices = [d["index"] for d in self.interpreter.get_input_details()]
        self._output_indices = [d["index"] for d in self.interpreter.get_output_details()]

    def _invoke(self, sample: list[np.ndarray]) -> list[np.ndarray]:
        interpreter = self.interpreter
        for index, array in zip(self._input_indices, sample):
            interpreter.set_tensor(index, array)
        interpreter.invoke()
        # get_tensor copies, so the result survives the next invoke
        return [interpreter.get_tensor(index) for index in self._output_indices]

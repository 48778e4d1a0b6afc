"""A runtime whose inferences take a known time: ONNX Runtime, then a sleep of `sleep`
seconds per batch. Kenning's measurements hold seconds: its target_inference_step values
must be at least `sleep`, not at least `sleep` * 1e9 (a nanosecond figure)."""

from __future__ import annotations

import time
from typing import Any

from kenning_hil.runtimes.onnxruntime import ONNXRuntime


class SleepingRuntime(ONNXRuntime):
    arguments_structure = {
        "sleep": {"description": "seconds slept per inference", "type": float, "default": 0.02},
    }

    def __init__(self, protocol: Any = None, sleep: float = 0.02, **kwargs: Any):
        super().__init__(protocol, **kwargs)
        self.sleep = sleep

    def _bind_names(self) -> None:
        # ONNXRuntime binds run_prepared_batch (the call run_locally times) per model here
        super()._bind_names()
        run = self.run_prepared_batch

        def run_and_sleep(batch):
            outputs = run(batch)
            time.sleep(self.sleep)
            return outputs

        self.run_prepared_batch = run_and_sleep

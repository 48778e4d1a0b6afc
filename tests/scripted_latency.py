"""A latency source the test controls, for tests of the baseline machinery on host targets.

`ScriptedLatencyRuntime` is ONNX Runtime doing the real inference (real model, real outputs,
so quality metrics are real), served by the real `kenning-hil serve` over TCP; only the
per-inference time it reports in STATS (`target_inference_step`) is the one the test wrote
in the target description, cycled over the inferences and multiplied by `scale`. A test
makes a regression by raising `scale`, or load-like noise by writing a heavy right tail or
bursts into `latencies`, and never depends on how busy the machine is.

    write_scripted_target(project_dir, [31e-6, 30e-6, 2e-3], scale=2.0)
    pytest --target=host-scripted ...   # with PYTHONPATH naming the repository
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kenning_hil.core.measurements import TARGET_STEP
from kenning_hil.runtimes.onnxruntime import ONNXRuntime

REPO = Path(__file__).resolve().parents[1]
RUNTIME = f"{__name__}.ScriptedLatencyRuntime"
TARGET_NAME = "host-scripted"


class ScriptedLatencyRuntime(ONNXRuntime):
    """ONNX Runtime whose reported inference times come from its parameters."""

    arguments_structure = {
        **ONNXRuntime.arguments_structure,
        "latencies": {
            "description": "per-inference times to report, seconds, cycled",
            "type": float,
            "is_list": True,
            "default": [100e-6],
        },
        "scale": {
            "description": "factor applied to every reported time (2.0: a 2x regression)",
            "type": float,
            "default": 1.0,
        },
    }

    def __init__(self, protocol: Any = None, latencies: Sequence[float] = (100e-6,),
                 scale: float = 1.0, **kwargs: Any):
        super().__init__(protocol, **kwargs)
        if not latencies or any(t <= 0 for t in latencies):
            raise ValueError(f"ScriptedLatencyRuntime: latencies must be positive, got "
                             f"{latencies!r}")
        self.latencies = [float(t) for t in latencies]
        self.scale = float(scale)

    def upload_stats(self, input_data: bytes) -> bytes:
        """The STATS the runtime measured, with each inference time replaced by the script's
        (the same number of inferences, in order)."""
        stats = json.loads(super().upload_stats(input_data))
        count = len(stats.get(TARGET_STEP, []))
        stats[TARGET_STEP] = [
            round(self.latencies[i % len(self.latencies)] * self.scale * 1e9)
            for i in range(count)
        ]
        return json.dumps(stats, separators=(",", ":")).encode("utf-8")


def write_scripted_target(project: Path, latencies: Sequence[float], scale: float = 1.0,
                          name: str = TARGET_NAME) -> Path:
    """Writes `<project>/targets/<name>.yaml`: a host target serving ScriptedLatencyRuntime
    (found when the server's PYTHONPATH names the repository: see `scripted_env`)."""
    directory = Path(project) / "targets"
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yaml"
    import yaml

    description = {
        "name": name,
        "kind": "host",
        "description": "ONNX Runtime reporting the inference times a test scripted",
        "runtime": RUNTIME,
        # yaml writes floats YAML reads back as floats (json's 5e-05 would read as a string)
        "runtime_parameters": {"latencies": [float(t) for t in latencies],
                               "scale": float(scale)},
        "requires": ["onnxruntime"],
        "protocol": {"type": "tcp"},
        "timing": "target",
        "instances": 2,
    }
    path.write_text(yaml.safe_dump(description, sort_keys=False))
    return path


def scripted_env(monkeypatch) -> None:
    """Lets the target server subprocesses import this module (`tests.scripted_latency`)."""
    import os

    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))

"""Whether an NVIDIA GPU is visible on this machine, as `nvidia-smi -L` lists them.

The pytest plugin skips `gpu`-marked tests without one, and the command line can report the
same answer. The query runs once per process (`gpu_visibility`), with a short timeout: a
hung driver must not hang a test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from kenning_hil.core.errors import os_reason

NVIDIA_SMI = "nvidia-smi"
QUERY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GPUVisibility:
    """The GPUs `nvidia-smi -L` listed (its lines), or why none is visible."""

    gpus: tuple[str, ...]
    reason: str  # empty when GPUs are visible

    @property
    def visible(self) -> bool:
        return bool(self.gpus)

    def describe(self) -> str:
        if self.visible:
            return f"{len(self.gpus)} GPU(s) visible: {'; '.join(self.gpus)}"
        return f"no GPU visible ({self.reason})"


def detect_gpus(executable: str = NVIDIA_SMI, timeout: float = QUERY_TIMEOUT_S) -> GPUVisibility:
    """Asks `executable -L` (searched on PATH) which GPUs exist; not cached."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return GPUVisibility((), f"CUDA_VISIBLE_DEVICES={hidden!r} hides them")
    path = shutil.which(executable)
    if path is None:
        return GPUVisibility((), f"{executable} not installed")
    try:
        result = subprocess.run(
            [path, "-L"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return GPUVisibility((), f"{executable} -L timed out after {timeout:g} s")
    except OSError as exc:
        return GPUVisibility((), f"{executable} -L cannot run: {os_reason(exc)}")
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        detail = f": {said[0]}" if said else ""
        return GPUVisibility((), f"{executable} -L failed with exit {result.returncode}{detail}")
    # one line per GPU: "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"; MIG devices are
    # indented under their GPU and do not count separately
    gpus = tuple(line.strip() for line in result.stdout.splitlines() if line.startswith("GPU "))
    return GPUVisibility(gpus, "" if gpus else f"{executable} lists none")


@lru_cache(maxsize=1)
def gpu_visibility() -> GPUVisibility:
    """`detect_gpus()`, asked once per process."""
    return detect_gpus()

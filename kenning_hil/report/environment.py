"""What a session ran with: the git commit of the project and the versions of Python,
kenning-hil and the ML frameworks installed, written next to its results
(``environment.json``) so a report, also one rendered later or elsewhere, can name them."""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

ENVIRONMENT_FILE = "environment.json"
# distributions whose versions decide results: runtimes, compilers, the array library
FRAMEWORKS = ("kenning-hil", "numpy", "onnxruntime", "onnx", "ai-edge-litert", "tflite-micro",
              "apache-tvm", "tensorflow-cpu", "tensorflow", "torch")


def git_commit(directory: Path) -> str | None:
    """The commit checked out at `directory` (with '-dirty' when tracked files differ), or
    None outside a git work tree or without git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=directory,
                              capture_output=True, text=True, timeout=5, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=directory,
                               capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 1 else "")


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    found = [("python", platform.python_version())]
    for name in FRAMEWORKS:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def session_environment(directory: Path) -> dict[str, str]:
    """{"commit": ..., "python": ..., "<framework>": version} of this process, the commit
    of the git work tree at `directory` ('?' outside one)."""
    return {"commit": git_commit(directory) or "?", **dict(_versions())}


def read_environment(results_dir: Path) -> dict[str, str]:
    """A results directory's environment.json; {} when absent or unreadable (an older
    results directory: the report then says the commit is unknown)."""
    try:
        data = json.loads((Path(results_dir) / ENVIRONMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, Mapping):
        return {}
    return {str(k): str(v) for k, v in data.items() if not isinstance(v, (dict, list))}


def target_ram(name: str) -> int | None:
    """The RAM a target's description declares (the project's targets/ first, then the
    shipped ones), or None when it is not known here."""
    from kenning_hil.core.errors import KenningHILError
    from kenning_hil.targets.catalog import SHIPPED_TARGETS_DIR

    try:
        return _catalog(str(Path.cwd()), str(SHIPPED_TARGETS_DIR)).get(name).ram
    except (KenningHILError, OSError, ValueError):
        return None


@functools.lru_cache(maxsize=4)
def _catalog(cwd: str, shipped: str):
    from kenning_hil.targets.catalog import TargetCatalog

    return TargetCatalog([Path(cwd) / "targets", Path(shipped)])

"""Fixtures for the firmware interpreter tests: the host library, built once per session (under
a file lock, since pytest-xdist workers share the build folder), and the MLPerf Tiny models."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
HOST_BUILD_DIR = FIRMWARE_DIR / "build" / "host"
MLPERF_TINY_FILES = {
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
}


def models_root() -> Path:
    configured = os.environ.get("KENNING_HIL_MODELS")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "models"


@pytest.fixture(scope="session")
def interp_libraries() -> dict[str, Path]:
    """Builds firmware/build/host/libkhil_interp{,_variants}.so with interp.mk."""
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc or make not installed: cannot build the host interpreter library")
    from filelock import FileLock

    HOST_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with FileLock(str(HOST_BUILD_DIR / ".build.lock")):
        result = subprocess.run(
            ["make", "-s", "-C", str(FIRMWARE_DIR), "-f", "interp.mk", "host-interp"],
            capture_output=True, text=True,
        )
    if result.returncode != 0:
        pytest.fail(f"building the host interpreter failed:\n{result.stdout}{result.stderr}")
    return {
        "exact": HOST_BUILD_DIR / "libkhil_interp.so",
        "variants": HOST_BUILD_DIR / "libkhil_interp_variants.so",
    }


@pytest.fixture(scope="session")
def interp_library(interp_libraries) -> Path:
    return interp_libraries["exact"]


@pytest.fixture(scope="session")
def mlperf_tiny_dir() -> Path:
    path = models_root() / "mlperf_tiny"
    if not path.is_dir():
        pytest.skip(f"MLPerf Tiny models not found at {path} (set KENNING_HIL_MODELS)")
    return path


@pytest.fixture(params=sorted(MLPERF_TINY_FILES))
def mlperf_tiny_model(request, mlperf_tiny_dir) -> Path:
    path = mlperf_tiny_dir / MLPERF_TINY_FILES[request.param]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path

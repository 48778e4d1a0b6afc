"""Fixtures for the firmware interpreter tests: the host library, built once per session (under
a file lock, since pytest-xdist workers share the build folder), and the MLPerf Tiny models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
MLPERF_TINY_FILES = {
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
}


def models_root() -> Path:
    """The models path for the scripts here that run outside pytest: KENNING_HIL_MODELS, else
    this project's hil_models_path (pyproject.toml), as pytest resolves it."""
    configured = os.environ.get("KENNING_HIL_MODELS")
    if configured:
        return Path(configured)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
        import tomli as tomllib

    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        ini = tomllib.load(handle)["tool"]["pytest"]["ini_options"]
    return REPO_ROOT / ini["hil_models_path"]


@pytest.fixture(scope="session")
def interp_libraries() -> dict[str, Path]:
    """Builds firmware/build/host/libkhil_interp{,_variants}.so with interp.mk (under the
    build lock: pytest-xdist workers build once)."""
    if shutil.which("gcc") is None or shutil.which("make") is None:
        pytest.skip("gcc or make not installed: cannot build the host interpreter library")
    from kenning_hil.sim.firmware_build import FirmwareBuildError, build_interpreter_libraries
    from kenning_hil.sim.interp_lib import LIBRARY_NAME, VARIANTS_LIBRARY_NAME

    try:
        host_dir = build_interpreter_libraries()
    except FirmwareBuildError as exc:
        pytest.fail(str(exc))
    return {"exact": host_dir / LIBRARY_NAME, "variants": host_dir / VARIANTS_LIBRARY_NAME}


@pytest.fixture(scope="session")
def interp_library(interp_libraries) -> Path:
    return interp_libraries["exact"]


@pytest.fixture(scope="session")
def mlperf_tiny_dir(models_dir: Path) -> Path:
    path = models_dir / "mlperf_tiny"
    if not path.is_dir():
        pytest.skip(f"MLPerf Tiny models not found at {path} (set KENNING_HIL_MODELS)")
    return path


@pytest.fixture(params=sorted(MLPERF_TINY_FILES))
def mlperf_tiny_model(request, mlperf_tiny_dir) -> Path:
    path = mlperf_tiny_dir / MLPERF_TINY_FILES[request.param]
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path

"""Fixtures of the firmware / simulated-board tests: the host-built protocol library, the
firmware ELFs, booted QEMU boards and the MLPerf Tiny models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kenning_hil.sim.firmware_build import build_firmware, build_host_library
from kenning_hil.sim.qemu import QemuInstance

from .frame_client import FrameClient
from .host_target import ProtoLib

BOARDS = ("mps2-an386", "mps3-an547")


def require_simulation() -> None:
    for tool, package in (("qemu-system-arm", "qemu-system-arm"),
                          ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian: {package})")


# QEMU pids of boards a module keeps booted for several of its tests (added by the test that
# booted them, removed when the module stops them): not left behind.
SHARED_QEMU_PIDS: set[int] = set()


@pytest.fixture(autouse=True)
def no_qemu_left_behind():
    """After every test of this folder: no QEMU process of ours is still alive, except
    boards shared by a module's tests (SHARED_QEMU_PIDS)."""
    yield
    import psutil

    left = [p for p in psutil.Process().children(recursive=True)
            if "qemu" in p.name() and p.status() != psutil.STATUS_ZOMBIE
            and p.pid not in SHARED_QEMU_PIDS]
    for process in left:
        process.kill()
    assert not left, f"QEMU processes left running: {[p.pid for p in left]}"


@pytest.fixture(scope="session")
def proto_lib() -> ProtoLib:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed: cannot build the host protocol library")
    return ProtoLib(build_host_library())


@pytest.fixture(scope="session")
def mlperf_dir(models_dir: Path) -> Path:
    path = models_dir / "mlperf_tiny"
    if not path.is_dir():
        pytest.skip(f"MLPerf Tiny models not found at {path} (set KENNING_HIL_MODELS)")
    return path


@pytest.fixture(scope="session")
def kws_model(mlperf_dir: Path) -> Path:
    path = mlperf_dir / "kws_ref_model.tflite"
    if not path.is_file():
        pytest.skip(f"{path} absent (set KENNING_HIL_MODELS)")
    return path


@pytest.fixture(scope="session")
def firmware_elf():
    """board name -> ELF path, built on first use (once per session and worker)."""
    require_simulation()
    built: dict[str, Path] = {}

    def get(board: str) -> Path:
        if board not in built:
            built[board] = build_firmware(board)
        return built[board]

    return get


@pytest.fixture(params=BOARDS)
def board(request, firmware_elf) -> QemuInstance:
    """A freshly booted board (QEMU, -icount shift=0), UART on a loopback TCP port."""
    instance = QemuInstance(request.param, firmware_elf(request.param))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def client(board: QemuInstance) -> FrameClient:
    c = FrameClient(board.url)
    yield c
    c.close()

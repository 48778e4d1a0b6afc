"""Locating and building the reference firmware (`firmware/`, `make -C firmware BOARD=...`).

Builds of one output folder are serialised with a file lock, so pytest-xdist workers that
need the same ELF build it once and the others wait for it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kenning_hil.core.errors import KenningHILError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
ELF_NAME = "kenning-hil.elf"
DRAIN_ELF_NAME = "uart-drain.elf"
TOOLCHAIN = "arm-none-eabi-gcc"
TOOLCHAIN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"


class FirmwareBuildError(KenningHILError):
    """The firmware cannot be built: toolchain missing, unknown board or a compile error."""


def boards() -> list[str]:
    """Board folders that have a board.mk."""
    return sorted(p.parent.name for p in (FIRMWARE_DIR / "boards").glob("*/board.mk"))


def default_elf(board: str) -> Path:
    return FIRMWARE_DIR / "build" / board / ELF_NAME


def _require(tool: str, packages: str) -> None:
    if shutil.which(tool) is None:
        raise FirmwareBuildError(
            f"{tool} not found on PATH; install the Debian packages: {packages}"
        )


def _make(args: list[str], lock_name: str, what: str, timeout: float) -> None:
    from filelock import FileLock

    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise FirmwareBuildError(f"firmware sources not found at {FIRMWARE_DIR}")
    _require("make", "make")
    lock_dir = FIRMWARE_DIR / "build"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f".{lock_name}.lock"), timeout=timeout):
        try:
            result = subprocess.run(
                ["make", "-C", str(FIRMWARE_DIR), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise FirmwareBuildError(f"building {what} took more than {timeout:g} s") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise FirmwareBuildError(f"building {what} failed: {output[-1500:]}")


def build_firmware(
    board: str,
    *,
    build_dir: Path | None = None,
    ml_region_size: int | None = None,
    extra_cflags: str = "",
    target: str = "firmware",
    make_vars: dict[str, str] | None = None,
    timeout: float = 300.0,
) -> Path:
    """Builds (or brings up to date) the firmware ELF for `board`; returns its path.

    `build_dir` (absolute) keeps variant builds apart, e.g. a smaller model/arena region
    (`ml_region_size`), test-only `extra_cflags` or other board variables (`make_vars`, e.g.
    BOARD_TIMER=dwt BOARD_TIMING=cycles). `target="drain"` builds the UART drain program used
    as the throughput baseline.
    """
    if board not in boards():
        raise FirmwareBuildError(
            f"unknown board '{board}'; firmware boards: {', '.join(boards()) or 'none'}"
        )
    _require(TOOLCHAIN, TOOLCHAIN_PACKAGES)
    out_dir = Path(build_dir).resolve() if build_dir else FIRMWARE_DIR / "build" / board
    args = [f"BOARD={board}", f"BUILD_DIR={out_dir}", target]
    if ml_region_size is not None:
        args.append(f"ML_REGION_SIZE={int(ml_region_size)}")
    if extra_cflags:
        args.append(f"EXTRA_CFLAGS={extra_cflags}")
    args += [f"{name}={value}" for name, value in (make_vars or {}).items()]
    lock_name = "board-" + str(out_dir).replace("/", "_")
    _make(args, lock_name, f"firmware for {board}", timeout)
    elf = out_dir / (DRAIN_ELF_NAME if target == "drain" else ELF_NAME)
    if not elf.is_file():
        raise FirmwareBuildError(f"building firmware for {board} produced no {elf}")
    return elf


def build_host_library(timeout: float = 300.0) -> Path:
    """Builds firmware/build/host/libkhil_proto.so (protocol + session + interpreter, host
    gcc) and returns its path."""
    _require("gcc", "gcc")
    # only this library: the interpreter's own host libraries are built by its tests
    _make(["build/host/libkhil_proto.so"], "host", "the host protocol library", timeout)
    return FIRMWARE_DIR / "build" / "host" / "libkhil_proto.so"

"""Locating and building the reference firmware (`make -C <sources> BOARD=...`).

Where the sources are: in a source checkout, the repository's `firmware/` (so edits there
are what gets built), with the builds in `firmware/build/`. An installed package carries a
copy of the sources as package data (`kenning_hil/sim/firmware_sources/`, copied there by
setup.py when the wheel is built) and builds into the user cache,
``$XDG_CACHE_HOME/kenning-hil/firmware/<key>/`` (default ``~/.cache``), where the key hashes
the sources and the compilers' versions: a new release or toolchain builds afresh instead of
mixing objects, and the installed sources are never written to. docs/installing.md says how
to clear it.

Builds of one output folder are serialised with a file lock, so pytest-xdist workers that
need the same ELF build it once and the others wait for it; each board (and each variant
build) has its own folder, named after the board (``<board>`` or ``<board>-<variant>``), and a
build refuses a folder that belongs to another board (by its name under the build root, or by
the `flags` file an earlier build wrote there), so boards never overwrite each other. The
Makefile links the ELF under a temporary name and renames it, so a QEMU started meanwhile
reads the old ELF or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from kenning_hil.core.errors import KenningHILError, os_reason

# the copy setup.py puts into a wheel; absent in a source checkout
PACKAGED_FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware_sources"
CHECKOUT_FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
FIRMWARE_DIR = PACKAGED_FIRMWARE_DIR if PACKAGED_FIRMWARE_DIR.is_dir() else CHECKOUT_FIRMWARE_DIR
CACHE_DIR_NAME = "kenning-hil"
ELF_NAME = "kenning-hil.elf"
DRAIN_ELF_NAME = "uart-drain.elf"
HOST_LIBRARY_NAME = "libkhil_proto.so"
TOOLCHAIN = "arm-none-eabi-gcc"
TOOLCHAIN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"


class FirmwareBuildError(KenningHILError):
    """The firmware cannot be built: toolchain missing, unknown board or a compile error."""


def boards() -> list[str]:
    """Board folders that have a board.mk."""
    return sorted(p.parent.name for p in (FIRMWARE_DIR / "boards").glob("*/board.mk"))


def board_cpu(board: str) -> str | None:
    """The CPU a firmware board is built for (its board.mk's -mcpu), None when unknown."""
    try:
        text = (FIRMWARE_DIR / "boards" / board / "board.mk").read_text()
    except OSError:
        return None
    found = re.search(r"-mcpu=([\w.+-]+)", text)
    return found.group(1) if found else None


def user_cache_dir() -> Path:
    """kenning-hil's folder in the user cache: $XDG_CACHE_HOME/kenning-hil, else
    ~/.cache/kenning-hil."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / CACHE_DIR_NAME


def _compiler_version(compiler: str) -> str:
    if shutil.which(compiler) is None:
        return f"{compiler}: absent"
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{compiler}: {os_reason(exc)}"
    return done.stdout.partition("\n")[0]


def sources_key(sources: Path = FIRMWARE_DIR) -> str:
    """Hash of the firmware sources (paths and contents, outside build/) and of the
    compilers that build them: names one cache folder."""
    digest = hashlib.sha256()
    files = sorted(p for p in sources.rglob("*") if p.is_file()
                   and p.relative_to(sources).parts[0] != "build")
    for path in files:
        digest.update(path.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for compiler in (TOOLCHAIN, "gcc"):
        digest.update(_compiler_version(compiler).encode() + b"\0")
    return digest.hexdigest()[:16]


@cache
def build_root() -> Path:
    """Where builds go: `firmware/build` of a source checkout, else this sources-and-
    toolchain's folder in the user cache."""
    if FIRMWARE_DIR == CHECKOUT_FIRMWARE_DIR:
        return FIRMWARE_DIR / "build"
    return user_cache_dir() / "firmware" / sources_key()


def default_elf(board: str) -> Path:
    return build_root() / board / ELF_NAME


def build_dir_board(folder: Path) -> str | None:
    """The board a build folder belongs to, None when nothing says so. Under the build root
    a folder is named after its board (``<board>`` or ``<board>-<variant>``; a name that is
    no board's is ``""``: it belongs to none); anywhere, a folder a build already wrote
    names its board in its `flags` file (the board's linker script)."""
    folder = Path(folder)
    flags = folder / "flags"
    try:
        found = re.search(r"-Tboards/([^/\s]+)/linker\.ld", flags.read_text())
    except (OSError, UnicodeDecodeError):
        found = None
    if found:
        return found.group(1)
    if folder.parent.resolve() == build_root().resolve() and folder.name != "host":
        named = [b for b in boards() if folder.name == b or folder.name.startswith(b + "-")]
        return max(named, key=len) if named else ""
    return None


def _require(tool: str, packages: str) -> None:
    if shutil.which(tool) is None:
        raise FirmwareBuildError(
            f"{tool} not found on PATH; install the Debian packages: {packages}"
        )


def build_lock_path(lock_name: str) -> Path:
    """The lock file that serialises the builds named `lock_name` (one per output folder:
    `board_lock_name`), shared by every process that builds from these sources."""
    return build_root() / f".{lock_name}.lock"


def board_lock_name(out_dir: Path) -> str:
    return "board-" + str(Path(out_dir).resolve()).replace("/", "_")


def _make(args: list[str], lock_name: str, what: str, timeout: float) -> None:
    from filelock import FileLock, Timeout

    if not (FIRMWARE_DIR / "Makefile").is_file():
        raise FirmwareBuildError(f"firmware sources not found at {FIRMWARE_DIR}")
    _require("make", "make")
    lock = build_lock_path(lock_name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock), timeout=timeout):
            try:
                result = subprocess.run(
                    ["make", "-C", str(FIRMWARE_DIR), *args],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise FirmwareBuildError(
                    f"building {what} took more than {timeout:g} s") from exc
    except Timeout as exc:
        raise FirmwareBuildError(
            f"building {what}: another process held the build lock {lock} for more than "
            f"{timeout:g} s"
        ) from exc
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
    out_dir = Path(build_dir).resolve() if build_dir else build_root() / board
    owner = build_dir_board(out_dir)
    if owner == "":
        raise FirmwareBuildError(
            f"build folder {out_dir} is not named after board '{board}': under "
            f"{build_root()} a build folder is <board> or <board>-<variant>"
        )
    if owner is not None and owner != board:
        raise FirmwareBuildError(
            f"build folder {out_dir} belongs to board '{owner}', not '{board}': a build "
            f"folder holds one board's firmware (use {build_root() / board} or "
            f"{build_root()}/{board}-<variant>)"
        )
    args = [f"BOARD={board}", f"BUILD_DIR={out_dir}", target]
    if ml_region_size is not None:
        args.append(f"ML_REGION_SIZE={int(ml_region_size)}")
    if extra_cflags:
        args.append(f"EXTRA_CFLAGS={extra_cflags}")
    args += [f"{name}={value}" for name, value in (make_vars or {}).items()]
    _make(args, board_lock_name(out_dir), f"firmware for {board}", timeout)
    elf = out_dir / (DRAIN_ELF_NAME if target == "drain" else ELF_NAME)
    if not elf.is_file():
        raise FirmwareBuildError(f"building firmware for {board} produced no {elf}")
    return elf


def host_build_dir() -> Path:
    """Where the host (gcc) libraries of the firmware code are built."""
    return build_root() / "host"


def _host_dir_vars() -> list[str]:
    # the Makefile's and interp.mk's names of the host output folder
    return [f"HOST_DIR={host_build_dir()}", f"KHIL_HOST_DIR={host_build_dir()}"]


def build_host_library(timeout: float = 300.0) -> Path:
    """Builds <build root>/host/libkhil_proto.so (protocol + session + interpreter, host
    gcc) and returns its path."""
    _require("gcc", "gcc")
    library = host_build_dir() / HOST_LIBRARY_NAME
    # only this library: the interpreter's own host libraries have build_interpreter_libraries
    _make([*_host_dir_vars(), str(library)], "host", "the host protocol library", timeout)
    return library


def build_interpreter_libraries(timeout: float = 300.0) -> Path:
    """Builds the interpreter's host libraries (bit-exact and arithmetic variants,
    ``interp.mk host-interp``) into <build root>/host and returns that folder."""
    _require("gcc", "gcc")
    _make(["-f", "interp.mk", *_host_dir_vars(), "host-interp"], "host",
          "the interpreter's host libraries", timeout)
    return host_build_dir()

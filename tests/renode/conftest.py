"""Fixtures of the renode kind's tests: the Renode stand-in (tests/renode/standin) behind a
`renode` command, and target descriptions that use it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import psutil
import pytest

from kenning_hil.targets import SessionManager, Target, load_target_file

# the digits MLP as int8 TFLite, made by the project's optimizer (shared with the QEMU tests)
from tests.sim.test_qemu_target import digits_int8  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "standin" / "renode.py"


def require_standin() -> None:
    for tool, package in (("qemu-system-arm", "qemu-system-arm"),
                          ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                          ("gcc", "gcc")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian: {package}): the Renode stand-in "
                        f"needs it")


@pytest.fixture(scope="session")
def renode_bin(tmp_path_factory) -> Path:
    """An executable `renode` that runs the stand-in with this interpreter."""
    require_standin()
    folder = tmp_path_factory.mktemp("renode-bin")
    wrapper = folder / "renode"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def standin(renode_bin, monkeypatch) -> Path:
    """RENODE_BIN set to the stand-in (as a lab sets it to its Renode)."""
    monkeypatch.setenv("RENODE_BIN", str(renode_bin))
    monkeypatch.delenv("RENODE_STANDIN_FAIL", raising=False)
    return renode_bin


@pytest.fixture
def sessions(tmp_path):
    manager = SessionManager(tmp_path / "work", lock_dir=tmp_path / "locks", default_timeout=120)
    yield manager
    manager.close_all()


def renode_target(tmp_path: Path, name: str = "renode-stm32f4", **changes) -> Target:
    """The shipped target `name` with `changes` to its keys (None removes one), in a file of
    tmp_path (paths made absolute)."""
    import yaml

    source = REPO / "targets" / f"{name}.yaml"
    data = yaml.safe_load(source.read_text())
    data["platform"] = str((source.parent / data["platform"]).resolve())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return Target(load_target_file(path))


def our_simulators() -> list[psutil.Process]:
    """Stand-ins and QEMUs started by this process (not zombies)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        if str(STANDIN) in cmdline or "qemu-system" in cmdline:
            found.append(process)
    return found


@pytest.fixture(autouse=True)
def no_simulator_left_behind():
    yield
    left = our_simulators()
    for process in left:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, f"left running: pids {[p.pid for p in left]}"


def pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


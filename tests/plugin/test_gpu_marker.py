"""The `gpu` marker: a gpu test skips unless `nvidia-smi -L` lists a GPU.

The skip branch runs for real on a machine without a GPU (this one: no nvidia-smi). The
branch where a GPU is visible, and nvidia-smi's failure modes, are driven by small
`nvidia-smi` scripts put first on PATH: fakes of an external tool's output, which is what
the detection reads; nothing in kenning-hil is replaced."""

import os
import stat
from pathlib import Path

import pytest

from kenning_hil.targets.gpu import detect_gpus
from tests.plugin.conftest import run

pytest_plugins = ["pytester"]

H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d1e3f0a-0000-0000-0000-000000000000)"


def fake_nvidia_smi(directory: Path, body: str) -> Path:
    """An `nvidia-smi` shell script in `directory` that runs `body`."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


@pytest.fixture
def path_with(monkeypatch):
    def put_first(directory: Path) -> None:
        monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return put_first


@pytest.mark.parametrize(
    "body, gpus, reason",
    [
        (f"echo '{H100}'\necho '  MIG 1g.10gb Device 0: (UUID: MIG-1)'", (H100,), ""),
        ("exit 0", (), "nvidia-smi lists none"),
        ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA "
         "driver.' >&2\nexit 9",
         (), "nvidia-smi -L failed with exit 9: NVIDIA-SMI has failed because it could not "
             "communicate with the NVIDIA driver."),
        ("sleep 5", (), "nvidia-smi -L timed out after 0.3 s"),
    ],
)
def test_detection_reads_nvidia_smi(tmp_path, path_with, body, gpus, reason):
    path_with(fake_nvidia_smi(tmp_path / "bin", body))
    visibility = detect_gpus(timeout=0.3)
    assert (visibility.gpus, visibility.reason) == (gpus, reason)
    assert visibility.visible == bool(gpus)


def test_detection_without_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no nvidia-smi
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_gpus().describe() == "no GPU visible (nvidia-smi not installed)"


def test_cuda_visible_devices_can_hide_gpus(tmp_path, path_with, monkeypatch):
    path_with(fake_nvidia_smi(tmp_path / "bin", f"echo '{H100}'"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not detect_gpus().visible


GPU_TESTS = """
import pytest

@pytest.mark.gpu
def test_on_gpu():
    pass

def test_anywhere():
    pass
"""


def test_gpu_tests_skip_on_this_machine(hil_project):
    """For real: whatever this machine has decides the outcome."""
    hil_project.makepyfile(test_gpu=GPU_TESTS)
    result = run(hil_project, "-rs")
    here = detect_gpus()
    if here.visible:
        result.assert_outcomes(passed=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)
        result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] test_gpu.py:*: {here.describe()}"])


def test_gpu_tests_run_when_nvidia_smi_lists_a_gpu(hil_project, tmp_path, path_with):
    hil_project.makepyfile(test_gpu=GPU_TESTS)
    path_with(fake_nvidia_smi(tmp_path / "bin", f"echo '{H100}'"))
    run(hil_project, "-rs").assert_outcomes(passed=2)


def test_gpu_tests_skip_when_nvidia_smi_lists_none(hil_project, tmp_path, path_with):
    hil_project.makepyfile(test_gpu=GPU_TESTS)
    path_with(fake_nvidia_smi(tmp_path / "bin", "exit 0"))
    result = run(hil_project, "-rs", "-m", "gpu")
    result.assert_outcomes(skipped=1, deselected=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_gpu.py:*: no GPU visible (nvidia-smi "
                                 "lists none)"])

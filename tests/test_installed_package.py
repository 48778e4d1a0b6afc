"""kenning-hil as a user gets it: a wheel of this working tree, installed (not editable) into a
fresh venv outside the repository, runs a user project's digits test with
`pytest --target=host-onnxruntime` and `pytest --target=qemu-m4` there.

What it proves: the plugin loads through its entry point from site-packages, the shipped
target descriptions are found without a targets/ folder, and the firmware is built from the
packaged sources into the user cache (XDG_CACHE_HOME, a temporary folder here), not from this
checkout's firmware/.

The new venv gets the heavy dependencies (numpy, onnxruntime, TensorFlow, pytest) without a
download through a .pth file naming this venv's site-packages; a .pth line only extends
sys.path, so this venv's editable install of kenning_hil (a finder that a .pth file of its
own starts) stays inactive there, which the fixture checks.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.skips import require_simulation

REPO = Path(__file__).resolve().parents[1]
# what the wheel is built from: pyproject.toml's packages plus setup.py's package data
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "kenning_hil",
                 "firmware", "targets", "renode")
BUILD_OUTPUTS = shutil.ignore_patterns("build", "__pycache__", "*.egg-info")
DIGITS = REPO / "models" / "digits"

USER_TEST = '''\
import sys
from pathlib import Path

import kenning_hil

# fp32 ONNX on the host; the int8 TFLite the firmware runs, made by the tflite optimizer
OPTIMIZERS = {"host-onnxruntime": None, "qemu-m4": [{"type": "tflite"}]}


def test_digits(hil, target):
    assert Path(kenning_hil.__file__).is_relative_to(sys.prefix)  # the installed package
    result = hil.run(model="models/digits/digits-mlp.onnx", dataset="digits",
                     optimizer=OPTIMIZERS[target.name], samples=40,
                     thresholds={"accuracy": 0.9})
    assert result.samples == 40
'''


def run(command: list, cwd: Path, env: dict | None = None, timeout: float = 600):
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def install(root: Path) -> Path:
    """Builds the wheel, installs it into root/venv; returns the venv's python."""
    source = root / "source"
    source.mkdir(parents=True)
    for name in WHEEL_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=BUILD_OUTPUTS)
        else:
            shutil.copy2(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", root / "dist", source], cwd=root)
    (wheel,) = (root / "dist").glob("kenning_hil-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", wheel], cwd=root)
    venv_site = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                    cwd=root).stdout.strip()
    (Path(venv_site) / "dev-dependencies.pth").write_text("\n".join(site.getsitepackages()))
    return python


def user_env(cache: Path) -> dict:
    """The environment of a user's shell: nothing of this test run or of the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "KENNING_HIL_")) and k != "PYTHONPATH"}
    env["XDG_CACHE_HOME"] = str(cache)
    return env


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the installed venv's python, its user cache folder): built once per test run, shared
    by pytest-xdist workers under a lock."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's folder, common to its workers
    root = root / "installed-package"
    cache = root / "cache"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / "installed-package.lock")):
        if not (root / "installed").is_file():
            shutil.rmtree(root, ignore_errors=True)
            python = install(root)
            (root / "installed").write_text(str(python))
    python = Path((root / "installed").read_text())
    probe = run([python, "-c", "import kenning_hil, kenning_hil.sim.firmware_build as f, "
                 "kenning_hil.targets.catalog as c; print(kenning_hil.__file__); "
                 "print(f.FIRMWARE_DIR); print(f.build_root()); print(c.SHIPPED_TARGETS_DIR)"],
                cwd=root, env=user_env(cache)).stdout.split("\n")
    package, firmware_dir, build_root, targets_dir = (Path(line) for line in probe[:4])
    package = package.parent
    assert package.is_relative_to(root / "venv"), package  # not the editable checkout
    assert firmware_dir == package / "sim" / "firmware_sources"
    assert (firmware_dir / "Makefile").is_file() and not (firmware_dir / "build").exists()
    assert targets_dir == package / "targets" / "shipped"
    assert (targets_dir / "qemu-m4.yaml").is_file()
    assert build_root.is_relative_to(cache / "kenning-hil" / "firmware"), build_root
    return python, cache


def user_project(path: Path) -> Path:
    """A project of a user: its test, its copy of the digits model, no targets/ folder."""
    (path / "pytest.ini").write_text("[pytest]\n")
    (path / "models" / "digits").mkdir(parents=True)
    for model_file in DIGITS.iterdir():
        shutil.copy2(model_file, path / "models" / "digits" / model_file.name)
    (path / "test_digits.py").write_text(USER_TEST)
    return path


def run_user_pytest(installed, project: Path, target: str) -> str:
    python, cache = installed
    assert not project.resolve().is_relative_to(REPO)
    done = run([python, "-m", "pytest", "-p", "no:cacheprovider", f"--target={target}"],
               cwd=project, env=user_env(cache))
    assert "1 passed" in done.stdout, done.stdout
    return done.stdout


def test_installed_package_runs_digits_on_the_host(installed, tmp_path):
    output = run_user_pytest(installed, user_project(tmp_path), "host-onnxruntime")
    assert "test_digits.py::test_digits[host-onnxruntime]" in output


def test_installed_package_runs_digits_on_qemu_m4(installed, tmp_path):
    require_simulation("target qemu-m4")
    pytest.importorskip("tensorflow", reason="needs the 'tensorflow' extra for int8 TFLite")
    _, cache = installed
    output = run_user_pytest(installed, user_project(tmp_path), "qemu-m4")
    assert "test_digits.py::test_digits[qemu-m4]" in output
    # built from the packaged sources into the user cache
    assert list((cache / "kenning-hil" / "firmware").glob("*/mps2-an386/kenning-hil.elf"))

"""Helpers for running the plugin in a separate pytest process (pytester) on a scratch project.

Test modules here declare ``pytest_plugins = ["pytester"]``. The scratch project sees the
repository's models (symlinked) and gets its own lock, report and compile-cache directories,
so runs are hermetic and can run in parallel."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIGITS = "models/digits/digits-mlp.onnx"


@pytest.fixture
def hil_project(pytester, tmp_path_factory):
    (pytester.path / "models").symlink_to(REPO / "models")
    locks = tmp_path_factory.mktemp("locks")
    pytester.makeini(
        f"""
        [pytest]
        hil_lock_dir = {locks}
        hil_report = results
        hil_compile_cache = compile-cache
        hil_timeout = 30
        """
    )
    return pytester


def run(project, *args, timeout: float = 240):
    """Runs pytest in a subprocess (the plugin loads through its entry point)."""
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


def write_target(project, name: str, text: str) -> Path:
    directory = project.path / "targets"
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path

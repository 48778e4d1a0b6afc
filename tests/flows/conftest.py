"""Helpers for the KenningFlow tests: the example flows copied with their outputs redirected
to a scratch folder, a harness on scratch directories, the CLI as a real process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kenning_hil.config.settings import HILSettings
from kenning_hil.targets.catalog import TargetCatalog
from kenning_hil.targets.target import Target

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "flows"
DIGITS_MODEL = str(REPO / "models" / "digits" / "digits-mlp.onnx")
DIGITS_TEST_SAMPLES = 359  # the digits test split


def example(name: str) -> list:
    return json.loads((EXAMPLES / name).read_text())


def redirected(flow: list, directory: Path) -> list:
    """The flow with its JSON-lines files in `directory` (same file names)."""
    for runner in flow:
        parameters = runner.get("parameters", {})
        if runner["type"] == "jsonlines":
            parameters["path"] = str(directory / Path(parameters["path"]).name)
    return flow


def write_flow(flow: list, directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text(json.dumps(flow, indent=1))
    return path


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`kenning-hil ...` from the repository root (the flows' model paths resolve there, and
    compiled models come from the project's compile cache)."""
    from tests.test_cli import console_script

    return subprocess.run([console_script(), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def harness(tmp_path):
    settings = HILSettings.resolve(REPO, {"hil_report": str(tmp_path / "report"),
                                          "compile_cache": str(tmp_path / "cache")})
    built = settings.harness()
    yield built
    built.close()


@pytest.fixture(scope="session")
def targets():
    settings = HILSettings.resolve(REPO, {})
    catalog = TargetCatalog(settings.target_dirs)
    return lambda name: Target(catalog.get(name))

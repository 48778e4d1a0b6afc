"""Repository-level pytest configuration: test-only fixtures shared by tests/ and examples/.

The kenning-hil plugin itself (options, markers, HIL fixtures) is loaded through its
`pytest11` entry point, so user projects get it the same way.
"""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def models_dir(pytestconfig) -> Path:
    """The external models folder this run resolved (--models-path, KENNING_HIL_MODELS, else
    hil_models_path in pyproject.toml: ../shared/models beside this checkout); tests that
    need a model absent from it skip, naming the path."""
    from kenning_hil.pytest_plugin.state import OPTIONS_KEY

    return pytestconfig.stash[OPTIONS_KEY].models_path

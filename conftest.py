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

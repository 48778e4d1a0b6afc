"""pytest plugin: a thin adapter over the kenning_hil library (registered via `pytest11`).

Only this module imports pytest. Everything it does is also reachable from `kenning-hil`.
"""

from __future__ import annotations

MARKERS = {
    "hil": "test runs a model on a target (hardware in the loop)",
    "nightly": "long-running test meant for nightly jobs",
    "slow": "test takes more than a few seconds",
    "gpu": "test needs a GPU (skipped when none is visible)",
    "sim": "test needs simulated boards (QEMU and the Arm toolchain)",
    "target(name, ...)": "pin a test to the named targets",
}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")

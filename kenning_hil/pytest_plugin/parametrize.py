"""Parametrization: every test that uses a target runs once per selected target."""

from __future__ import annotations

from typing import Any

import pytest

from kenning_hil.pytest_plugin.state import (
    OPTIONS_KEY,
    _known_target_names,
    _skip_at_test,
)

# ------------------------------------------------------------------------------ targets

FIXTURES_MODULE = "kenning_hil.pytest_plugin.fixtures"  # where our `target` fixture lives


def _pinned(item_or_definition: Any) -> list[str] | None:
    names = [n for mark in item_or_definition.iter_markers("target") for n in mark.args]
    return names or None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a target runs once per selected target (ids: target names)."""
    if not _uses_our_target(metafunc.definition):
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else argnames
        if "target" in names:
            return  # the test chose its own targets
    options = metafunc.config.stash[OPTIONS_KEY]
    pinned = _pinned(metafunc.definition)
    selected = options.targets
    if pinned is not None:
        # a misspelled pin would otherwise skip quietly as "not selected"
        known = _known_target_names(metafunc.config)
        unknown = [name for name in pinned if name not in known]
        if unknown:
            marker = ", ".join(repr(name) for name in pinned)
            raise pytest.Collector.CollectError(
                f"{metafunc.definition.nodeid}: marker target({marker}): unknown target "
                f"'{unknown[0]}' (known targets: {', '.join(known)})"
            )
        chosen = [t for t in selected if t in pinned]
        if not chosen:
            reason = (f"pinned to target {', '.join(pinned)}, not selected "
                      f"(run with --target {pinned[0]})")
            params = [pytest.param(t, marks=pytest.mark.skip(reason=reason)) for t in pinned]
            metafunc.parametrize("target", params, indirect=True, ids=pinned)
            return
        selected = chosen
    metafunc.parametrize("target", selected, indirect=True, ids=selected)


def _uses_our_target(item: Any) -> bool:
    """Whether a test function uses this plugin's `target` fixture (a project's own fixture
    of that name shadows ours, and is then left alone)."""
    if "target" not in getattr(item, "fixturenames", ()):
        return False
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.get("target") if info is not None else None
    return not defs or defs[-1].func.__module__ == FIXTURES_MODULE


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `gpu` test skips, before its fixtures are set up, unless a GPU is visible (asked of
    nvidia-smi once per process, and only when a gpu test is about to run)."""
    if item.get_closest_marker("gpu") is None:
        return
    from kenning_hil.targets.gpu import gpu_visibility

    visibility = gpu_visibility()
    if not visibility.visible:
        _skip_at_test(visibility.describe())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # a test that runs on a target is a HIL test: `-m hil` / `-m "not hil"` select by it
    for item in items:
        if _uses_our_target(item) and item.get_closest_marker("hil") is None:
            item.add_marker("hil")

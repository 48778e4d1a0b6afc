"""Per-process plugin state (stash keys, catalog, harness) and the helpers every part uses."""

from __future__ import annotations

from typing import Any

import pytest

from kenning_hil.config.settings import HILSettings

OPTIONS_KEY = pytest.StashKey[HILSettings]()
CATALOG_KEY = pytest.StashKey[Any]()
STATE_KEY = pytest.StashKey["HILState"]()


# ------------------------------------------------------------------------------ state


class HILState:
    """The per-process library objects: catalog, harness (sessions, cache, baselines)."""

    def __init__(self, config: pytest.Config):
        options = config.stash[OPTIONS_KEY]
        self.options = options
        self.catalog = _catalog(config)
        # an xdist worker learns its id and the worker count from the controller (the
        # environment may carry an outer run's values)
        workerinput = getattr(config, "workerinput", {})
        self.harness = options.harness(
            holder=f"pytest {workerinput.get('workerid', 'main')}",
            workers=int(workerinput.get("workercount", 1)),
            progress=_progress(config),
        )
        self._targets: dict[str, Any] = {}
        self._availability: dict[str, tuple[bool, str]] = {}

    def availability(self, target) -> tuple[bool, str]:
        if target.name not in self._availability:
            self._availability[target.name] = target.availability()
        return self._availability[target.name]

    def target(self, name: str):
        from kenning_hil.targets.target import Target

        if name not in self._targets:
            self._targets[name] = Target(self.catalog.get(name))
        return self._targets[name]


def _progress(config: pytest.Config):
    """The progress display of this process, written past pytest's output capture (as live
    logging is): a bar when pytest's stdout is a terminal, lines when it is a log, lines on
    stderr from an xdist worker (its stdout is not the terminal's; bars of several workers
    would fight over one line), none with --no-progress."""
    import sys
    from contextlib import nullcontext

    from kenning_hil.run.progress import LINES, OFF_PROGRESS, Progress

    if not config.stash[OPTIONS_KEY].progress:
        return OFF_PROGRESS
    capture = config.pluginmanager.getplugin("capturemanager")  # None with -p no:capture
    worker = hasattr(config, "workerinput")
    stream_name = "stderr" if worker else "stdout"

    def uncaptured():
        return capture.global_and_fixture_disabled() if capture is not None else nullcontext()

    def write(text: str) -> None:
        with uncaptured():
            stream = getattr(sys, stream_name)
            stream.write(text)
            stream.flush()

    reporter = config.pluginmanager.getplugin("terminalreporter")

    def write_line(text: str) -> None:
        # a line of its own: pytest then repeats the file name before the next result
        with uncaptured():
            reporter.write_line(text.rstrip("\n"))

    with uncaptured():
        progress = Progress.for_stream(getattr(sys, stream_name), log=worker, write=write)
    if progress.mode == LINES and reporter is not None and not worker:
        progress = Progress(LINES, write=write_line)
    return progress


def _catalog(config: pytest.Config):
    """The run's target catalog, scanned once per process (collection checks pins with it)."""
    from kenning_hil.targets.catalog import TargetCatalog

    if CATALOG_KEY not in config.stash:
        config.stash[CATALOG_KEY] = TargetCatalog(config.stash[OPTIONS_KEY].target_dirs)
    return config.stash[CATALOG_KEY]


def _known_target_names(config: pytest.Config) -> list[str]:
    """Every target the catalog knows (selected or not); a catalog error is a collection
    error naming its file."""
    from kenning_hil.core.errors import KenningHILError

    try:
        return _catalog(config).names()
    except KenningHILError as exc:
        raise pytest.Collector.CollectError(str(exc)) from None


def hil_state(config: pytest.Config) -> HILState:
    if STATE_KEY not in config.stash:
        config.stash[STATE_KEY] = HILState(config)
    return config.stash[STATE_KEY]


def pytest_sessionfinish(session: pytest.Session) -> None:
    if STATE_KEY in session.config.stash:
        session.config.stash[STATE_KEY].harness.close()


def resolve_target(config: pytest.Config, value: Any):
    """A Target from a name or a Target. An unavailable target fails the test, except the
    default host target when no target was asked for and targets of a kind whose tool is
    often absent (`TargetKind.unavailable_skips`, e.g. renode): those skip with the reason."""
    from kenning_hil.targets.catalog import DEFAULT_TARGET
    from kenning_hil.targets.target import Target

    state = hil_state(config)
    if not isinstance(value, Target):
        value = _user_errors(state.target, str(value))
    target = value
    available, reason = state.availability(target)
    if not available:
        message = f"target '{target.name}' is not available here: {reason}"
        skips = getattr(target.kind, "unavailable_skips", False)
        if not skips and (state.options.targets_given or target.name != DEFAULT_TARGET):
            pytest.fail(message, pytrace=False)
        _skip_at_test(message)
    return target


MEASUREMENTS_KEY = pytest.StashKey[Any]()
RESULT_KEY = pytest.StashKey[list]()
HIL_ITEMS_OUTPUT = "kenning_hil_items"  # whether an xdist worker had HIL tests, for the report


def infrastructure_failure(message: str, category: str) -> pytest.fail.Exception:
    """The exception that ends a test on a broken board, not a regressed model
    (run/outcome.py): pytest's own Failed, carrying the category the way library errors do,
    so that pytest_plugin/infrastructure.py reports it as an error (E) and may rerun it."""
    error = pytest.fail.Exception(message, pytrace=False)
    error.infrastructure = category
    return error


def _user_errors(function, *args, **kwargs):
    """Calls `function`; a user error fails the test with its one-line message, an
    infrastructure error (no board, lost connection, ...) fails it with its category."""
    from kenning_hil.core.errors import KenningHILError, MissingDependencyError, one_line
    from kenning_hil.run.outcome import (
        Incompatible,
        infrastructure_category,
        infrastructure_message,
    )

    category = None
    try:
        return function(*args, **kwargs)
    except (Incompatible, MissingDependencyError) as exc:
        skip, message = True, str(exc)
    except KenningHILError as exc:
        skip, message = False, one_line(exc)
        category = infrastructure_category(exc)
    # outside the except block, so the report shows the message, not a chained traceback
    if skip:
        _skip_at_test(message)
    if category is not None:
        raise infrastructure_failure(infrastructure_message(category, message), category)
    pytest.fail(message, pytrace=False)


def _skip_at_test(message: str) -> None:
    """Skips, reported at the test's location rather than at this plugin's line."""
    try:
        raise pytest.skip.Exception(message, _use_item_location=True)
    except TypeError:  # a pytest without that keyword
        pytest.skip(message)


BASELINE_PROPERTY = "hil_baseline"


# ------------------------------------------------------------------------------ reporting


def _record_target(item: pytest.Item, name: str) -> None:
    """Sets the test's ``target`` property (JUnit XML, summary rows), once."""
    item.user_properties[:] = [(k, v) for k, v in item.user_properties if k != "target"]
    item.user_properties.append(("target", name))

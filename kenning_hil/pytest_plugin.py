"""pytest plugin: a thin adapter over the kenning_hil library (registered via `pytest11`).

Only this module imports pytest. It maps options (command line, ini, environment) onto the
library, exposes fixtures, turns suite YAML files into test items, and reports results
(JUnit properties, pytest-html extras, a terminal table, a Markdown report). Running models,
sessions, pools, caches, thresholds and baselines live in `kenning_hil.harness`,
`kenning_hil.targets`, `kenning_hil.cache`, `kenning_hil.baseline` and `kenning_hil.report`.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from kenning_hil.settings import OPTIONS, HILSettings, capped_samples

MARKERS = {
    "hil": "test runs a model on a target (hardware in the loop)",
    "nightly": "long-running test meant for nightly jobs",
    "slow": "test takes more than a few seconds",
    "gpu": "test needs a GPU (skipped when nvidia-smi -L lists none or is not installed)",
    "sim": "test needs simulated boards (QEMU and the Arm toolchain)",
    "target(name, ...)": "pin a test to the named targets",
}

_INI_TYPES = {"list": "args", "pathlist": "args", "bool": "bool"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kenning-hil", "hardware-in-the-loop tests (kenning-hil)")
    for option in OPTIONS:
        group.addoption(option.flag, **option.argparse_kwargs())
        parser.addini(option.ini, f"{option.help} (ini form of {option.flag})",
                      type=_INI_TYPES.get(option.kind, "string"), default=None)


# ------------------------------------------------------------------------------ options


HILOptions = HILSettings  # the resolved settings of this pytest run


def _raw_values(config: pytest.Config, getter: Any, ini: bool) -> dict[str, Any]:
    values = {}
    for option in OPTIONS:
        value = getter(option.ini if ini else option.dest)
        values[option.dest] = None if value in ("", []) else value
    return values


def resolve_options(config: pytest.Config) -> HILSettings:
    """Command line, then environment, then ini, then the default (kenning_hil.settings)."""
    from kenning_hil.core.errors import KenningHILError

    command_line = _raw_values(config, lambda dest: config.getoption(dest, None), ini=False)
    ini = _raw_values(config, config.getini, ini=True)
    try:
        settings = HILSettings.resolve(config.rootpath, command_line, ini,
                                       cwd=config.invocation_params.dir)
        if not hasattr(config, "workerinput"):
            settings.prepare_report_dir()
    except KenningHILError as exc:
        raise pytest.UsageError(str(exc)) from None
    return settings


OPTIONS_KEY = pytest.StashKey[HILOptions]()
CATALOG_KEY = pytest.StashKey[Any]()
STATE_KEY = pytest.StashKey["HILState"]()


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    options = resolve_options(config)
    config.stash[OPTIONS_KEY] = options
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(HILReporter(config), "kenning-hil-reporter")
    _add_suites_to_args(config, options)


def _add_suites_to_args(config: pytest.Config, options: HILOptions) -> None:
    """Suites join the paths pytest collects. `--suite` always adds; with no path arguments
    it runs only the suites (not `testpaths`). The ini key `hil_suite` works like
    `testpaths`: its suites join the default collection only when no path arguments are
    given, so `pytest test_x.py::test_g` runs just that test."""
    if not options.suites:
        return
    source = getattr(config, "args_source", None)
    no_paths = source is not None and source != pytest.Config.ArgsSource.ARGS
    from_command_line = options.sources.get("suite") == "command line"
    if not (from_command_line or no_paths):
        options.suites = []  # paths were given: the ini's suites are not part of this run
        return
    missing = [str(p) for p in options.suites if not p.is_file()]
    if missing:
        flag = _given_by(options, "suite")
        raise pytest.UsageError(f"{flag}: no such file: {', '.join(missing)}")
    args = [str(p) for p in options.suites]
    if from_command_line and no_paths:
        config.args[:] = args  # only suites were asked for: not the testpaths too
    else:
        config.args.extend(a for a in args if a not in config.args)


def pytest_sessionstart(session: pytest.Session) -> None:
    # unknown target names are a usage error before anything runs
    options = session.config.stash[OPTIONS_KEY]
    if options.targets_given:
        from kenning_hil.core.errors import KenningHILError

        catalog = _catalog(session.config)
        for name in options.targets:
            try:
                catalog.get(name)
            except KenningHILError as exc:
                raise pytest.UsageError(f"{_given_by(options, 'target')}: {exc}") from None


def _given_by(options: HILOptions, dest: str) -> str:
    """Where a setting came from, as a message prefix: ``--target``, ``hil_target (ini)``
    or ``KENNING_HIL_X (environment)``, so a user knows which line to correct."""
    option = next(o for o in OPTIONS if o.dest == dest)
    source = options.sources.get(dest, "command line")
    if source.startswith("ini "):
        return f"{option.ini} (ini)"
    if source.startswith("environment "):
        return f"{source.removeprefix('environment ')} (environment)"
    return option.flag


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


# ------------------------------------------------------------------------------ targets


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
    return not defs or defs[-1].func.__module__ == __name__


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A `gpu` test skips, before its fixtures are set up, unless a GPU is visible (asked of
    nvidia-smi once per process, and only when a gpu test is about to run)."""
    if item.get_closest_marker("gpu") is None:
        return
    from kenning_hil.gpu import gpu_visibility

    visibility = gpu_visibility()
    if not visibility.visible:
        _skip_at_test(visibility.describe())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # a test that runs on a target is a HIL test: `-m hil` / `-m "not hil"` select by it
    for item in items:
        if _uses_our_target(item) and item.get_closest_marker("hil") is None:
            item.add_marker("hil")


def pytest_collection_finish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the report
        workeroutput[HIL_ITEMS_OUTPUT] = any(_is_hil_item(item) for item in session.items)


def resolve_target(config: pytest.Config, value: Any):
    """A Target from a name or a Target. An unavailable target fails the test, except the
    default host target when no target was asked for: that one skips (e.g. no onnxruntime)."""
    from kenning_hil.targets.catalog import DEFAULT_TARGET
    from kenning_hil.targets.target import Target

    state = hil_state(config)
    if not isinstance(value, Target):
        value = _user_errors(state.target, str(value))
    target = value
    available, reason = state.availability(target)
    if not available:
        message = f"target '{target.name}' is not available here: {reason}"
        if state.options.targets_given or target.name != DEFAULT_TARGET:
            pytest.fail(message, pytrace=False)
        _skip_at_test(message)
    return target


# ------------------------------------------------------------------------------ fixtures


def _option_fixture(name: str, attribute: str):
    def fixture(request: pytest.FixtureRequest) -> Any:
        if hasattr(request, "param"):
            return request.param
        return getattr(request.config.stash[OPTIONS_KEY], attribute)

    flag = next(o.flag for o in OPTIONS if o.fixture == name)
    fixture.__name__ = name
    fixture.__doc__ = (f"The {flag} setting: the test's own parametrization, else command "
                       "line / environment / ini, else the default.")
    return pytest.fixture(name=name)(fixture)


suite = _option_fixture("suite", "suites")
samples = _option_fixture("samples", "samples")
hil_timeout = _option_fixture("hil_timeout", "timeout")
baseline_dir = _option_fixture("baseline_dir", "baseline_dir")
update_baseline = _option_fixture("update_baseline", "update_baseline")
hil_report_dir = _option_fixture("hil_report_dir", "report_dir")
compile_cache_dir = _option_fixture("compile_cache_dir", "compile_cache_dir")
target_dirs = _option_fixture("target_dirs", "target_dirs")
models_path = _option_fixture("models_path", "models_path")
hil_lock_dir = _option_fixture("hil_lock_dir", "lock_dir")


@pytest.fixture
def target(request: pytest.FixtureRequest):
    """The Target this test runs on: its parametrization, else the first --target, else the
    default host target. Tests using it run once per --target given."""
    name = getattr(request, "param", None) or request.config.stash[OPTIONS_KEY].targets[0]
    resolved = resolve_target(request.config, name)
    _record_target(request.node, resolved.name)
    return resolved


@pytest.fixture
def measurements(request: pytest.FixtureRequest):
    """The test's Measurements; hil.run adds its results, and the test may add its own.
    Written to <hil-report>/tests/<test>-measurements.json at teardown."""
    from kenning_hil.core.measurements import Measurements

    collected = Measurements()
    request.node.stash[MEASUREMENTS_KEY] = collected
    yield collected
    if len(collected):
        harness = hil_state(request.config).harness
        _user_errors(harness.write_measurements, request.node.nodeid, collected.to_dict())


MEASUREMENTS_KEY = pytest.StashKey[Any]()
RESULT_KEY = pytest.StashKey[list]()
HIL_ITEMS_OUTPUT = "kenning_hil_items"  # whether an xdist worker had HIL tests, for the report


@pytest.fixture
def hil(request: pytest.FixtureRequest, target, samples):
    """Runs models on the test's target: ``hil.run(model=..., dataset=..., optimizer=...,
    samples=..., thresholds=...) -> Result``."""
    return HIL(request, target, samples)


@pytest.fixture
def model(request: pytest.FixtureRequest):
    """The model to compile: a path or a model wrapper entry (parametrize it, indirect)."""
    if not hasattr(request, "param"):
        pytest.fail("fixture 'model' needs a value: parametrize 'model' with indirect=True",
                    pytrace=False)
    return request.param


@pytest.fixture
def optimizers(request: pytest.FixtureRequest):
    """The optimizer chain (list of entries or type names); empty unless parametrized."""
    from kenning_hil.harness import optimizer_entries

    return optimizer_entries(getattr(request, "param", None))


@pytest.fixture
def dataset(request: pytest.FixtureRequest, samples):
    """A Dataset built from its parametrization ('digits', 'type:root' or an entry),
    limited to `samples`."""
    from kenning_hil.core.dataset import Dataset
    from kenning_hil.harness import dataset_entry
    from kenning_hil.pipeline import build_block

    if not hasattr(request, "param"):
        pytest.fail("fixture 'dataset' needs a value: parametrize 'dataset' with indirect=True",
                    pytrace=False)
    built = _user_errors(build_block, "dataset", dataset_entry(request.param), Dataset, "dataset")
    limit = capped_samples(samples, request.config.stash[OPTIONS_KEY].samples)
    if limit is not None:
        built.set_sample_limit(limit)
    return built


def _request_for(request: pytest.FixtureRequest, model, optimizers, samples):
    """A run request for the fixtures: the dataset (calibration data for optimizers) is the
    test's `dataset` parametrization, if any."""
    state = hil_state(request.config)
    callspec = getattr(request.node, "callspec", None)
    dataset_spec = callspec.params.get("dataset") if callspec is not None else None
    return _user_errors(
        state.harness.request, model, dataset_spec, optimizers,
        capped_samples(samples, state.options.samples),
        search=[Path(request.node.path).parent], require_dataset=False,
    )


@pytest.fixture
def model_wrapper(request: pytest.FixtureRequest, model, dataset):
    """The ModelWrapper of `model`, bound to `dataset`."""
    from kenning_hil.core.model import ModelWrapper
    from kenning_hil.harness import model_entry
    from kenning_hil.pipeline import build_block

    state = hil_state(request.config)
    entry = _user_errors(model_entry, model, [Path(request.node.path).parent,
                                              *state.harness.search])
    return _user_errors(build_block, "model_wrapper", entry, ModelWrapper, "model_wrapper",
                        dataset=dataset)


@pytest.fixture
def compiled_model(request: pytest.FixtureRequest, model, optimizers, samples) -> Path:
    """The compiled model's path, from the compile cache (compiled once per distinct input)."""
    state = hil_state(request.config)
    run_request = _request_for(request, model, optimizers, samples)
    path, _ = _user_errors(state.harness.compile, run_request)
    return path


@pytest.fixture
def target_session(request: pytest.FixtureRequest, target):
    """A free instance of the target, booted and connected, held for the whole test
    (``.instance``, ``.protocol``, ``.info``); the board stays up for later tests."""
    state = hil_state(request.config)
    with ExitStack() as stack:
        yield _user_errors(
            stack.enter_context, state.harness.sessions.use(target, holder=request.node.nodeid)
        )


@pytest.fixture
def protocol(target_session):
    """The connected client protocol of `target_session`."""
    return target_session.protocol


@pytest.fixture
def runtime(request: pytest.FixtureRequest, target, protocol):
    """The host-side Runtime driving the target through `protocol` (``run_client``)."""
    from kenning_hil.core.runtime import Runtime
    from kenning_hil.harness import client_runtime

    return _user_errors(client_runtime, target, protocol, Runtime)


def _user_errors(function, *args, **kwargs):
    """Calls `function`; a user error fails the test with its one-line message."""
    from kenning_hil.core.errors import KenningHILError, MissingDependencyError
    from kenning_hil.harness import Incompatible

    try:
        return function(*args, **kwargs)
    except (Incompatible, MissingDependencyError) as exc:
        skip, message = True, str(exc)
    except KenningHILError as exc:
        skip, message = False, " ".join(str(exc).split("\n"))
    # outside the except block, so the report shows the message, not a chained traceback
    if skip:
        _skip_at_test(message)
    pytest.fail(message, pytrace=False)


def _skip_at_test(message: str) -> None:
    """Skips, reported at the test's location rather than at this plugin's line."""
    try:
        raise pytest.skip.Exception(message, _use_item_location=True)
    except TypeError:  # a pytest without that keyword
        pytest.skip(message)


# ------------------------------------------------------------------------------ hil


class HIL:
    """What the `hil` fixture gives a test: runs on its target, results judged and recorded."""

    def __init__(self, request: pytest.FixtureRequest, target, samples: int | None):
        self._request = request
        self._node = request.node
        self.target = target
        self.samples = samples
        self._state = hil_state(request.config)
        self._runs = 0

    def run(
        self,
        model: Any,
        dataset: Any = None,
        optimizer: Any = None,
        samples: int | None = None,
        thresholds: dict | None = None,
        tolerance: dict | None = None,
        baseline: bool = True,
        name: str = "",
    ):
        """Compiles (cached), uploads (once per session), runs, writes the results, then
        checks `thresholds` and the baseline; returns the Result."""
        from kenning_hil.baseline import parse_thresholds, parse_tolerances

        harness = self._state.harness
        test_id = self._node.nodeid
        index = self._runs
        self._runs += 1
        limit = capped_samples(samples if samples is not None else self.samples,
                               self._state.options.samples)
        request = _user_errors(
            harness.request, model, dataset, optimizer, limit, name,
            search=[Path(self._node.path).parent],
        )
        checks = _user_errors(parse_thresholds, thresholds, "hil.run")
        tolerances = _user_errors(parse_tolerances, tolerance, "hil.run")
        result = _user_errors(harness.run, self.target, request, test_id, index)
        return finish(self._node, harness, result, checks, tolerances, baseline,
                      baseline_id=test_id if index == 0 else f"{test_id}#{name or index}")


BASELINE_PROPERTY = "hil_baseline"


def finish(node, harness, result, thresholds, tolerances, use_baseline: bool, baseline_id: str,
           where: str = "hil.run thresholds"):
    """Records the result on the test (properties, measurements, extras), then judges it.
    `where` names the thresholds' origin in messages (a suite file, or hil.run)."""
    record(node, result)
    verdict = _user_errors(harness.judge, result, thresholds, tolerances, baseline_id,
                           use_baseline, where)
    if verdict.baseline_status:  # counted by the controller for its summary line
        node.user_properties.append((BASELINE_PROPERTY, verdict.baseline_status))
    for note in verdict.notes:
        warnings.warn(f"kenning-hil: {baseline_id}: {note}", stacklevel=3)
    if verdict.failures:
        from kenning_hil.harness import failure_message

        pytest.fail(failure_message(result, verdict.failures), pytrace=False)
    return result


def record(node, result) -> None:
    properties = dict(node.user_properties)

    def put(name: str, value: Any) -> None:
        if value is None:
            return
        if name in properties:
            node.user_properties[:] = [(k, v) for k, v in node.user_properties if k != name]
        node.user_properties.append((name, value))
        properties[name] = value

    from kenning_hil.report.summary import result_properties

    for name, value in result_properties(result):
        put(name, value)
    if MEASUREMENTS_KEY in node.stash:
        node.stash[MEASUREMENTS_KEY].update_measurements(result.measurements.to_dict())
    node.stash.setdefault(RESULT_KEY, []).append(result)


# ------------------------------------------------------------------------------ suites


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    wanted = parent.session.isinitpath(file_path) or file_path.parent.name == "suites"
    if not wanted:
        return None
    from kenning_hil.suite import is_suite_document

    if not is_suite_document(file_path):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


class SuiteFile(pytest.File):
    """A suite YAML file: one test per (model, optimizer chain, target)."""

    def collect(self):
        from kenning_hil.core.errors import KenningHILError
        from kenning_hil.suite import display_path, load_suite

        options = self.config.stash[OPTIONS_KEY]
        try:
            suite = load_suite(self.path, search=[options.rootdir, options.models_path],
                               source=display_path(self.path, options.rootdir))
        except KenningHILError as exc:
            raise self.CollectError(str(exc)) from None  # shown as its message alone
        known = _known_target_names(self.config)
        try:
            suite.check_targets(known)
            suite.check_blocks()
        except KenningHILError as exc:
            raise self.CollectError(str(exc)) from None
        given = options.targets
        hil_mark = pytest.mark.hil
        marks = {}
        for case in suite.cases:
            targets, reason = case.targets_for(given)
            skip = None if reason is None else pytest.mark.skip(reason=reason)
            for name in case.marks:
                if name not in marks:
                    marks[name] = getattr(pytest.mark, name)
            for target_name in targets:
                item = SuiteItem.from_parent(self, name=case.test_name(target_name), case=case,
                                             target_name=target_name)
                # known now: a row in the report even when the test skips or errors at setup
                _record_target(item, target_name)
                item.add_marker(hil_mark)
                for name in case.marks:
                    item.add_marker(marks[name])
                if skip is not None:
                    item.add_marker(skip)
                yield item


class SuiteItem(pytest.Item):
    def __init__(self, *, case, target_name: str, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.target_name = target_name

    def setup(self) -> None:
        # as the `target` fixture does for function tests: an unusable target is an error
        # of the test's setup, not a failure of the model
        self.target = resolve_target(self.config, self.target_name)

    def runtest(self) -> None:
        from kenning_hil.harness import RunRequest

        state = hil_state(self.config)
        options = state.options
        target = self.target
        case = self.case
        samples = capped_samples(case.samples, options.samples)
        request = RunRequest(case.model_wrapper, case.dataset, case.optimizers, samples, case.model)
        result = _user_errors(state.harness.run, target, request, self.nodeid)
        finish(self, state.harness, result, case.thresholds, case.tolerances, True, self.nodeid,
               where=f"{case.source}: thresholds")

    def reportinfo(self):
        # not a suffix of the nodeid: pytest would turn the dots of the domain into "::"
        return self.path, 0, f"{self.path}::{self.name}"


# ------------------------------------------------------------------------------ reporting


def _record_target(item: pytest.Item, name: str) -> None:
    """Sets the test's ``target`` property (JUnit XML, summary rows), once."""
    item.user_properties[:] = [(k, v) for k, v in item.user_properties if k != "target"]
    item.user_properties.append(("target", name))


def _is_hil_item(item: pytest.Item) -> bool:
    return isinstance(item, SuiteItem) or _uses_our_target(item)


def _planned_target(item: pytest.Item) -> str:
    """The target a HIL function test is parametrized with (a name or a Target), or the
    default: known before its fixtures run, so a test that skips or errors first (an
    unavailable board, a pin to an unselected target, a gpu marker) still gets its row."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get("target") if callspec is not None else None
    if value is None:
        value = item.config.stash[OPTIONS_KEY].targets[0]
    return str(getattr(value, "name", value))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    if not any(k == "target" for k, _ in item.user_properties) and _uses_our_target(item):
        _record_target(item, _planned_target(item))
    report = yield
    results = item.stash.get(RESULT_KEY, None)
    # pytest-html registers itself whenever installed: build extras only for an --html run
    if results and report.when == "call" and item.config.getoption("htmlpath", None):
        try:
            from pytest_html import extras
        except ImportError:
            return report
        from kenning_hil.report.html import result_extras

        report.extras = [*getattr(report, "extras", []),
                         *result_extras(results, extras.html, extras.png)]
    return report


def _reason(report: pytest.TestReport) -> str:
    if report.passed:
        return ""
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    from kenning_hil.harness import failure_reason

    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    return failure_reason(text).removeprefix("Failed: ")


class HILReporter:
    """Controller-side reporting: collects a row per HIL test (from the properties workers
    recorded), prints the summary table and writes the session report."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: list = []
        self.baselines: list[str] = []  # each judged test's baseline status
        self.has_hil_items = False  # whether this run selected HIL tests (any process)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.has_hil_items |= any(_is_hil_item(item) for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        # under xdist the workers collect; each says whether it had HIL tests
        self.has_hil_items |= bool(getattr(node, "workeroutput", {}).get(HIL_ITEMS_OUTPUT))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        wanted = (report.when == "call" or (report.when == "setup" and not report.passed)
                  or (report.when == "teardown" and report.failed))
        if not wanted:
            return
        from kenning_hil.report.summary import SummaryRow

        outcome = report.outcome if report.when == "call" else (
            "skipped" if report.skipped else "error")
        self.baselines += [v for k, v in report.user_properties if k == BASELINE_PROPERTY]
        row = SummaryRow.from_properties(report.nodeid, outcome, report.user_properties,
                                         _reason(report))
        if row is None:
            return
        if report.when == "teardown":
            # an error after the test ran (e.g. writing its measurements): the row says so
            earlier = next((r for r in self.rows if r.test == report.nodeid), None)
            if earlier is not None:
                earlier.outcome = "error"
                earlier.reason = "; ".join(filter(None, [earlier.reason,
                                                         f"at teardown: {row.reason}"]))
                return
        self.rows.append(row)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.rows:
            return
        from kenning_hil.report.summary import format_table

        terminalreporter.write_sep("=", "kenning-hil results")
        # by test id, not by finishing order (which -n 2 shuffles)
        for line in format_table(sorted(self.rows, key=lambda r: r.test)).splitlines():
            terminalreporter.write_line(line)
        options = self.config.stash[OPTIONS_KEY]
        terminalreporter.write_line(
            f"results: {options.report_dir} (report.md, report.rst, tests/*.json)")
        from kenning_hil.harness import baseline_summary

        line = baseline_summary(self.baselines, options.baseline_dir)
        if line:
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # a run with HIL tests rewrites the report even when none of them reported (stopped
        # early): the previous run's report.md must not pass for this one's
        if not self.rows and (not self.has_hil_items or self.config.option.collectonly):
            return
        from kenning_hil.report.session import write_session_report

        try:
            write_session_report(sorted(self.rows, key=lambda r: r.test),
                                 self.config.stash[OPTIONS_KEY].report_dir)
        except OSError as exc:
            warnings.warn(f"kenning-hil: cannot write the session report: {exc}", stacklevel=1)

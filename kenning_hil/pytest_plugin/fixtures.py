"""Fixtures: one per option, the pipeline's objects, and `hil` (runs the whole pipeline)."""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from kenning_hil.config.options import OPTIONS
from kenning_hil.config.settings import capped_samples
from kenning_hil.pytest_plugin.state import (
    BASELINE_PROPERTY,
    MEASUREMENTS_KEY,
    OPTIONS_KEY,
    RESULT_KEY,
    _record_target,
    _skip_at_test,
    _user_errors,
    hil_state,
    resolve_target,
)

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
hil_retries = _option_fixture("hil_retries", "retries")
hil_progress = _option_fixture("hil_progress", "progress")


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
    from kenning_hil.run.request import optimizer_entries

    return optimizer_entries(getattr(request, "param", None))


@pytest.fixture
def dataset(request: pytest.FixtureRequest, samples):
    """A Dataset built from its parametrization ('digits', 'type:root' or an entry),
    limited to `samples`."""
    from kenning_hil.blocks.entries import build_block
    from kenning_hil.core.dataset import Dataset
    from kenning_hil.run.request import dataset_entry

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
    from kenning_hil.blocks.entries import build_block
    from kenning_hil.core.model import ModelWrapper
    from kenning_hil.run.request import hil_model_entry

    state = hil_state(request.config)
    entry = _user_errors(hil_model_entry, model, [Path(request.node.path).parent,
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
    from kenning_hil.run.harness import client_runtime

    return _user_errors(client_runtime, target, protocol, Runtime)


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

    def _run_request(self, model, dataset, optimizer, samples: int | None, name: str):
        """The run request of hil.run / hil.compare: `samples` (else the test's) capped by
        --samples, paths looked up next to the test file first."""
        limit = capped_samples(samples if samples is not None else self.samples,
                               self._state.options.samples)
        return _user_errors(
            self._state.harness.request, model, dataset, optimizer, limit, name,
            search=[Path(self._node.path).parent],
        )

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
        from kenning_hil.judge.baselines import parse_tolerances
        from kenning_hil.judge.thresholds import parse_thresholds

        harness = self._state.harness
        test_id = self._node.nodeid
        index = self._runs
        self._runs += 1
        request = self._run_request(model, dataset, optimizer, samples, name)
        checks = _user_errors(parse_thresholds, thresholds, "hil.run")
        tolerances = _user_errors(parse_tolerances, tolerance, "hil.run")
        result = _user_errors(harness.run, self.target, request, test_id, index)
        return finish(self._node, harness, result, checks, tolerances, baseline,
                      baseline_id=test_id if index == 0 else f"{test_id}#{name or index}")


    def compare(
        self,
        model: Any,
        dataset: Any = None,
        targets: list | None = None,
        optimizer: Any = None,
        samples: int | None = None,
        tolerance: dict | None = None,
        thresholds: dict | None = None,
        name: str = "",
    ):
        """Runs one compiled model on the same samples on every target of `targets` (names
        or Targets, all held at once; the first is the reference) and compares each other
        target's outputs with the reference's, sample by sample. Fails when one is beyond
        `tolerance`: ``{"exact": True}`` (default), ``{"max_lsb": N}`` (quantisation steps)
        or ``{"atol": A, "rtol": R}``; `thresholds` apply to each target under test.
        Returns the Comparison (``.pairs``: samples, exact-match rate, max difference, first
        mismatch, accuracies; ``.results``: each target's Result)."""
        from kenning_hil.judge.agreement import parse_output_tolerance
        from kenning_hil.judge.thresholds import parse_thresholds
        from kenning_hil.run.comparison import compare_on_targets

        if not targets:
            pytest.fail("hil.compare needs targets=[reference, target, ...] (names or the "
                        "`target` fixture)", pytrace=False)
        harness = self._state.harness
        resolved = [comparison_target(self._request.config, t) for t in targets]
        names = [t.name for t in resolved]
        if names.count(self.target.name) > 1:
            # `targets=["host-litert-ref", hil.target]` run with --target=host-litert-ref
            _skip_at_test(f"target '{self.target.name}' is this comparison's reference: "
                          f"nothing to compare it with")
        index = self._runs
        self._runs += len(resolved) - 1
        request = self._run_request(model, dataset, optimizer, samples, name)
        output_tolerance = _user_errors(parse_output_tolerance, tolerance, "hil.compare tolerance")
        checks = _user_errors(parse_thresholds, thresholds, "hil.compare")
        comparison = _user_errors(compare_on_targets, harness, resolved, request,
                                  self._node.nodeid, output_tolerance, index)
        finish_comparison(self._node, harness, comparison, checks, use_baseline=False,
                          where="hil.compare thresholds")
        return comparison

    def flow(
        self,
        flow: Any,
        steps: int | None = None,
        thresholds: dict | None = None,
        tolerance: dict | None = None,
        baseline: bool = True,
        on_target: bool = True,
        name: str = "",
    ):
        """Runs a KenningFlow (a flow JSON file, relative to the test's folder or the
        rootdir, or its list of runners) until its data ends or `steps` are done; with
        `on_target` (default) every model runner runs on the test's target, as `hil.run`
        does. Writes the results, checks `thresholds` and the baseline like `hil.run`, and
        returns the FlowResult (``steps``, ``throughput``, ``end_to_end``, ``runner_mean_s``,
        ``latency``, ``accuracy``, ``measurements``)."""
        from kenning_hil.flows.flowrun import run_flow
        from kenning_hil.judge.baselines import parse_tolerances
        from kenning_hil.judge.thresholds import parse_thresholds

        harness = self._state.harness
        test_id = self._node.nodeid
        index = self._runs
        self._runs += 1
        if isinstance(flow, (str, Path)) and not Path(flow).is_absolute():
            here = Path(self._node.path).parent / flow
            flow = here if here.exists() else self._state.options.rootdir / flow
        checks = _user_errors(parse_thresholds, thresholds, "hil.flow")
        tolerances = _user_errors(parse_tolerances, tolerance, "hil.flow")
        outcome = _user_errors(
            run_flow, flow, harness, self._state.target, name=name or None, steps=steps,
            target=self.target.name if on_target else None, test_id=test_id, index=index)
        finish(self._node, harness, outcome.result, checks, tolerances, baseline,
               baseline_id=test_id if index == 0 else f"{test_id}#{name or index}",
               where="hil.flow thresholds")
        return outcome


def comparison_target(config, value: Any):
    """A Target of a comparison from a name or a Target; one not usable here (no LiteRT for
    the reference, no QEMU) skips the test with the reason."""
    from kenning_hil.targets.target import Target

    state = hil_state(config)
    target = value if isinstance(value, Target) else _user_errors(state.target, str(value))
    available, reason = state.availability(target)
    if not available:
        _skip_at_test(f"comparison target '{target.name}' is not available here: {reason}")
    return target


def finish_comparison(node, harness, comparison, thresholds, use_baseline: bool,
                      where: str, tolerances=None, baseline_id: str = ""):
    """Records every target under test's result and comparison on the test, judges their
    thresholds (and baseline, when `use_baseline`), then fails with each target's failed
    checks, the comparison first."""
    from kenning_hil.judge.baselines import DEFAULT_TOLERANCES
    from kenning_hil.run.outcome import failure_message

    messages = []
    for pair in comparison.pairs:
        result = comparison.results[pair.target]
        record(node, result)
        node.user_properties.append(("comparison", pair.summary()))
        if pair.few_distinct_warning():  # an agreement over few different outputs (#23)
            warnings.warn(f"kenning-hil: {node.nodeid}: {pair.target} vs {pair.reference}: "
                          f"{pair.few_distinct_warning()}", stacklevel=3)
        verdict = _user_errors(harness.judge, result, thresholds,
                               tolerances or DEFAULT_TOLERANCES, baseline_id or node.nodeid,
                               use_baseline, where)
        if verdict.baseline_status:
            node.user_properties.append((BASELINE_PROPERTY, verdict.baseline_status))
        for note in verdict.notes:
            warnings.warn(f"kenning-hil: {node.nodeid}: {note}", stacklevel=3)
        failures = ([pair.failure()] if not pair.passed else []) + verdict.failures
        if failures:
            messages.append(failure_message(result, failures))
    if messages:
        pytest.fail("\n".join(messages), pytrace=False)
    return comparison


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
        from kenning_hil.run.outcome import failure_message

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

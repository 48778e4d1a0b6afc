"""Suite files as test items: one per (model, optimizer chain, target)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kenning_hil.config.settings import capped_samples
from kenning_hil.pytest_plugin.fixtures import comparison_target, finish, finish_comparison
from kenning_hil.pytest_plugin.state import (
    OPTIONS_KEY,
    _known_target_names,
    _record_target,
    _user_errors,
    hil_state,
    resolve_target,
)

# ------------------------------------------------------------------------------ suites


def _suites_only(config: pytest.Config) -> bool:
    return bool(config.getoption("hil_suites_only", False))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # --hil-suites-only: files that cannot be suites are not even imported
    if (_suites_only(config) and collection_path.suffix not in (".yaml", ".yml")
            and not collection_path.is_dir()):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # --hil-suites-only: a test file named on the command line is not ignored by pytest;
    # its tests are deselected, so the run holds suite tests only
    if not _suites_only(config):
        return
    others = [item for item in items if not isinstance(item, SuiteItem)]
    if others:
        items[:] = [item for item in items if isinstance(item, SuiteItem)]
        config.hook.pytest_deselected(items=others)


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    # --hil-suites-only: a suite document anywhere under the given paths
    wanted = (parent.session.isinitpath(file_path) or file_path.parent.name == "suites"
              or _suites_only(parent.config))
    if not wanted:
        return None
    from kenning_hil.suites.loader import is_suite_document

    if not is_suite_document(file_path):
        return None
    return SuiteFile.from_parent(parent, path=file_path)


class SuiteFile(pytest.File):
    """A suite YAML file: one test per (model, optimizer chain, target)."""

    def collect(self):
        from kenning_hil.core.errors import KenningHILError
        from kenning_hil.suites.loader import display_path, load_suite

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
            suite.check_cases()
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
        from kenning_hil.run.request import RunRequest

        state = hil_state(self.config)
        options = state.options
        target = self.target
        case = self.case
        samples = capped_samples(case.samples, options.samples)
        request = RunRequest(case.model_wrapper, case.dataset, case.optimizers, samples, case.model)
        if case.reference is not None and case.reference != target.name:
            self._run_compared(request)
            return
        result = _user_errors(state.harness.run, target, request, self.nodeid)
        finish(self, state.harness, result, case.thresholds, case.tolerances, True, self.nodeid,
               where=f"{case.source}: thresholds")

    def _run_compared(self, request) -> None:
        """A case with a `reference`: the reference and this target run the same samples,
        outputs compared; thresholds and the baseline judge this target's result."""
        from kenning_hil.run.comparison import compare_on_targets

        state = hil_state(self.config)
        case = self.case
        reference = comparison_target(self.config, case.reference)
        comparison = _user_errors(
            compare_on_targets, state.harness, [reference, self.target], request, self.nodeid,
            case.compare, per_target=case.compare_targets)
        finish_comparison(self, state.harness, comparison, case.thresholds, True,
                          where=f"{case.source}: thresholds", tolerances=case.tolerances,
                          baseline_id=self.nodeid)

    def reportinfo(self):
        # not a suffix of the nodeid: pytest would turn the dots of the domain into "::"
        return self.path, 0, f"{self.path}::{self.name}"

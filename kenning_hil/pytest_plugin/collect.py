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
                if skip is None and self._not_applicable(case, target_name):
                    continue  # never runnable there: not a test (counted, not skipped)
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


    def _not_applicable(self, case, target_name: str) -> bool:
        """Whether the target can never accept the case's model (the harness's own
        compatibility check, before compiling); such a combination is recorded for the
        summary line and the report instead of becoming a test that always skips."""
        from kenning_hil.core.errors import KenningHILError
        from kenning_hil.run.request import RunRequest

        state = hil_state(self.config)
        try:
            target = state.target(target_name)
        except KenningHILError:
            return False  # the test's setup reports the broken description
        refused = state.harness.not_applicable(
            target, RunRequest(case.model_wrapper, case.dataset, case.optimizers))
        if refused is None:
            return False
        test = f"{self.nodeid}::{case.test_name(target_name)}"
        not_applicable(self.config)[test] = {"test": test, "target": target_name,
                                             "check": refused.check, "reason": str(refused)}
        return True


class SuiteItem(pytest.Item):
    # a suite case uses no fixtures; other plugins' setup hooks (labgrid's) read this
    # attribute of every item as pytest's Function items have it
    fixturenames: tuple[str, ...] = ()

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


# ------------------------------------------------------------------------------ not applicable

NOT_APPLICABLE_KEY = pytest.StashKey[dict]()
NOT_APPLICABLE_OUTPUT = "kenning_hil_not_applicable"  # an xdist worker's list, for the controller
NOT_APPLICABLE = "not applicable"  # the outcome word in the summary line and the report


def not_applicable(config: pytest.Config) -> dict[str, dict]:
    """The model × target combinations left out at collection, by test id: test, target,
    check (what refused it: formats, ...) and reason."""
    if NOT_APPLICABLE_KEY not in config.stash:
        config.stash[NOT_APPLICABLE_KEY] = {}
    return config.stash[NOT_APPLICABLE_KEY]


def not_applicable_rows(config: pytest.Config) -> list:
    """Report rows (outcome "not applicable", with the reason) for the left-out combinations."""
    entries = not_applicable(config)
    if not entries:
        return []
    from kenning_hil.report.summary import SummaryRow

    return [SummaryRow(test=entry["test"], target=entry["target"], outcome=NOT_APPLICABLE,
                       reason=entry["reason"])
            for _, entry in sorted(entries.items())]


def not_applicable_line(entries: list[dict]) -> str:
    """"7 model × target combinations not applicable: formats" (by check, when several)."""
    checks: dict[str, int] = {}
    for entry in entries:
        checks[entry["check"]] = checks.get(entry["check"], 0) + 1
    why = ", ".join(checks) if len(checks) == 1 else ", ".join(
        f"{check} ({n})" for check, n in checks.items())
    noun = "combination" if len(entries) == 1 else "combinations"
    return f"{len(entries)} model × target {noun} {NOT_APPLICABLE}: {why}"


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints the summary
        workeroutput[NOT_APPLICABLE_OUTPUT] = list(not_applicable(session.config).values())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    # under xdist the workers collect (each the same combinations): merge by test id
    entries = getattr(node, "workeroutput", {}).get(NOT_APPLICABLE_OUTPUT) or []
    found = not_applicable(node.config)
    for entry in entries:
        found.setdefault(entry["test"], entry)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    entries = [entry for _, entry in sorted(not_applicable(config).items())]
    if not entries:
        return
    terminalreporter.write_line(not_applicable_line(entries))
    if config.get_verbosity() > 0:
        for entry in entries:
            terminalreporter.write_line(f"  {entry['test']}: {entry['reason']}")
    # counted in pytest's last line: "5 passed, 7 not applicable in 9.1s"
    terminalreporter.stats.setdefault(NOT_APPLICABLE, []).extend(entries)

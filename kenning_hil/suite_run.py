"""Running suites without pytest: what ``kenning-hil suite`` does.

The same (model, chain, target) tests as ``pytest suites/x.yaml``, with the same ids, so both
read and write the same baselines and results: ``<suite path relative to the root>::
<model>-<chain>[<target>]``. Tests run one after another in this process (board pools and
the compile cache are shared with any pytest run going on beside it); each is judged by
its thresholds and baseline and becomes a summary row; the session report is written at
the end, and every test's results JSON as soon as it is measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError, KenningHILError, MissingDependencyError
from kenning_hil.report.summary import SummaryRow, result_properties
from kenning_hil.settings import HILSettings, capped_samples


@dataclass
class SuiteRunOutcome:
    rows: list[SummaryRow] = field(default_factory=list)
    report: Path | None = None

    def count(self, outcome: str) -> int:
        return sum(row.outcome == outcome for row in self.rows)

    @property
    def failed(self) -> bool:
        return any(row.outcome in ("failed", "error") for row in self.rows)


def suite_test_id(suite_path: Path, rootdir: Path, name: str) -> str:
    """The pytest node id of a suite test run from `rootdir`."""
    try:
        relative = Path(os.path.relpath(suite_path, rootdir))
    except ValueError:  # another drive
        relative = suite_path
    if relative.parts and relative.parts[0] == "..":
        relative = suite_path
    return f"{relative.as_posix()}::{name}"


def run_suites(
    settings: HILSettings,
    select: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> SuiteRunOutcome:
    """Runs every test of `settings.suites` on the selected targets; `select`: substrings,
    a test runs when its id contains any of them (all tests when empty)."""
    from kenning_hil.harness import Incompatible, RunRequest
    from kenning_hil.report.session import write_session_report
    from kenning_hil.suite import display_path, load_suite
    from kenning_hil.targets.catalog import DEFAULT_TARGET
    from kenning_hil.targets.target import Target

    if not settings.suites:
        raise ConfigurationError("no suite given (kenning-hil suite SUITE.yaml ...)")
    settings.prepare_report_dir()
    catalog = settings.catalog()
    for name in settings.targets:
        catalog.get(name)  # unknown names: an error before anything runs
    known = catalog.names()
    plan = []
    for path in settings.suites:
        suite = load_suite(path, search=[settings.rootdir, settings.models_path],
                           source=display_path(path, settings.rootdir))
        suite.check_targets(known)
        suite.check_blocks()
        for case in suite.cases:
            targets, skip = case.targets_for(settings.targets)
            for target_name in targets:
                tid = suite_test_id(path, settings.rootdir, case.test_name(target_name))
                if not select or any(s in tid for s in select):
                    plan.append((case, target_name, tid, skip))
    if not plan:
        raise ConfigurationError("no tests selected" + (
            f" (-k {' '.join(select)} matched none)" if select else ""))

    outcome = SuiteRunOutcome()
    harness = settings.harness(holder=f"kenning-hil suite pid {os.getpid()}")
    targets: dict[str, Target] = {}
    try:
        for case, target_name, tid, skip in plan:
            start = time.perf_counter()
            row = SummaryRow(tid, target_name, "skipped", reason=skip or "")
            if skip is None:
                if target_name not in targets:
                    targets[target_name] = Target(catalog.get(target_name))
                target = targets[target_name]
                available, why = target.availability()
                samples = capped_samples(case.samples, settings.samples)
                request = RunRequest(case.model_wrapper, case.dataset, case.optimizers, samples,
                                     case.model)
                if not available:
                    default = not settings.targets_given and target_name == DEFAULT_TARGET
                    row = SummaryRow(tid, target_name, "skipped" if default else "failed",
                                     reason=f"target '{target_name}' is not available here: {why}")
                else:
                    row = _run_one(harness, target, request, case, tid, echo,
                                   (Incompatible, MissingDependencyError))
            outcome.rows.append(row)
            verdict = row.outcome if not row.reason else f"{row.outcome}: {row.reason}"
            echo(f"{tid} {verdict} ({time.perf_counter() - start:.1f} s)")
    finally:
        harness.close()
        if outcome.rows:
            # whatever stopped the run, what was measured is reported
            outcome.report = write_session_report(outcome.rows, settings.report_dir)
    return outcome


def _run_one(harness, target, request, case, tid: str, echo: Callable[[str], None],
             skips: tuple[type, ...]) -> SummaryRow:
    """One test: run, judge; its summary row (failures and skips carry their reason)."""
    try:
        result = harness.run(target, request, tid)
    except skips as exc:
        return SummaryRow(tid, target.name, "skipped", reason=_one_line(exc))
    except KenningHILError as exc:
        return SummaryRow(tid, target.name, "failed", reason=_one_line(exc))
    properties = result_properties(result)
    try:
        verdict = harness.judge(result, case.thresholds, case.tolerances, tid,
                                where=f"{case.source}: thresholds")
    except KenningHILError as exc:
        return SummaryRow.from_properties(tid, "failed", properties, _one_line(exc))
    for note in verdict.notes:
        echo(f"{tid}: note: {note}")
    if verdict.failures:
        for failure in verdict.failures:
            echo(f"{tid}:   - {failure}")
        reason = f"{len(verdict.failures)} check(s) failed: {verdict.failures[0]}"
        return SummaryRow.from_properties(tid, "failed", properties, reason)
    return SummaryRow.from_properties(tid, "passed", properties)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

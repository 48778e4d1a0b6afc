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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kenning_hil.config.settings import HILSettings, capped_samples
from kenning_hil.core.errors import ConfigurationError, KenningHILError, MissingDependencyError
from kenning_hil.report.summary import SummaryRow, result_properties


@dataclass
class SuiteRunOutcome:
    rows: list[SummaryRow] = field(default_factory=list)
    report: Path | None = None
    baselines: list[str] = field(default_factory=list)  # each judged test's baseline status

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
    keyword: str | None = None,
    markexpr: str | None = None,
    echo: Callable[[str], None] = print,
) -> SuiteRunOutcome:
    """Runs the tests of `settings.suites` on the selected targets; `keyword` and `markexpr`
    select tests as pytest's -k and -m do."""
    from kenning_hil.report.session import write_session_report
    from kenning_hil.selection import Expression, keyword_selects, marks_select
    from kenning_hil.suites.loader import display_path, load_suite
    from kenning_hil.targets.gpu import gpu_visibility

    if not settings.suites:
        raise ConfigurationError("no suite given (kenning-hil suite SUITE.yaml ..., or "
                                 "hil_suite in the project's pytest configuration)")
    for expression, flag in ((keyword, "-k"), (markexpr, "-m")):
        if expression:
            Expression(expression, flag)  # a malformed expression: an error before running
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
            marks = {"hil", *case.marks}
            if skip is None and "gpu" in marks and not gpu_visibility().visible:
                skip = gpu_visibility().describe()
            for target_name in targets:
                tid = suite_test_id(path, settings.rootdir, case.test_name(target_name))
                if keyword and not keyword_selects(keyword, tid):
                    continue
                if markexpr and not marks_select(markexpr, marks):
                    continue
                plan.append((case, target_name, tid, skip))
    if not plan:
        raise ConfigurationError("no tests selected" + "".join(
            f" ({flag} {expression!r} matched none)"
            for expression, flag in ((keyword, "-k"), (markexpr, "-m")) if expression))
    settings.prepare_report_dir()

    outcome = SuiteRunOutcome()
    harness = settings.harness(holder=f"kenning-hil suite pid {os.getpid()}")
    try:
        for case, target_name, tid, skip in plan:
            start = time.perf_counter()
            if skip is not None:
                row = SummaryRow(tid, target_name, "skipped", reason=skip)
            else:
                row = _run_one(settings, catalog, harness, case, target_name, tid, echo,
                               outcome.baselines)
            outcome.rows.append(row)
            verdict = row.outcome if not row.reason else f"{row.outcome}: {row.reason}"
            echo(f"{tid} {verdict} ({time.perf_counter() - start:.1f} s)")
    finally:
        harness.close()
        if outcome.rows:
            # whatever stopped the run, what was measured is reported
            outcome.report = write_session_report(outcome.rows, settings.report_dir)
    return outcome


def _run_one(settings: HILSettings, catalog, harness, case, target_name: str, tid: str,
             echo: Callable[[str], None], baselines: list[str]) -> SummaryRow:
    """One test: run, judge; its summary row. As in pytest, a target that cannot be used is
    an error (a skip for the default target nobody asked for), an incompatible model or a
    missing framework a skip, a failed check or run a failure."""
    from kenning_hil.run.outcome import Incompatible, failure_message, failure_reason
    from kenning_hil.run.request import RunRequest
    from kenning_hil.targets.catalog import DEFAULT_TARGET
    from kenning_hil.targets.target import Target

    target = Target(catalog.get(target_name))
    available, why = target.availability()
    if not available:
        default = not settings.targets_given and target_name == DEFAULT_TARGET
        return SummaryRow(tid, target_name, "skipped" if default else "error",
                          reason=f"target '{target_name}' is not available here: {why}")
    request = RunRequest(case.model_wrapper, case.dataset, case.optimizers,
                         capped_samples(case.samples, settings.samples), case.model)
    try:
        result = harness.run(target, request, tid)
    except (Incompatible, MissingDependencyError) as exc:
        return SummaryRow(tid, target_name, "skipped", reason=_one_line(exc))
    except KenningHILError as exc:
        return SummaryRow(tid, target_name, "failed", reason=_one_line(exc))
    properties = result_properties(result)
    try:
        verdict = harness.judge(result, case.thresholds, case.tolerances, tid,
                                where=f"{case.source}: thresholds")
    except KenningHILError as exc:  # e.g. an unwritable baseline: the results are written
        return SummaryRow.from_properties(tid, "failed", properties, _one_line(exc))
    if verdict.baseline_status:
        baselines.append(verdict.baseline_status)
    for note in verdict.notes:
        echo(f"{tid}: note: {note}")
    if verdict.failures:
        message = failure_message(result, verdict.failures)
        echo(message)
        return SummaryRow.from_properties(tid, "failed", properties, failure_reason(message))
    return SummaryRow.from_properties(tid, "passed", properties)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())

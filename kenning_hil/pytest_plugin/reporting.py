"""Reporting: test properties, pytest-html extras, the terminal table, the session report."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest

from kenning_hil.core.errors import os_reason
from kenning_hil.pytest_plugin.collect import SuiteItem
from kenning_hil.pytest_plugin.infrastructure import INFRASTRUCTURE, RETRIED, retry_errors
from kenning_hil.pytest_plugin.parametrize import _uses_our_target
from kenning_hil.pytest_plugin.state import (
    BASELINE_PROPERTY,
    HIL_ITEMS_OUTPUT,
    OPTIONS_KEY,
    RESULT_KEY,
    _record_target,
)


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
    from kenning_hil.run.outcome import failure_reason

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
        self.started = time.time()  # result files written since belong to this session

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()

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
        reason = _reason(report)
        if report.failed and getattr(report, INFRASTRUCTURE, None):
            outcome = "error"  # a broken board, not a failed check (infrastructure.py)
        if getattr(report, RETRIED, 0):
            reason = "; ".join(filter(None, [
                f"retried {getattr(report, RETRIED)}x after " + " | ".join(retry_errors(report)),
                reason]))
        self.baselines += [v for k, v in report.user_properties if k == BASELINE_PROPERTY]
        row = SummaryRow.from_properties(report.nodeid, outcome, report.user_properties, reason)
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

    def _add_footprints(self) -> None:
        """Rows get their footprint (arena peak, RAM, code, bit-exact: report/footprint.py)
        from their result files and the targets' memory, once all have reported."""
        from kenning_hil.core.errors import KenningHILError
        from kenning_hil.pytest_plugin.state import _catalog
        from kenning_hil.report.footprint import footprint_of_file

        memory: dict[str, tuple] = {}
        for row in self.rows:
            if not row.results or row.arena_peak is not None or row.bit_exact is not None:
                continue
            if row.target not in memory:
                try:
                    description = _catalog(self.config).get(row.target)
                    memory[row.target] = (description.ram, description.flash)
                except KenningHILError:
                    memory[row.target] = (None, None)
            found = footprint_of_file(row.results, *memory[row.target])
            if found is not None:
                row.add_footprint(found)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.rows:
            return
        from kenning_hil.report.summary import format_table

        self._add_footprints()
        terminalreporter.write_sep("=", "kenning-hil results")
        # by test id, not by finishing order (which -n 2 shuffles)
        for line in format_table(sorted(self.rows, key=lambda r: r.test)).splitlines():
            terminalreporter.write_line(line)
        options = self.config.stash[OPTIONS_KEY]
        terminalreporter.write_line(
            f"results: {options.report_dir} (report.md, report.rst, report.html, figures/, "
            "tests/*.json)")
        from kenning_hil.run.outcome import baseline_summary

        line = baseline_summary(self.baselines, options.baseline_dir)
        if line:
            terminalreporter.write_line(line)

    # last: under xdist, the workers are shut down (and have written what an interruption
    # left them to write) before the rows are read from their result files
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            # Ctrl-C: the test that was running reported nothing (nor, under xdist, tests
            # whose report was still on its way), but its result file says what it measured
            from kenning_hil.report.summary import unreported_rows

            self.rows += unreported_rows(self.config.stash[OPTIONS_KEY].report_dir,
                                         self.started, [r.test for r in self.rows])
        self._add_footprints()
        # combinations left out at collection are listed in the report with their reason
        from kenning_hil.pytest_plugin.collect import not_applicable_rows

        rows = [*self.rows, *not_applicable_rows(self.config)]
        # a run with HIL tests rewrites the report even when none of them reported (stopped
        # early): the previous run's report.md must not pass for this one's
        if not self.rows and (not (rows or self.has_hil_items)
                              or self.config.option.collectonly):
            return
        if session.exitstatus == pytest.ExitCode.USAGE_ERROR:
            # e.g. a malformed -k, found after collection: nothing ran, so the last run's
            # report stands (pytest calls collection_finish even then)
            return
        from kenning_hil.report.session import write_session_report

        try:
            write_session_report(sorted(rows, key=lambda r: r.test),
                                 self.config.stash[OPTIONS_KEY].report_dir)
        except OSError as exc:
            warnings.warn(f"kenning-hil: cannot write the session report: {os_reason(exc)}",
                          stacklevel=1)


def pytest_collection_finish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the report
        workeroutput[HIL_ITEMS_OUTPUT] = any(_is_hil_item(item) for item in session.items)

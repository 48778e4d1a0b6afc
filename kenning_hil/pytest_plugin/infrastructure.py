"""Infrastructure errors as pytest errors, and their opt-in bounded retry.

A board that did not boot, a lost connection, a dead emulator, a lock timeout or a failed
flash (`kenning_hil.run.outcome.INFRASTRUCTURE_CATEGORIES`) says nothing about the model: the
test is reported as an error (E), not a failure (F), with its category in the report's
``hil_infrastructure`` attribute and property (JUnit XML: an ``<error>`` element), the results
table and the results JSON.

With ``--hil-retries N`` (ini ``hil_retries``) such a test is run again, up to N times; the
session that failed was closed (`targets/sessions.py`), so the next attempt gets a fresh board
(new QEMU or server, reconnect, flash as the target says). A failed check is never retried.
A test that needed a retry is never passed silently: verbose ``PASSED (retried)``, JUnit
properties ``hil_retried`` (reruns) and ``hil_retry_errors`` (what each attempt hit), the
table's reason column, a terminal summary line, and ``retried`` in the results JSON.
"""

from __future__ import annotations

import pytest

from kenning_hil.pytest_plugin.state import (
    OPTIONS_KEY,
    RESULT_KEY,
    hil_state,
)

INFRASTRUCTURE = "hil_infrastructure"  # report attribute and property: the category
RETRIED = "hil_retried"  # report attribute and property: reruns the test needed
RETRY_ERRORS = "hil_retry_errors"  # report attribute and property: what the reruns were for


def _category(call: pytest.CallInfo) -> str | None:
    if call.excinfo is None:
        return None
    from kenning_hil.run.outcome import infrastructure_category

    # our Failed (state.infrastructure_failure), or a library error raised in a test body as
    # is (e.g. through the `protocol` fixture)
    return infrastructure_category(call.excinfo.value)


def _set_property(properties: list, name: str, value) -> None:
    properties[:] = [(k, v) for k, v in properties if k != name]
    if value is not None:
        properties.append((name, value))


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return text.removeprefix("Failed: ").strip().splitlines()[0] if text.strip() else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed:
        category = _category(call)
        if category is not None:
            setattr(report, INFRASTRUCTURE, category)
            # the item's too: JUnit XML takes a test's properties from its teardown report
            for properties in (report.user_properties, item.user_properties):
                _set_property(properties, INFRASTRUCTURE, category)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if report.failed and getattr(report, INFRASTRUCTURE, None):
        return "error", "E", "ERROR"
    if report.when == "call" and report.passed and getattr(report, RETRIED, 0):
        return "passed", ".", ("PASSED (retried)", {"yellow": True})
    return None


def retry_errors(report: pytest.TestReport) -> list[str]:
    """What the earlier attempts of a retried test hit, "category: message" each."""
    return list(getattr(report, RETRY_ERRORS, None) or [])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    retries = item.config.stash[OPTIONS_KEY].retries
    if retries <= 0:
        return None  # pytest's own protocol
    # pytest's own setup/call/teardown of one item, without logging its reports; pytest
    # supports running it again on the same item (it re-creates the fixture request)
    from _pytest.runner import runtestprotocol

    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    earlier: list[dict[str, str]] = []
    harness = None
    try:
        for attempt in range(retries + 1):
            # teardown included: the failed attempt's fixtures (and session) are gone
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            broken = next((r for r in reports if r.failed and getattr(r, INFRASTRUCTURE, None)),
                          None)
            if broken is None or attempt == retries:
                break
            category = getattr(broken, INFRASTRUCTURE)
            message = _message(broken).removeprefix(f"infrastructure error ({category}): ")
            earlier.append({"category": category, "error": message})
            _set_property(item.user_properties, INFRASTRUCTURE, None)  # the rerun's own
            if RESULT_KEY in item.stash:
                del item.stash[RESULT_KEY]  # the rerun's results replace the failed attempt's
            harness = hil_state(item.config).harness
            harness.retry = {"attempt": attempt + 2, "earlier": earlier}
    finally:
        if harness is not None:
            harness.retry = None
    if earlier:
        errors = [f"{e['category']}: {e['error']}" for e in earlier]
        for report in reports:
            setattr(report, RETRIED, len(earlier))
            setattr(report, RETRY_ERRORS, errors)
            _set_property(report.user_properties, RETRIED, len(earlier))
            _set_property(report.user_properties, RETRY_ERRORS, " | ".join(errors))
            if report.when == "call" or report.failed:
                report.sections.append(("kenning-hil retries", "\n".join(
                    f"attempt {i + 1}: {e}" for i, e in enumerate(errors))))
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


class InfrastructureReporter:
    """Controller side: JUnit XML gets an <error> (not a <failure>) for an infrastructure
    error in a test's body, and the terminal a line per test that needed a retry."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.retried: list[tuple[str, int, list[str], str]] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport):
        result = yield
        if report.when == "call" and report.failed and getattr(report, INFRASTRUCTURE, None):
            self._junit_error(report)
        if report.when == "call" and getattr(report, RETRIED, 0):
            self.retried.append((report.nodeid, getattr(report, RETRIED), retry_errors(report),
                                 report.outcome))
        return result

    def _junit_error(self, report: pytest.TestReport) -> None:
        """JUnit XML writes a failure in a test's body as <failure>; pytest has no public way
        to say otherwise, so the element junitxml just added is retagged (its message stays).
        Should junitxml's internals change, the test stays a <failure> carrying the
        hil_infrastructure property."""
        try:
            from _pytest.junitxml import xml_key

            xml = self.config.stash.get(xml_key, None)
            if xml is None:
                return
            nodes = xml.node_reporter(report).nodes
            for node in reversed(nodes):
                if node.tag == "failure":
                    node.tag = "error"
                    xml.stats["failure"] -= 1
                    xml.stats["error"] += 1
                    break
        except (ImportError, AttributeError, KeyError):
            pass

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.retried:
            return
        terminalreporter.write_sep("-", "kenning-hil: tests rerun after infrastructure errors")
        for nodeid, count, errors, outcome in sorted(self.retried):
            terminalreporter.write_line(
                f"{nodeid}: {outcome} after {count} rerun(s); earlier: {' | '.join(errors)}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(InfrastructureReporter(config), "kenning-hil-infrastructure")

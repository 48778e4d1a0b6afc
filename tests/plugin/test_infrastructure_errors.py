"""Infrastructure errors (#16 finding 9): a target server killed mid-test is a pytest error
(E) with its category in the results JSON, the JUnit XML and the table, not a failure; with
--hil-retries 1 the test reruns on a fresh server and passes, marked retried everywhere. A
failed check stays a failure and is never rerun."""

import json
import xml.etree.ElementTree as ET

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.protocol import (
    ConnectionLostError,
    ProtocolError,
    RequestDeniedError,
    RequestTimeoutError,
)
from kenning_hil.protocols.transport import TransportClosedError
from kenning_hil.run.outcome import infrastructure_category
from kenning_hil.targets.errors import BoardBusyError, TargetError
from tests.plugin.conftest import DIGITS, run

pytest_plugins = ["pytester"]

TESTS = f"""
import pathlib

HERE = pathlib.Path(__file__).parent


def count(name):
    path = HERE / f"{{name}}.runs"
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    return runs


def test_server_killed(hil, target_session):
    if count("killed") == 1:  # the first attempt loses its server before the run
        target_session.handle.kill()
        target_session.handle.wait()
    hil.run(model="{DIGITS}", dataset="digits", samples=3)


def test_check_fails(hil):
    count("check")
    hil.run(model="{DIGITS}", dataset="digits", samples=3, thresholds={{"accuracy": 1.01}})
"""


def _case(project, name: str) -> ET.Element:
    return ET.parse(project.path / "junit.xml").find(f".//testcase[@name='{name}']")


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


def _result(project, name: str) -> dict:
    path = project.path / "results" / "tests"
    (found,) = [p for p in path.glob(f"*{name}*.json") if "measurements" not in p.name]
    return json.loads(found.read_text())


def test_killed_server_is_an_error_and_a_retry_passes_marked(hil_project):
    hil_project.makepyfile(test_infra=TESTS)
    result = run(hil_project, "--target=host-onnxruntime", "--junitxml=junit.xml", "-rA")
    result.assert_outcomes(errors=1, failed=1)
    out = result.stdout.str()
    assert "ERROR test_infra.py::test_server_killed" in out
    assert "infrastructure error (connection)" in out
    case = _case(hil_project, "test_server_killed[host-onnxruntime]")
    assert case.find("error") is not None and case.find("failure") is None
    assert _properties(case)["hil_infrastructure"] == "connection"
    assert _case(hil_project, "test_check_fails[host-onnxruntime]").find("failure") is not None
    record = _result(hil_project, "test_server_killed")
    assert record["infrastructure"] == "connection" and "connection lost" in record["error"]
    assert "error: infrastructure error (connection)" in out  # the results table's row

    (hil_project.path / "killed.runs").unlink()
    (hil_project.path / "check.runs").unlink()
    result = run(hil_project, "--target=host-onnxruntime", "--junitxml=junit.xml", "-v",
                 "--hil-retries=1")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "test_server_killed[host-onnxruntime] PASSED (retried)" in out
    assert "tests rerun after infrastructure errors" in out
    assert "passed: retried 1x after connection:" in out  # the results table's row
    properties = _properties(_case(hil_project, "test_server_killed[host-onnxruntime]"))
    assert properties["hil_retried"] == "1"
    assert properties["hil_retry_errors"].startswith("connection: target tcp://127.0.0.1:")
    record = _result(hil_project, "test_server_killed")
    assert record["retried"]["attempt"] == 2
    assert record["retried"]["earlier"][0]["category"] == "connection"
    assert "infrastructure" not in record and record["samples"] == 3
    assert (hil_project.path / "killed.runs").read_text() == "2"
    assert (hil_project.path / "check.runs").read_text() == "1"  # a failed check: no rerun


def _chain(*errors: BaseException) -> BaseException:
    """errors[0] raised from errors[1] raised from ..."""
    for outer, inner in zip(errors, errors[1:]):
        outer.__cause__ = inner
    return errors[0]


def test_categories_name_the_cause_not_the_symptom():
    died = TransportClosedError("closed; QEMU exited with code -9")
    died.infrastructure = "emulator"
    assert infrastructure_category(
        _chain(ConnectionLostError("connection lost"), died, TransportClosedError("eof"))
    ) == "emulator"
    assert infrastructure_category(TargetError("QEMU did not start")) == "boot"
    assert infrastructure_category(TargetError("flash command failed", "flash")) == "flash"
    assert infrastructure_category(BoardBusyError("no free instance")) == "lock"
    assert infrastructure_category(RequestTimeoutError("no answer")) == "timeout"
    # the board is fine, the model or the firmware under test is not: not infrastructure
    assert infrastructure_category(TargetError("firmware does not build", "")) is None
    assert infrastructure_category(RequestDeniedError("model refused")) is None
    assert infrastructure_category(ProtocolError("malformed answer")) is None
    assert infrastructure_category(ValueError("bug")) is None


@pytest.mark.parametrize("value", ["-1", "two"])
def test_bad_retry_counts_are_usage_errors(value, tmp_path):
    from kenning_hil.config.settings import HILSettings

    with pytest.raises(ConfigurationError, match="--hil-retries / hil_retries"):
        HILSettings.resolve(tmp_path, {"hil_retries": value})
    assert HILSettings.resolve(tmp_path, {}, {"hil_retries": "2"}).retries == 2

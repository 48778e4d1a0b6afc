"""Every HIL test gets a row in the terminal table and the session report, also one that skips
or errors before its `target` fixture ran (an unavailable board, a pin to a target not
selected, a gpu marker, a suite's pin); a run with HIL tests that reports none still rewrites
the report. Real pytest processes, real `kenning-hil serve` host targets, real serial ports
that are not there."""

import json
import os
import re

import pytest

from kenning_hil.report.session import rst_escape
from tests.plugin.conftest import run, write_target
from tests.plugin.test_gpu_marker import fake_nvidia_smi

pytest_plugins = ["pytester"]

HIL_TESTS = """
import pytest

def test_runs(hil):
    hil.run(model="models/digits/digits-mlp.onnx", dataset="digits", samples=20)

@pytest.mark.gpu
def test_on_gpu(target):
    pass

@pytest.mark.target("spare-board")
def test_pinned(target):
    pass

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown(target, broken_teardown):
    pass

def test_plain():
    pass
"""

SUITE = """
models:
  digits: {model: models/digits/digits-mlp.onnx, dataset: digits, samples: 20}
  board-only:
    model: models/digits/digits-mlp.onnx
    dataset: digits
    targets: [spare-board]
"""

GONE = "target 'gone-serial' is not available here: "
NO_GPU = "no GPU visible (nvidia-smi lists none)"
PINNED = "pinned to target spare-board, not selected (run with --target spare-board)"

# test id -> (target, outcome, start of the reason)
EXPECTED = {
    "test_hil.py::test_runs[host-onnxruntime]": ("host-onnxruntime", "passed", ""),
    "test_hil.py::test_runs[gone-serial]": ("gone-serial", "error", GONE),
    "test_hil.py::test_on_gpu[host-onnxruntime]": ("host-onnxruntime", "skipped", NO_GPU),
    "test_hil.py::test_on_gpu[gone-serial]": ("gone-serial", "skipped", NO_GPU),
    "test_hil.py::test_pinned[spare-board]": ("spare-board", "skipped", PINNED),
    "test_hil.py::test_teardown[host-onnxruntime]":
        ("host-onnxruntime", "error", "at teardown: RuntimeError: teardown broke"),
    "test_hil.py::test_teardown[gone-serial]": ("gone-serial", "error", GONE),
    "suites/d.yaml::digits-none[host-onnxruntime]": ("host-onnxruntime", "passed", ""),
    "suites/d.yaml::digits-none[gone-serial]": ("gone-serial", "error", GONE),  # at setup
    "suites/d.yaml::board-only-none[spare-board]":
        ("spare-board", "skipped", "suite pins target spare-board, not selected"),
}


@pytest.fixture
def without_gpus(monkeypatch, tmp_path):
    """An nvidia-smi listing none first on PATH: gpu tests skip on any machine."""
    monkeypatch.setenv("PATH", f"{fake_nvidia_smi(tmp_path / 'bin', 'exit 0')}{os.pathsep}"
                               f"{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def rows_project(project, tmp_path):
    write_target(project, "gone-serial", f"kind: serial\nport: {tmp_path / 'no-such-tty'}\n"
                                         "protocol: {type: uart}\nruntime: firmware-int8\n")
    write_target(project, "spare-board", "kind: host\nruntime: onnxruntime\n")
    project.makepyfile(test_hil=HIL_TESTS)
    (project.path / "suites").mkdir()
    (project.path / "suites" / "d.yaml").write_text(SUITE)


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["n0", "n2"])
def test_tests_that_stop_before_their_target_runs_get_rows(hil_project, tmp_path, without_gpus,
                                                           workers):
    rows_project(hil_project, tmp_path)
    result = run(hil_project, *workers, "test_hil.py", "suites/d.yaml",
                 "--target=host-onnxruntime", "--target=gone-serial")
    # test_teardown[host-onnxruntime] counts as passed and as an error (at teardown)
    result.assert_outcomes(passed=4, skipped=4, errors=4)
    summary = json.loads((hil_project.path / "results" / "summary.json").read_text())
    got = {row["test"]: (row["target"], row["outcome"], row["reason"]) for row in summary}
    assert got.keys() == EXPECTED.keys()  # every HIL test, not test_plain
    for test, (target, outcome, reason) in EXPECTED.items():
        assert got[test][:2] == (target, outcome), test
        assert got[test][2].startswith(reason), (test, got[test][2])
    # the terminal table: a row per HIL test with its verdict
    table = result.stdout.str().split("kenning-hil results")[1]
    for test, (target, outcome, _) in EXPECTED.items():
        name = test.split("::")[1]
        assert re.search(rf"{re.escape(name)}\s+{target}\s.*{outcome}", table), test
    report = (hil_project.path / "results" / "report.md").read_text()
    assert "## gone-serial" in report and "## spare-board" in report
    assert f"error: {GONE}" in report and f"skipped: {NO_GPU}" in report
    rst = (hil_project.path / "results" / "report.rst").read_text()
    assert rst_escape("test_hil.py::test_pinned[spare-board]") in rst


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "1"]], ids=["n0", "n1"])
def test_a_run_with_hil_tests_but_no_rows_rewrites_the_report(hil_project, workers):
    """The previous run's report must not pass for this one's (here: -x stops the run at a
    plain test's failure, before the HIL test); --collect-only leaves it alone."""
    hil_project.makepyfile(test_board="def test_board(target):\n    pass\n")
    report = hil_project.path / "results" / "report.md"
    run(hil_project, *workers).assert_outcomes(passed=1)
    assert "test_board[host-onnxruntime]" in report.read_text()

    collect_only = run(hil_project, *workers, "--collect-only")
    assert collect_only.ret == pytest.ExitCode.OK
    assert "test_board[host-onnxruntime]" in report.read_text()

    hil_project.makepyfile(test_a_first="def test_fails():\n    assert False\n")
    stopped = run(hil_project, *workers, "-x")
    stopped.assert_outcomes(failed=1)  # the HIL test did not run
    assert "test_board" not in report.read_text()
    assert json.loads((hil_project.path / "results" / "summary.json").read_text()) == []

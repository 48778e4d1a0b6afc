"""An unwritable baseline or results directory is a one-line user error naming the path, not
a traceback; results measured before a baseline write fails are kept (real pytest runs)."""

import json

from tests.plugin.conftest import run

pytest_plugins = ["pytester"]

DIGITS = """
def test_digits(hil):
    hil.run(model="models/digits/digits-mlp.onnx", dataset="digits", samples=15)
"""


def test_unwritable_baseline_fails_in_one_line_and_keeps_results(hil_project):
    hil_project.makepyfile(test_w=DIGITS)
    result = run(hil_project, "--baseline=/proc/nope", "--update-baseline")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "Traceback" not in out and "FileNotFoundError" not in out, out
    result.stdout.re_match_lines([
        r"E?\s*cannot write the baseline \(--baseline /proc/nope\) to /proc/nope/"
        r"test_w\.py__test_digits\[host-onnxruntime\]\.json: No such file or directory: "
        r"/proc/nope.*",
    ])
    (saved,) = (hil_project.path / "results" / "tests").glob("*.json")
    record = json.loads(saved.read_text())
    assert record["test"] == "test_w.py::test_digits[host-onnxruntime]"
    assert record["samples"] == 15 and record["metrics"]["accuracy"] > 0.9


def test_unwritable_results_directory_fails_in_one_line(hil_project):
    hil_project.makepyfile(test_w=DIGITS)
    # the report directory exists, but where its tests/ should be there is a file
    blocker = hil_project.path / "results" / "tests"
    blocker.parent.mkdir()
    blocker.write_text("a file where the per-test results directory should be")
    result = run(hil_project)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "Traceback" not in out and "NotADirectoryError" not in out, out
    result.stdout.re_match_lines([
        rf"E?\s*cannot write the results of test_w\.py::test_digits\[host-onnxruntime\] to "
        rf"{blocker}/test_w\.py__test_digits\[host-onnxruntime\]\.json: File exists: {blocker}",
    ])

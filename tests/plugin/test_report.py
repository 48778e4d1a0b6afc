"""Report artifacts: the summary table and Markdown report from rows, and pytest-html extras
from a real run."""

import base64
import re

from kenning_hil.report.summary import SummaryRow, format_table, load_rows, write_session_report
from tests.plugin.conftest import REPO, run

pytest_plugins = ["pytester"]

ROWS = [
    SummaryRow("tests/test_a.py::test_acc[host]", "host", "passed", 0.97, 31e-6, 45e-6,
               "target_inference_step", 19770, "", "/tmp/r/tests/a.json"),
    SummaryRow("suites/s.yaml::kws-int8[qemu-m4]", "qemu-m4", "failed", 0.81, 0.120, 0.131,
               "target_inference_step", 53000, "accuracy = 0.81 is below the threshold 0.9"),
    SummaryRow("suites/s.yaml::kws-int8[tiny]", "tiny", "skipped",
               reason="model of 53000 B is larger than target 'tiny' RAM (1024 B)"),
]


def test_row_from_properties():
    row = SummaryRow.from_properties(
        "t::x", "passed",
        [("target", "host"), ("accuracy", 0.5), ("latency_p50", "0.001"), ("other", 1),
         ("compiled_size", 10)],
    )
    assert (row.target, row.accuracy, row.latency_p50, row.compiled_size) == ("host", 0.5,
                                                                                0.001, 10)
    assert SummaryRow.from_properties("t::y", "passed", [("accuracy", 1.0)]) is None


def test_table():
    lines = format_table(ROWS).splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["test", "target", "accuracy", "p50", "p95", "size",
                                             "result"]
    assert re.split(r"\s{2,}", lines[1]) == [
        "tests/test_a.py::test_acc[host]", "host", "0.9700", "31.0 µs", "45.0 µs", "19770 B",
        "passed"]
    assert re.split(r"\s{2,}", lines[2])[3:] == [
        "120.000 ms", "131.000 ms", "53000 B", "failed: accuracy = 0.81 is below the threshold 0.9"]
    assert re.split(r"\s{2,}", lines[3])[2:] == [
        "-", "-", "-", "-", "skipped: model of 53000 B is larger than target 'tiny' RAM (1024 B)"]


def test_markdown_report(tmp_path):
    path = write_session_report(ROWS, tmp_path)
    text = path.read_text()
    assert text.startswith("# kenning-hil report")
    assert "1 failed, 1 passed, 1 skipped" in text
    assert "## qemu-m4" in text and "## host" in text
    assert ("| 0.8100 | 120.000 ms | 131.000 ms | target_inference_step | 53000 B | failed: "
            "accuracy = 0.81 is below the threshold 0.9 |") in text
    assert "[tests/test_a.py::test_acc[host]](/tmp/r/tests/a.json)" in text
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")
    assert "![Latency per test" in text
    assert load_rows(tmp_path / "summary.json") == ROWS


def test_pytest_html_extras(hil_project):
    (hil_project.path / "test_acc.py").write_text(
        (REPO / "examples" / "test_digits_accuracy.py").read_text())
    result = run(hil_project, "--html=report.html", "--self-contained-html")
    result.assert_outcomes(passed=1)
    html = (hil_project.path / "report.html").read_text()
    assert "kenning-hil-result" in html and "latency from" in html
    assert "target_inference_step" in html
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert images and base64.b64decode(images[0]).startswith(b"\x89PNG")

"""Report artifacts: the summary table and the Markdown and RST session reports from rows,
`kenning-hil report` rendering them again, and pytest-html extras from a real run."""

import base64
import re

import pytest

from kenning_hil.cli import main
from kenning_hil.report.session import rst_escape, write_session_report
from kenning_hil.report.summary import SummaryRow, format_table, load_rows
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
        [("target", "host"), ("accuracy", 0.5), ("latency_p50_s", "0.001"), ("other", 1),
         ("compiled_size", 10)],
    )
    assert (row.target, row.accuracy, row.latency_p50, row.compiled_size) == ("host", 0.5,
                                                                                0.001, 10)
    counted = SummaryRow.from_properties(
        "t::q", "passed", [("target", "qemu-m4"), ("latency_unit", "instructions"),
                           ("instructions_p50", 7.5e6), ("instructions_p95", "7.6e6")])
    assert (counted.latency_p50, counted.latency_p95, counted.latency_unit) == (
        7.5e6, 7.6e6, "instructions")


def test_latency_property_names_carry_their_unit():
    """A JUnit property holds one unit whatever the target (issue 25, #4): seconds on a host
    target and instructions on a simulated one go by different names."""
    from kenning_hil.report.summary import PROPERTY_NAMES, latency_property_names

    assert latency_property_names("s") == ("latency_p50_s", "latency_p95_s")
    assert latency_property_names("instructions") == ("instructions_p50", "instructions_p95")
    assert latency_property_names("cycles") == ("cycles_p50", "cycles_p95")
    assert "latency_p50" not in PROPERTY_NAMES and "instructions_p95" in PROPERTY_NAMES
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
    assert (tmp_path / "figures" / "latency-overview.png").read_bytes().startswith(b"\x89PNG")
    assert "![Latency per test" in text
    assert load_rows(tmp_path / "summary.json") == ROWS


def rst_to_doctree(text: str):
    """Parses RST with docutils, failing on any warning (a broken table, a stray markup)."""
    docutils_core = pytest.importorskip("docutils.core", reason="docutils (dev extra) missing")
    return docutils_core.publish_doctree(
        text, settings_overrides={"halt_level": 2, "report_level": 2, "warning_stream": False})


def test_rst_report_is_valid_rst_with_tables_links_and_the_figure(tmp_path):
    write_session_report(ROWS, tmp_path)
    text = (tmp_path / "report.rst").read_text()
    tree = rst_to_doctree(text)
    assert tree.astext().startswith("kenning-hil report")
    tables = list(tree.findall(lambda n: n.tagname == "table"))
    assert len(tables) == 3  # one per target
    cells = [entry.astext() for entry in tree.findall(lambda n: n.tagname == "entry")]
    # test ids, units and reasons come through unmangled by RST markup
    assert "suites/s.yaml::kws-int8[qemu-m4]" in cells
    assert "failed: accuracy = 0.81 is below the threshold 0.9" in cells
    assert "120.000 ms" in cells and "-" in cells
    links = [(n.astext(), n["refuri"]) for n in tree.findall(lambda n: n.tagname == "reference")]
    assert links == [("tests/test_a.py::test_acc[host]", "/tmp/r/tests/a.json")]
    figures = [n["uri"] for n in tree.findall(lambda n: n.tagname == "image")]
    assert figures == ["figures/latency-overview.png"]


@pytest.mark.parametrize("text", ["a_b_ *x* `y` |z| [1]_", "- starts a list", "1. item",
                                  "#3", "back\\slash", "<not a link>"])
def test_rst_escape_keeps_text_literal(text):
    tree = rst_to_doctree(f".. list-table::\n\n   * - {rst_escape(text)}\n")
    assert [e.astext() for e in tree.findall(lambda n: n.tagname == "entry")] == [text]


def test_report_command_renders_again_from_summary_json(tmp_path, capsys):
    write_session_report(ROWS, tmp_path)
    (tmp_path / "report.md").unlink()
    (tmp_path / "report.rst").unlink()
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "suites/s.yaml::kws-int8[qemu-m4]" in out and "report.md" in out
    assert "## qemu-m4" in (tmp_path / "report.md").read_text()
    rst_to_doctree((tmp_path / "report.rst").read_text())


def test_report_command_names_a_missing_or_broken_summary(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path / 'summary.json'}: no such file" in capsys.readouterr().err
    # a broken summary: the report is written and says what it could not read
    (tmp_path / "summary.json").write_text('[{"nope": 1}]')
    assert main(["report", str(tmp_path)]) == 0
    assert "summary.json: unreadable, outcomes unknown" in (tmp_path / "report.md").read_text()


def test_report_command_finds_the_projects_report_dir_from_a_subdirectory(tmp_path, monkeypatch,
                                                                         capsys):
    """Without a directory: the project's hil_report as pytest resolves it (the rootdir and
    its ini found upwards from where the command runs)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nhil_report = out/hil\n")
    report_dir = tmp_path / "out" / "hil"
    write_session_report(ROWS, report_dir)
    (report_dir / "report.md").unlink()
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "docs" / "deep")
    assert main(["report"]) == 0
    assert f"report: {report_dir / 'report.md'}" in capsys.readouterr().out
    assert "## qemu-m4" in (report_dir / "report.md").read_text()
    assert not (tmp_path / "docs" / "deep" / "results").exists()


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
    # the row's figures are the session report's own files, drawn once
    report = hil_project.path / "results"
    latency = next((report / "figures").glob("*-latency.png"))
    assert base64.b64encode(latency.read_bytes()).decode() in images
    assert f"figures/{latency.name}".replace("[", "%5B").replace("]", "%5D") in (
        report / "report.md").read_text()
    assert (report / "report.html").is_file() and (report / "environment.json").is_file()


def test_an_empty_run_says_so_and_drops_the_old_figure(tmp_path):
    write_session_report(ROWS, tmp_path)
    assert (tmp_path / "figures" / "latency-overview.png").is_file()
    write_session_report([], tmp_path)
    assert "no HIL test ran" in (tmp_path / "report.md").read_text()
    assert "no HIL test ran" in (tmp_path / "report.rst").read_text()
    assert not (tmp_path / "figures" / "latency-overview.png").exists()

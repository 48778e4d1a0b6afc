"""The report of results directories: formats that parse (docutils without warnings,
markdown-it), every image it references on disk, deterministic PNGs, units kept apart,
merged shards without duplicate rows, trends over a history, and broken result files named
in the report instead of a traceback.

The results directories are written here in the harness's file format (`tests/*.json`,
`summary.json`); `tests/plugin/test_report.py` renders the report of a real pytest run."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.cli import main
from kenning_hil.report.session import render_report
from kenning_hil.report.summary import SummaryRow
from tests.report.chromium import find_chromium, open_page

docutils_core = pytest.importorskip("docutils.core", reason="docutils (dev extra) missing")
markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py (report extra) missing")
pytest.importorskip("matplotlib", reason="matplotlib (report extra) missing")


def result_record(test: str, target: str, unit: str = "s", samples: int = 200,
                  scale: float = 1.0, accuracy: float | None = 0.95, seed: int = 0) -> dict:
    """A result file as `Harness.write` writes it (measurements in their stored units: ns,
    or counted instructions)."""
    rng = np.random.default_rng(seed)
    measurements: dict = {
        "protocol_inference_step": [int(v) for v in rng.normal(300e3, 20e3, samples) * scale],
        "protocol_inference_step_timestamp": list(range(samples)),
    }
    if unit == "s":
        measurements["target_inference_step"] = [
            int(v) for v in np.abs(rng.normal(40e3, 5e3, samples)) * scale]
        measurements["session_utilization_timestamp"] = [int(i * 1e8) for i in range(5)]
        measurements["session_utilization_cpus_percent"] = [[50.0, 20.0]] * 5
        measurements["session_utilization_mem_percent"] = [30.0] * 5
    else:
        measurements["target_inference_instructions"] = [
            int(v) for v in 18000 + rng.integers(0, 300, samples) * scale]
        measurements["peak_allocated"] = [22136]
        measurements["arena_size"] = [3616080]
    metrics = {}
    if accuracy is not None:
        matrix = [[18, 2], [1, 19]]
        measurements["eval_confusion_matrix"] = [matrix]
        measurements["class_names"] = ["cat", "dog"]
        metrics = {"accuracy": accuracy, "mean_precision": 0.9, "mean_recall": 0.91}
    return {"test": test, "target": target, "model": "digits",
            "optimizers": [{"type": "tflite"}], "samples": samples, "metrics": metrics,
            "compiled_size": 8480, "ram": None, "started": 1.8e9 + seed, "finished": 1.8e9 + seed,
            "checks": [{"kind": "threshold", "metric": "accuracy", "bound": ">= 0.9",
                        "value": accuracy, "margin": (accuracy or 0) - 0.9, "passed": True}],
            "measurements": measurements}


def write_results(directory: Path, records: list[dict], outcome: str = "passed") -> Path:
    """A results directory as a pytest session leaves it: tests/*.json and summary.json."""
    tests = directory / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        path = tests / (re.sub(r"[^\w.\[\]-]", "_", record["test"]) + ".json")
        path.write_text(json.dumps(record))
        rows.append(SummaryRow(record["test"], record["target"], outcome,
                               results=str(path)).__dict__)
    (directory / "summary.json").write_text(json.dumps(rows))
    return directory


THREE_TARGETS = [
    ("suite.yaml::digits-int8[host-litert]", "host-litert", "s", 1.0),
    ("suite.yaml::digits-fp32[host-onnxruntime]", "host-onnxruntime", "s", 1.6),
    ("suite.yaml::digits-int8[qemu-m4]", "qemu-m4", "instructions", 1.0),
]


@pytest.fixture
def three_targets(tmp_path) -> Path:
    return write_results(tmp_path / "results", [
        result_record(test, target, unit, scale=scale, seed=i)
        for i, (test, target, unit, scale) in enumerate(THREE_TARGETS)])


def rst_tree(text: str):
    """Parses RST with docutils, failing on any warning."""
    return docutils_core.publish_doctree(
        text, settings_overrides={"halt_level": 2, "report_level": 2, "warning_stream": False})


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def referenced_images(out: Path) -> dict[str, list[str]]:
    """Image paths each format references, as its standard parser reads them."""
    from urllib.parse import unquote

    md = markdown_it.MarkdownIt("commonmark").enable("table")
    tokens = md.parse((out / "report.md").read_text())
    md_images = [child.attrGet("src") for token in tokens if token.children
                 for child in token.children if child.type == "image"]
    tree = rst_tree((out / "report.rst").read_text())
    rst_images = [node["uri"] for node in tree.findall(lambda n: n.tagname == "image")]
    parser = _Images()
    parser.feed((out / "report.html").read_text())
    return {fmt: [unquote(src) for src in found] for fmt, found in
            (("md", md_images), ("rst", rst_images), ("html", parser.sources))}


def test_three_formats_parse_and_reference_existing_images(three_targets, tmp_path):
    out = tmp_path / "report"
    written = render_report([three_targets], out)
    assert set(written) == {"md", "rst", "html"}
    images = referenced_images(out)
    assert images["md"] == images["rst"] == images["html"]
    assert len(images["md"]) >= 10
    for relative in images["md"]:
        assert (out / relative).read_bytes().startswith(b"\x89PNG"), relative
    # a Markdown table per target, ranking and run tables: real tables, not text
    md_tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(
        (out / "report.md").read_text())
    assert sum(t.type == "table_open" for t in md_tokens) >= 3 + 1 + 3
    text = (out / "report.md").read_text()
    # each run: its summary, both latency sources, quality, per-class table, memory, checks
    for expected in ("| optimizer chain | tflite |", "| protocol_inference_step | 200 |",
                     "| accuracy | 0.95 |", "| cat | 20 | 0.947 | 0.900 |",
                     "| peak RAM used | 22136 B (21.6 KiB) |", "| threshold | accuracy | >= 0.9 |"):
        assert expected in text, expected


def test_instructions_and_seconds_never_share_an_axis(three_targets, tmp_path):
    out = tmp_path / "report"
    render_report([three_targets], out)
    figures = sorted(p.name for p in (out / "figures").glob("compare-*.png"))
    # one run counted in instructions: its distribution, but no bubble chart of one bubble
    assert figures == ["compare-instructions-distribution.png", "compare-time-accuracy.png",
                       "compare-time-distribution.png"]
    text = (out / "report.md").read_text()
    ranking = text[text.index("| rank |"):].split("\n\n")[0].splitlines()[2:]
    # ranked within a unit: the simulated board is first of its own ranking
    assert [line.split(" | ")[0] for line in ranking] == ["| 1", "| 2", "| 1"]
    assert "k instructions" in ranking[2] and "µs" in ranking[0]


def test_figures_are_deterministic_and_carry_no_version_or_time(three_targets, tmp_path):
    render_report([three_targets], tmp_path / "a")
    render_report([three_targets], tmp_path / "b")
    first = sorted((tmp_path / "a" / "figures").glob("*.png"))
    assert first
    for path in first:
        data = path.read_bytes()
        assert data == (tmp_path / "b" / "figures" / path.name).read_bytes(), path.name
        assert b"matplotlib" not in data and b"Creation Time" not in data


def test_shards_merge_into_one_row_per_test(tmp_path):
    """Two CI shards and an xdist worker's directory that ran one test twice (a retry in
    another job): one row per test, the latest run kept, the merge said."""
    a = write_results(tmp_path / "shard-a", [
        result_record("s.yaml::m[host-litert]", "host-litert", seed=1),
        result_record("s.yaml::m[host-onnxruntime]", "host-onnxruntime", seed=2)])
    later = result_record("s.yaml::m[host-litert]", "host-litert", seed=5, accuracy=0.97)
    b = write_results(tmp_path / "shard-b", [
        later, result_record("s.yaml::m[qemu-m4]", "qemu-m4", unit="instructions", seed=3)])
    out = tmp_path / "merged"
    assert main(["report", str(a), str(b), "--out", str(out), "--format", "md"]) == 0
    assert not (out / "report.rst").exists()
    text = (out / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| [s.yaml::")]
    assert len(rows) == 3
    assert "| 0.9700 |" in next(r for r in rows if "host-litert" in r)
    assert "1 results of tests already read from another input merged" in text


def test_history_plots_trends_and_marks_the_regression(tmp_path):
    nightly = []
    for night, scale in enumerate([1.0, 1.02, 1.6]):  # the third night is 60 % slower
        record = result_record("s.yaml::m[host-litert]", "host-litert", scale=scale, seed=night)
        record["started"] = 1.8e9 + night * 86400
        nightly.append(write_results(tmp_path / f"night-{night}", [record]))
    out = tmp_path / "trend"
    assert main(["report", "--history", *map(str, nightly), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "## Trends" in text
    assert (out / "figures" / "trend-latency-p50.png").is_file()
    assert (out / "figures" / "trend-accuracy.png").is_file()
    row = next(line for line in text.splitlines() if line.startswith("| s.yaml::m[host-litert] "
                                                                       "| latency.p50"))
    # the third night, 60 % slower, is the regression; the first two are not
    assert row.split(" | ")[-2:] == ["3", "2027-01-17 08:00 |"], row
    rst_tree((out / "report.rst").read_text())


@pytest.mark.parametrize("content, says", [
    ("", "everything: the file is empty"),
    ('{"test": "s::t[host]", "target": "host", "measurements": {"target_inference_st',
     "not valid JSON, truncated?"),
    ("[1, 2]", "a JSON list, not a result object"),
    # an older result file: no model, no metrics, latency under no known key
    ('{"test": "s::t[host]", "target": "host", "measurements": {"inference_step": [1, 2]}}',
     "Missing from this run's results: model; per-inference latency"),
    ('{"test": "s::t[host]", "target": "host", "model": "m", "measurements": "oops"}',
     "measurements (a str, not a mapping)"),
])
def test_broken_result_files_are_named_in_the_report(tmp_path, content, says):
    directory = write_results(tmp_path / "results", [result_record("s::ok[host]", "host")])
    (directory / "tests" / "s__t[host].json").write_text(content)
    summary = json.loads((directory / "summary.json").read_text())
    summary.append(SummaryRow("s::t[host]", "host", "failed",
                              results=str(directory / "tests" / "s__t[host].json")).__dict__)
    (directory / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(directory)]) == 0
    for fmt in ("md", "rst", "html"):
        text = (directory / f"report.{fmt}").read_text().replace("\\", "")
        assert says in html.unescape(text), fmt
    rst_tree((directory / "report.rst").read_text())
    assert "s::ok[host]" in (directory / "report.md").read_text()  # the good run is there


def test_every_latency_source_is_said_in_words_on_its_figure():
    """A latency source added to core.measurements gets its words in the figures too."""
    from kenning_hil.core.measurements import LATENCY_SOURCES
    from kenning_hil.report.figures import SOURCE_NAMES

    assert [s.key for s in LATENCY_SOURCES if s.key not in SOURCE_NAMES] == []
    assert set(SOURCE_NAMES) == {s.key for s in LATENCY_SOURCES}


def test_a_bare_measurements_file_renders(tmp_path):
    """A Kenning-style measurements file on its own (no test, target or model keys)."""
    record = result_record("x", "host")["measurements"]
    record["accuracy"] = 0.93
    path = tmp_path / "measurements.json"
    path.write_text(json.dumps(record))
    out = tmp_path / "out"
    assert main(["report", str(path), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "a bare measurements file" in text and "| accuracy | 0.93 |" in text


def test_report_command_errors_are_one_line(tmp_path, capsys, three_targets):
    assert main(["report", str(three_targets), "--format", "md,pdf"]) == 2
    assert "unknown report format pdf (formats: md, rst, html)" in capsys.readouterr().err
    assert main(["report", str(three_targets), str(three_targets)]) == 2
    assert "--out DIR is needed" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: no such results directory or file" in capsys.readouterr().err


def test_html_report_opens_in_headless_chromium_without_console_errors(three_targets, tmp_path):
    browser = find_chromium()
    if browser is None:
        pytest.skip("headless Chromium not installed (Debian: chromium-headless-shell or "
                    "chromium; scripts/install-system-deps.sh installs it)")
    out = tmp_path / "report"
    render_report([three_targets], out, ["html"])
    shot = tmp_path / "report.png"
    assert open_page(browser, out / "report.html", shot) == []
    from PIL import Image

    with Image.open(shot) as image:  # the whole page: tables and figures, not a blank one
        assert image.size[1] > 3000 and len(image.getcolors(1 << 20) or range(1000)) > 50
    # the check sees what a reader would: one image missing is one console error
    next((out / "figures").glob("*-confusion.png")).unlink()
    errors = open_page(browser, out / "report.html", shot)
    assert len(errors) == 1 and "confusion.png" in errors[0] and "ERR_FILE_NOT_FOUND" in errors[0]


def test_agreement_between_targets_is_tabled_and_plotted(tmp_path):
    """A comparison block as `hil.compare` writes it (judge/agreement.compare_outputs on two
    targets' int8 outputs: one sample 2 steps off) gives the agreement table and the
    per-sample difference figure."""
    from kenning_hil.judge.agreement import compare_outputs, parse_output_tolerance

    rng = np.random.default_rng(3)
    reference = rng.integers(-128, 127, (30, 10), dtype=np.int8)
    target = reference.copy()
    target[7, 3] += 2
    entry = {"name": "out", "dtype": "int8", "scale": 0.1, "zero_point": 0}
    pair = compare_outputs([reference], [target], [entry],
                           parse_output_tolerance({"max_lsb": 1}, "test"), "host-litert-ref",
                           "qemu-m4")
    record = result_record("s.yaml::m[qemu-m4]", "qemu-m4", unit="instructions")
    record["comparison"] = pair.to_dict()
    directory = write_results(tmp_path / "results", [
        record, result_record("s.yaml::m[host-litert]", "host-litert")])
    assert main(["report", str(directory)]) == 0
    text = (directory / "report.md").read_text()
    assert "### Agreement between targets" in text
    assert ("| s.yaml::m[qemu-m4] | host-litert-ref | qemu-m4 | 30 | 96.7% | 2 steps | "
            in text), text[text.index("### Agreement"):][:600]
    assert (directory / "figures" / "agreement-steps.png").read_bytes().startswith(b"\x89PNG")
    rst_tree((directory / "report.rst").read_text())

"""The example tests under examples/, run by a real pytest process against the host target:
they pass, and fail with a readable message when a threshold or a baseline is tightened."""

import json
import re
import xml.etree.ElementTree as ET

from tests.plugin.conftest import REPO, run
from tests.scripted_latency import TARGET_NAME, scripted_env, write_scripted_target

pytest_plugins = ["pytester"]


def copy_example(project, name: str, replace: tuple[str, str] | None = None) -> None:
    text = (REPO / "examples" / name).read_text()
    if replace is not None:
        assert replace[0] in text
        text = text.replace(*replace)
    (project.path / name).write_text(text)


def test_examples_pass_with_properties_and_artifacts(hil_project):
    copy_example(hil_project, "test_digits_accuracy.py")
    copy_example(hil_project, "test_digits_latency.py")
    result = run(hil_project, "--target=host-onnxruntime", "--junitxml=junit.xml")
    result.assert_outcomes(passed=2)
    # terminal summary table
    result.stdout.re_match_lines([
        r"=+ kenning-hil results =+",
        r"test\s+target\s+accuracy\s+p50\s+p95\s+size\s+result",
        r".*test_digits_accuracy\[host-onnxruntime\]\s+host-onnxruntime\s+0\.9\d+\s+[\d.]+ µs.*"
        r"19770 B\s+passed",
    ])
    # JUnit properties CI dashboards read
    case = ET.parse(hil_project.path / "junit.xml").find(".//testcase[@name='test_digits_accuracy"
                                                          "[host-onnxruntime]']")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["target"] == "host-onnxruntime"
    assert 0.95 <= float(props["accuracy"]) <= 1.0
    assert 0 < float(props["latency_p50_s"]) <= float(props["latency_p95_s"]) < 1
    assert props["latency_unit"] == "s" and "latency_p50" not in props
    assert props["compiled_size"] == "19770"
    assert props["latency_source"] == "target_inference_step"
    # per-test results and the session report
    saved = json.loads((hil_project.path / props["hil_results"]).read_text())
    assert saved["target"] == "host-onnxruntime" and saved["samples"] == 200
    assert len(saved["measurements"]["target_inference_step"]) == 200
    assert len(saved["measurements"]["protocol_inference_step"]) == 200
    report = (hil_project.path / "results" / "report.md").read_text()
    assert "## host-onnxruntime" in report and "test_digits_latency" in report


def test_tightened_threshold_fails_readably_after_saving_results(hil_project):
    copy_example(hil_project, "test_digits_accuracy.py",
                 ('thresholds={"accuracy": 0.95}', 'thresholds={"accuracy": 0.999}'))
    result = run(hil_project, "--target=host-onnxruntime")
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([
        r"digits-mlp \(no optimizer\) on host-onnxruntime: 1 check\(s\) failed",
        r"  - accuracy = 0\.9\d+ is below the threshold 0\.999",
        r"  results: .*test_digits_accuracy\[host-onnxruntime\]\.json",
    ])
    assert "Traceback" not in result.stdout.str()
    # the measured results were written before the check failed
    saved = list((hil_project.path / "results" / "tests").glob("*test_digits_accuracy*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["metrics"]["accuracy"] > 0.9
    result.stdout.re_match_lines([r".*test_digits_accuracy.*failed: digits-mlp \(no optimizer\) "
                                  r"on host-onnxrunti"
                                  r"me: 1 check\(s\) failed - accuracy = 0\.9\d+ is below.*"])


def test_baseline_recorded_then_regressions_fail(hil_project, monkeypatch):
    # the example as shipped (its own tolerance: +50% and 100 µs), on ONNX Runtime reporting
    # inference times this test scripted (tests/scripted_latency.py, about 1 ms with a slow
    # one in six), so the run that compares never depends on how busy the machine is
    scripted_env(monkeypatch)
    write_scripted_target(hil_project.path, [1.00e-3, 1.02e-3, 0.98e-3, 1.01e-3, 6e-3, 0.99e-3])
    copy_example(hil_project, "test_digits_latency.py")
    target = f"--target={TARGET_NAME}"
    first = run(hil_project, target, "--baseline=baselines", "--update-baseline")
    first.assert_outcomes(passed=1)
    (path,) = (hil_project.path / "baselines").glob("*.json")
    baseline = json.loads(path.read_text())
    assert baseline["test"] == f"test_digits_latency.py::test_digits_latency[{TARGET_NAME}]"
    assert baseline["samples"] == 300 and baseline["latency_source"] == "target_inference_step"
    assert baseline["metrics"]["latency.p10"] == 0.98e-3
    assert baseline["metrics"]["latency.p50"] == 1.005e-3
    # unchanged baseline: the same model passes again
    again = run(hil_project, target, "--baseline=baselines")
    again.assert_outcomes(passed=1)
    # tighten: a baseline 10x faster and more accurate than anything measured
    baseline["metrics"]["latency.p10"] /= 10
    baseline["metrics"]["latency.p50"] /= 10
    baseline["metrics"]["accuracy"] = 0.999
    path.write_text(json.dumps(baseline, indent=2))
    result = run(hil_project, target, "--baseline=baselines")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(
        r"baseline regression: accuracy regressed: measured 0\.9\d+, baseline 0\.999, "
        r"tolerance 0\.01 \(limit 0\.989; measured is below\)", out), out
    assert (
        "baseline regression: latency.p10 regressed: measured 980.0 µs, baseline 98.0 µs, "
        "tolerance 50% + 100.0 µs (limit 247.0 µs; measured is above); compared the 10th "
        "percentile (the fast end of the run: load on the machine slows some inferences, a "
        "slower model every one), its 95% CI [980.0 µs, 980.0 µs] over 300 samples; median "
        "1.005 ms, baseline median 100.5 µs") in out, out
    assert f"baseline file {path}" in out and "--update-baseline accepts the new values" in out
    baselines = hil_project.path / "baselines"
    assert f"baselines ({baselines}): 1 regressed" in out
    assert f"baselines ({baselines}): 1 written" in first.stdout.str()
    assert f"baselines ({baselines}): 1 compared" in again.stdout.str()


BOOT_ONCE = """
import pytest

@pytest.mark.parametrize("run", range(3))
def test_same_model(hil, run):
    hil.run(model="models/digits/digits-mlp.onnx", dataset="digits", samples=5)

def test_other_model(hil):
    hil.run(model="other.onnx", dataset="digits", samples=5)

def test_first_model_again(hil):
    hil.run(model="models/digits/digits-mlp.onnx", dataset="digits", samples=5)
"""


def test_board_boots_once_and_model_uploads_once_per_process(hil_project):
    # a byte-different copy of the model (one more producer string) is another model
    import onnx

    model = onnx.load(str(REPO / "models" / "digits" / "digits-mlp.onnx"))
    model.producer_name = "copy"
    onnx.save(model, str(hil_project.path / "other.onnx"))
    hil_project.makepyfile(test_boot=BOOT_ONCE)
    run(hil_project, "-p", "no:randomly").assert_outcomes(passed=5)
    sessions = {}
    for path in (hil_project.path / "results" / "tests").glob("*.json"):
        record = json.loads(path.read_text())
        sessions[record["test"].split("::")[1]] = record["session"]
    order = ["test_same_model[host-onnxruntime-0]", "test_same_model[host-onnxruntime-1]",
             "test_same_model[host-onnxruntime-2]", "test_other_model[host-onnxruntime]",
             "test_first_model_again[host-onnxruntime]"]
    assert [sessions[t]["model_uploaded"] for t in order] == [True, False, False, True, True]
    assert {sessions[t]["boots_in_this_process"] for t in order} == {1}
    assert len({sessions[t]["pid"] for t in order}) == 1  # one server for all five tests
    assert len(list((hil_project.path / "results" / "targets").glob("*.log"))) == 1

"""hil.flow in a real pytest process: a flow file runs on the test's target, its measurements
come back for assertions, are written as the test's results and judged by thresholds."""

import json

from tests.plugin.conftest import REPO, run

pytest_plugins = ["pytester"]


def write_flow(project) -> None:
    flow = json.loads((REPO / "examples" / "flows" / "digits-host.json").read_text())
    flow[2]["parameters"]["path"] = "out/digits.jsonl"
    (project.path / "digits.json").write_text(json.dumps(flow))


def test_hil_flow_runs_on_the_test_target_and_returns_measurements(hil_project):
    write_flow(hil_project)
    hil_project.makepyfile(test_flow="""
        def test_flow(hil):
            result = hil.flow("digits.json", steps=50, thresholds={"accuracy": 0.95})
            assert result.steps == 50 and result.accuracy >= 0.95
            assert result.throughput > 0 and result.end_to_end.count == 50
            assert len(result.runner_mean_s) == 4
            # the model ran on the test's target: round trips over the wire protocol
            measured = result.measurements
            assert len(measured["protocol_inference_step"]) == 50
            assert result.latency.source == "target_inference_step"
            assert result.result.target == "host-onnxruntime"

        def test_threshold(hil):
            hil.flow("digits.json", steps=20, thresholds={"accuracy": 1.01})
    """)
    result = run(hil_project, "--target=host-onnxruntime")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([r".*accuracy = [\d.]+ is below the threshold 1\.01"])
    saved = json.loads((hil_project.path / "results" / "tests" /
                        "test_flow.py__test_flow[host-onnxruntime].json").read_text())
    assert saved["flow"]["steps"] == 50 and saved["samples"] == 50
    assert len((hil_project.path / "out" / "digits.jsonl").read_text().splitlines()) == 20

"""A flow is checked before anything runs; each problem is one line naming the runner (index
and type) and the field."""

from __future__ import annotations

import copy

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.flows.flowrun import build_flow
from tests.flows.conftest import DIGITS_MODEL, cli, example, redirected, write_flow

pytest.importorskip("onnxruntime")


def host_flow(tmp_path) -> list:
    flow = redirected(example("digits-host.json"), tmp_path)
    flow[1]["parameters"]["model_wrapper"] = DIGITS_MODEL
    return flow


def check_fails(flow, harness, targets, *expected: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        build_flow(flow, harness, targets)
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    return message


def test_valid_flow_builds_and_runs_nothing(tmp_path, harness, targets):
    flow = build_flow(host_flow(tmp_path), harness, targets)
    assert flow.names == ["dataset-provider", "model-runtime-runner", "jsonlines", "summary"]
    assert flow.runners[1].compiled is None  # compiling is running: not before run()
    assert not (tmp_path / "digits-host.jsonl").exists()
    flow.cleanup()


def test_unknown_type(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow[2]["type"] = "jsonline"
    check_fails(flow, harness, targets, "flow runner 2 (jsonline): ", "unknown runner type "
                "'jsonline'", "jsonlines")


def test_input_no_runner_produces(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow[2]["inputs"]["model_output"] = "score"
    check_fails(flow, harness, targets, "flow runner 2 (jsonlines): field 'inputs': input "
                "'model_output' reads 'score', which no runner produces")


def test_input_from_a_later_runner(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow[0], flow[1] = flow[1], flow[0]
    check_fails(flow, harness, targets, "flow runner 0 (model-runtime-runner): field 'inputs'",
                "produced by the later flow runner 1 (dataset-provider)")


def test_duplicate_global_names(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow.insert(1, copy.deepcopy(flow[0]))
    flow[1]["outputs"] = {"data": "pixels2", "label": "digit"}
    check_fails(flow, harness, targets, "flow runner 1 (dataset-provider): field 'outputs': "
                "global name 'digit'", "already produced by flow runner 0 (dataset-provider)")


def test_cycle(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    second = copy.deepcopy(flow[1])
    second["inputs"] = {"input": "scores"}
    second["outputs"] = {"model_output": "rescored"}
    flow[1]["inputs"] = {"input": "rescored"}
    flow.insert(2, second)
    check_fails(flow, harness, targets, "field 'inputs': the runners form a cycle: ",
                "1 (model-runtime-runner) -> 2 (model-runtime-runner) -> 1")


def test_mismatched_shape(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow[0]["parameters"]["dataset"]["parameters"]["image_layout"] = "nhwc"
    check_fails(flow, harness, targets, "flow runner 1 (model-runtime-runner): field 'inputs': "
                "input 'input' ('pixels' from flow runner 0 (dataset-provider)): shape differs "
                "(gets float32 [1, 8, 8, 1], expects float32 [-1, 64])")


def test_mismatched_dtype(tmp_path, harness, targets):
    import numpy as np

    np.save(tmp_path / "sample.npy", np.zeros(64))
    flow = host_flow(tmp_path)
    flow[0] = {"type": "files-provider",
               "parameters": {"path": str(tmp_path / "sample.npy"), "dtype": "float64"},
               "outputs": {"data": "pixels"}}
    flow[2]["inputs"].pop("label")
    flow[3]["inputs"].pop("label")
    check_fails(flow, harness, targets, "flow runner 1 (model-runtime-runner)", "dtype differs "
                "(gets float64 [1, 64], expects float32 [-1, 64])")


@pytest.mark.parametrize(("runner", "parameters", "expected"), [
    (2, {"path": 5}, "flow runner 2 (jsonlines): field 'parameters': JSONLinesCollector: "
     "parameter 'path' must be a string, got 5 (integer)"),
    (2, {"path": "x.jsonl", "colour": 1}, "flow runner 2 (jsonlines): field 'parameters': "
     "JSONLinesCollector: unknown parameter 'colour'"),
    (1, {"runtime": {"type": "onnxruntime"}}, "flow runner 1 (model-runtime-runner): field "
     "'parameters': ModelRuntimeRunner: missing required parameter 'model_wrapper'"),
    (0, {"dataset": {"type": "digits", "parameters": {"subset": "val"}}},
     "flow runner 0 (dataset-provider): field 'parameters': parameter 'dataset': "
     "DigitsDataset: parameter 'subset' must be one of 'test', 'train', 'all', got 'val'"),
])
def test_bad_parameters(tmp_path, harness, targets, runner, parameters, expected):
    flow = host_flow(tmp_path)
    flow[runner]["parameters"] = parameters
    check_fails(flow, harness, targets, expected)


def test_a_dataset_that_selects_no_sample(tmp_path, harness, targets):
    """As a run does (#25 reviewer: an empty test split passed with 0 samples): the
    dataset, its size and split, before anything runs."""
    flow = host_flow(tmp_path)
    root = tmp_path / "one"
    flow[0]["parameters"]["dataset"] = {"type": "eembc", "parameters": {
        "root": str(root), "input_shape": [1, 64], "input_dtype": "float32",
        "synthetic_samples": 1, "synthetic_classes": 10}}
    check_fails(flow, harness, targets, "flow runner 0 (dataset-provider): field 'parameters': "
                f"parameter 'dataset': dataset EEMBCDataset (root {root}) holds 1 sample and "
                "its test split (split_fraction_test 0.2: 0 test, 1 train) holds none")


def test_names_and_shape_of_entries(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow[2]["inputs"]["scores"] = "scores"
    check_fails(flow, harness, targets, "flow runner 2 (jsonlines): field 'inputs': unknown "
                "local name 'scores' (JSONLinesCollector has: model_output, input, label)")
    flow = host_flow(tmp_path)
    del flow[1]["inputs"]
    check_fails(flow, harness, targets, "flow runner 1 (model-runtime-runner): field 'inputs': "
                "local input 'input' is not connected")
    flow = host_flow(tmp_path)
    flow[3]["input"] = {}
    check_fails(flow, harness, targets, "flow runner 3 (summary): unknown field 'input'")
    check_fails({"runners": []}, harness, targets, "a flow must be a non-empty JSON list")


def test_model_runner_placement(tmp_path, harness, targets):
    flow = host_flow(tmp_path)
    flow[1]["parameters"]["target"] = "host-onnxruntime"
    check_fails(flow, harness, targets, "flow runner 1 (model-runtime-runner): field "
                "'parameters': 'target' cannot be combined with runtime")
    flow[1]["parameters"] = {"model_wrapper": DIGITS_MODEL, "target": "no-such-board"}
    check_fails(flow, harness, targets, "flow runner 1 (model-runtime-runner): ",
                "no-such-board")


def test_cli_prints_one_line_and_writes_nothing(tmp_path):
    flow = host_flow(tmp_path)
    flow[2]["inputs"]["model_output"] = "score"
    path = write_flow(flow, tmp_path, "bad.json")
    done = cli("flow", "run", str(path), "--hil-report", str(tmp_path / "report"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "kenning-hil: error: flow runner 2 (jsonlines): field 'inputs': input 'model_output' "
        "reads 'score', which no runner produces (global names: digit, pixels, scores)"]
    assert not (tmp_path / "digits-host.jsonl").exists()
    assert not (tmp_path / "report" / "tests").exists()


def test_model_the_target_cannot_run_stays_incompatible(tmp_path, harness, targets):
    """An int8 TFLite chain moved to an ONNX Runtime target is refused before compiling, as
    an Incompatible (a skip in a test, as for hil.run), naming the runner."""
    from kenning_hil.run.outcome import Incompatible

    flow = redirected(example("digits-qemu-m4.json"), tmp_path)
    flow[1]["parameters"]["model_wrapper"] = DIGITS_MODEL
    with pytest.raises(Incompatible) as caught:
        build_flow(flow, harness, targets, target_override="host-onnxruntime")
    assert str(caught.value).startswith(
        "flow runner 1 (model-runtime-runner): field 'parameters': target 'host-onnxruntime' "
        "runs onnx models; this model is tflite")
    assert not list((tmp_path / "cache").glob("*"))  # nothing compiled

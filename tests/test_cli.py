"""`kenning-hil run`, through the installed console script in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from onnx_test_models import gemm_softmax_model

REPO_ROOT = Path(__file__).resolve().parents[1]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
DEMO = REPO_ROOT / "scenarios" / "digits-onnxruntime.json"


def console_script() -> str:
    beside_python = Path(sys.executable).parent / "kenning-hil"
    found = str(beside_python) if beside_python.is_file() else shutil.which("kenning-hil")
    if found is None:
        pytest.fail("the kenning-hil console script is not installed (pip install -e .)")
    return found


def kenning_hil(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def write_scenario(path: Path, **overrides) -> Path:
    scenario = {
        "dataset": {"type": "digits", "parameters": {}},
        "model_wrapper": {"type": "onnx", "parameters": {"model_path": str(DIGITS_MODEL)}},
        "runtime": {"type": "onnxruntime", "parameters": {}},
    }
    scenario.update(overrides)
    path.write_text(json.dumps(scenario))
    return path


def test_demo_scenario(tmp_path):
    output = tmp_path / "demo" / "digits.json"
    done = kenning_hil("run", DEMO, "--output", output)
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"^accuracy: ([0-9.]+)$", done.stdout, re.M).group(1))
    assert accuracy >= 0.95
    assert "samples: 359" in done.stdout
    assert re.search(r"latency p50: [0-9.]+ (µs|ms|s),", done.stdout)
    assert f"measurements: {output}" in done.stdout
    written = json.loads(output.read_text())
    assert written["summary"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert written["scenario_name"] == "digits-onnxruntime"


def test_flag_form(tmp_path):
    output = tmp_path / "flags.json"
    done = kenning_hil(
        "run", "--dataset", "digits", "--model-wrapper", "onnx", "--model-path", DIGITS_MODEL,
        "--runtime", "onnxruntime", "--samples", "40", "--batch-size", "8", "--output", output,
    )
    assert done.returncode == 0, done.stderr
    assert "scenario: digits-mlp-onnxruntime" in done.stdout and "samples: 40" in done.stdout
    written = json.loads(output.read_text())
    assert written["build_cfg"]["dataset"]["parameters"]["batch_size"] == 8
    assert written["summary"]["latency"]["count"] == 5


def test_default_output_goes_to_results(tmp_path):
    scenario = write_scenario(tmp_path / "mine.json")
    done = kenning_hil("run", scenario, "--samples", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (written,) = (tmp_path / "results").iterdir()
    assert re.fullmatch(r"mine-\d{8}-\d{6}\.json", written.name)
    assert f"measurements: results/{written.name}" in done.stdout


def test_help_lists_every_registered_classes_options():
    done = kenning_hil("run", "--help")
    assert done.returncode == 0
    for text in ("dataset 'digits' (DigitsDataset) options", "--image-layout", "--subset",
                 "model_wrapper 'onnx' (ONNXWrapper) options", "--model-path",
                 "runtime 'onnxruntime' (ONNXRuntime) options", "--execution-providers",
                 "--num-threads", "--samples", "--output"):
        assert text in done.stdout


def error_of(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    # the error is one line, the last; phases finished before it (progress lines, which go
    # to stderr like any progress output) may precede it
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("kenning-hil: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    return errors[0]


def test_missing_model_file(tmp_path):
    line = error_of(kenning_hil(
        "run", "--dataset", "digits", "--model-wrapper", "onnx", "--model-path",
        tmp_path / "missing.onnx", "--runtime", "onnxruntime",
    ))
    assert "missing.onnx does not exist" in line


def test_model_that_is_not_onnx(tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_text("definitely\nnot\nONNX\n" * 10)
    scenario = write_scenario(
        tmp_path / "s.json", model_wrapper={"type": "onnx", "parameters": {"model_path": str(fake)}}
    )
    assert "fake.onnx is not a valid ONNX model" in error_of(kenning_hil("run", scenario))


def test_unknown_type(tmp_path):
    scenario = write_scenario(tmp_path / "s.json", runtime={"type": "tensorrt", "parameters": {}})
    line = error_of(kenning_hil("run", scenario))
    assert "unknown runtime type 'tensorrt' (known: " in line and "onnxruntime" in line


def test_wrong_typed_parameter(tmp_path):
    scenario = write_scenario(
        tmp_path / "s.json", dataset={"type": "digits", "parameters": {"batch_size": "eight"}}
    )
    line = error_of(kenning_hil("run", scenario))
    assert ("s.json: dataset.parameters.batch_size: DigitsDataset: parameter 'batch_size' must "
            "be an integer") in line


def test_input_of_the_wrong_size(tmp_path):
    model = gemm_softmax_model(tmp_path / "small.onnx", 32, 10)
    wrapper = {"type": "onnx", "parameters": {"model_path": str(model)}}
    scenario = write_scenario(tmp_path / "s.json", model_wrapper=wrapper)
    line = error_of(kenning_hil("run", scenario))
    assert "'x' expects samples of shape [32]" in line and "[64]" in line


@pytest.mark.parametrize(
    "args,message",
    [
        (("run", "no-such.json"), "scenario file no-such.json does not exist"),
        (("run", DEMO, "--runtime", "onnxruntime"), "cannot be combined with a scenario file"),
        (("run", "--dataset", "digits", "--model-wrapper", "onnx"), "missing: --runtime"),
        (("run", DEMO, "--samples", "0"), "--samples must be a positive integer"),
    ],
)
def test_command_line_mistakes(args, message):
    assert message in error_of(kenning_hil(*args))


def test_invalid_json_scenario(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"dataset": ')
    assert "broken.json is not valid JSON" in error_of(kenning_hil("run", broken))


def test_no_command_prints_usage():
    # the command list, one line each (#19's help texts, in HEAD since 8b64314)
    done = kenning_hil()
    assert done.returncode == 0 and "usage: kenning-hil" in done.stdout
    assert "commands:" in done.stdout and "\n  run " in done.stdout


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    line = error_of(kenning_hil("run", DEMO, "--samples", "2", "--output", blocker / "r.json"))
    assert "cannot write measurements to" in line


def test_a_missing_relative_model_path_says_where_it_was_looked_for(tmp_path):
    line = error_of(kenning_hil(
        "run", "--dataset", "digits", "--model-wrapper", "onnx", "--model-path",
        "models/none.onnx", "--runtime", "onnxruntime", cwd=tmp_path,
    ))
    assert f"model file models/none.onnx does not exist (in {tmp_path})" in line


def test_a_dataset_that_selects_no_sample_is_an_error(tmp_path):
    """A run that would measure nothing never reports a result (#25 reviewer): one
    synthetic EEMBC sample leaves the test split empty; refused before compiling."""
    root = tmp_path / "one"
    dataset = {"type": "eembc", "parameters": {
        "root": str(root), "input_shape": [1, 64], "input_dtype": "float32",
        "synthetic_samples": 1, "synthetic_classes": 10}}
    line = error_of(kenning_hil("run", write_scenario(tmp_path / "s.json", dataset=dataset)))
    assert line == (
        f"kenning-hil: error: dataset EEMBCDataset (root {root}) holds 1 sample and its test "
        "split (split_fraction_test 0.2: 0 test, 1 train) holds none: a run would measure "
        "nothing (give it more samples, or subset: all)")

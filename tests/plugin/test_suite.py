"""Suite YAML: validation errors naming file and key, expansion into cases and test names."""

import time
from pathlib import Path

import pytest
import yaml

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.judge.baselines import Tolerance
from kenning_hil.judge.thresholds import Threshold
from kenning_hil.suites.loader import is_suite_document, load_suite, parse_suite

SUITE = """
name: tiny
samples: 50
marks: [hil]
thresholds: {accuracy: 0.5}
tolerance: {latency: {rel: 20%}}
datasets:
  digits: {type: digits, parameters: {image_layout: flat}}
models:
  digits:
    model: model.onnx
    dataset: digits
    thresholds: {accuracy: 0.9, latency.p95: 5ms}
  kws:
    model: mlperf_tiny/kws_ref_model.tflite
    dataset: eembc:data/kws
    marks: [nightly]
    targets: [qemu-m4]
optimizers:
  fp32: []
  int8: [{type: onnxruntime-quant, parameters: {calibration_samples: 10}}]
"""


def write_suite(tmp_path: Path, text: str = SUITE) -> Path:
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    return path


def test_expansion_and_names(tmp_path):
    models_dir = tmp_path / "external"
    (models_dir / "mlperf_tiny").mkdir(parents=True)
    (models_dir / "mlperf_tiny" / "kws_ref_model.tflite").write_bytes(b"x")
    suite = load_suite(write_suite(tmp_path), search=[models_dir])
    assert suite.name == "tiny"
    assert [c.name for c in suite.cases] == ["digits-fp32", "digits-int8", "kws-fp32", "kws-int8"]
    digits_int8 = suite.cases[1]
    assert digits_int8.model_wrapper == {
        "type": "onnx",
        "parameters": {"model_path": str((tmp_path / "model.onnx").resolve())},
    }
    assert digits_int8.optimizers == [
        {"type": "onnxruntime-quant", "parameters": {"calibration_samples": 10}}
    ]
    assert digits_int8.dataset == {"type": "digits", "parameters": {"image_layout": "flat"}}
    assert digits_int8.samples == 50
    assert digits_int8.thresholds == [
        Threshold("accuracy", min=0.9),
        Threshold("latency.p95", max=pytest.approx(0.005)),
    ]
    assert digits_int8.tolerances["latency"] == Tolerance(rel=0.2)
    assert digits_int8.marks == ["hil"] and digits_int8.targets is None
    kws = suite.cases[2]
    assert kws.model_wrapper["type"] == "tflite"
    assert kws.model_wrapper["parameters"]["model_path"].startswith(str(models_dir))
    assert kws.dataset == {"type": "eembc", "parameters": {"root": "data/kws"}}
    assert kws.marks == ["hil", "nightly"] and kws.targets == ["qemu-m4"]
    pairs = suite.expand(["host-a", "host-b"])
    assert [c.test_name(t) for c, t in pairs] == [
        "digits-fp32[host-a]",
        "digits-fp32[host-b]",
        "digits-int8[host-a]",
        "digits-int8[host-b]",
        "kws-fp32[qemu-m4]",
        "kws-int8[qemu-m4]",
    ]


def test_matrix_selects_rows(tmp_path):
    data = yaml.safe_load(SUITE)
    data["matrix"] = [
        {"models": ["digits"], "optimizers": ["int8"], "thresholds": {"accuracy": 0.8}},
        {"models": ["kws"], "optimizers": ["fp32"], "samples": 7},
    ]
    suite = parse_suite(data, "s.yaml", "s")
    assert [c.name for c in suite.cases] == ["digits-int8", "kws-fp32"]
    assert suite.cases[0].thresholds[0] == Threshold("accuracy", min=0.8)
    assert suite.cases[1].samples == 7


@pytest.mark.parametrize(
    "change, message",
    [
        ({"modles": {}}, "unknown key 'modles'"),
        ({"models": {"d": {"model": "m.onnx", "datset": "x"}}}, "unknown key 'models.d.datset'"),
        ({"models": {"d": {"model": "m.pt", "dataset": "d"}}}, "cannot tell the model type of"),
        ({"models": {"d": {"dataset": "x"}}}, "key 'models.d' needs exactly one of 'model'"),
        ({"models": {"d": {"model": "m.onnx"}}}, "key 'models.d' has no dataset"),
        ({"samples": 0}, "key 'samples'"),
        ({"targets": "some"}, "key 'targets' must be 'all' (every --target) or a list"),
        ({"matrix": [{"models": ["nope"]}]}, "key 'matrix.0.models': unknown model 'nope'"),
        ({"matrix": [{"optimizers": ["int4"]}]}, "unknown chain 'int4' (optimizers: fp32, int8)"),
        ({"thresholds": {"latency.p42": 1}}, "threshold 'latency.p42'"),
        ({"optimizers": {"x": [{"name": "y"}]}}, "unknown key 'optimizers.x.0.name'"),
    ],
)
def test_errors_name_file_and_key(change, message):
    data = {**yaml.safe_load(SUITE), **change}
    with pytest.raises(ConfigurationError) as info:
        parse_suite(data, "suites/s.yaml", "s")
    assert str(info.value).startswith("suites/s.yaml: ")
    assert message in str(info.value)


def test_sniff(tmp_path):
    assert is_suite_document(write_suite(tmp_path))
    other = tmp_path / "target.yaml"
    other.write_text("kind: host\nruntime: onnxruntime\n")
    assert not is_suite_document(other)


def test_ten_thousand_cases_expand_fast():
    data = {
        "dataset": "digits",
        "thresholds": {"accuracy": 0.9},
        "models": {f"m{i}": {"model": f"m{i}.onnx"} for i in range(100)},
        "optimizers": {f"o{j}": [{"type": "x", "parameters": {"j": j}}] for j in range(100)},
    }
    start = time.process_time()  # CPU time: a loaded machine must not fail this
    suite = parse_suite(data, "big.yaml", "big")
    pairs = suite.expand(["host-onnxruntime"])
    elapsed = time.process_time() - start
    assert len(pairs) == 10_000
    assert elapsed < 1.5, elapsed

"""The scenario library: validation, building from JSON, the compile chain, runs, results."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from kenning_hil.blocks.entries import load_scenario, validate_scenario
from kenning_hil.core.errors import ConfigurationError, InputSizeError, ModelLoadError
from kenning_hil.core.optimizer import Optimizer
from kenning_hil.datasets.digits import DigitsDataset
from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.run.pipeline import Pipeline, build_pipeline, run_scenario
from kenning_hil.runtimes.onnxruntime import ONNXRuntime

REPO_ROOT = Path(__file__).resolve().parents[1]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
DEMO = REPO_ROOT / "scenarios" / "digits-onnxruntime.json"


def scenario(**overrides) -> dict:
    base = {
        "dataset": {"type": "digits", "parameters": {}},
        "model_wrapper": {"type": "onnx", "parameters": {"model_path": str(DIGITS_MODEL)}},
        "runtime": {
            "type": "onnxruntime",
            "parameters": {"disable_performance_measurements": True},
        },
    }
    base.update(overrides)
    return base


class ShapeInference(Optimizer):
    """A real ONNX -> ONNX pass (shape inference), recording the io spec it was given."""

    input_formats = ["onnx"]
    output_formats = ["onnx"]

    def compile(self, input_model_path, io_spec=None):
        self.received = (Path(input_model_path), io_spec)
        model = onnx.shape_inference.infer_shapes(onnx.load(str(input_model_path)))
        onnx.save(model, str(self.compiled_model_path))
        self.save_io_specification(input_model_path, io_spec)

    def get_framework_and_version(self):
        return "onnx-shape-inference", onnx.__version__


def test_demo_scenario_runs_with_held_out_accuracy(tmp_path):
    result = run_scenario(DEMO)
    assert result.name == "digits-onnxruntime"
    assert result.samples == 359 and result.accuracy >= 0.95
    assert result.latency.count == 359 and 0 < result.latency.p50 <= result.latency.p95
    summary = result.summary()
    assert summary["accuracy"] == result.accuracy
    assert summary["compiled_model_size"] == DIGITS_MODEL.stat().st_size
    written = json.loads(result.save(tmp_path / "out" / "r.json").read_text())
    assert written["summary"]["samples"] == 359
    assert written["accuracy"] == result.accuracy
    assert len(written["target_inference_step"]) == 359
    assert written["build_cfg"] == json.loads(DEMO.read_text())
    assert written["model_framework"] == "onnx" and written["runtime"] == "ONNXRuntime"


def test_samples_limits_the_run():
    result = run_scenario(scenario(), samples=25)
    assert result.samples == 25 and len(result.measurements["target_inference_step"]) == 25


def test_batches_and_dotted_class_paths():
    result = run_scenario(
        scenario(dataset={"type": "kenning_hil.datasets.digits.DigitsDataset",
                          "parameters": {"batch_size": 10}})
    )
    assert result.samples == 359 and result.latency.count == 36


def test_optimizer_chain_passes_model_and_io_spec(tmp_path):
    dataset = DigitsDataset()
    wrapper = ONNXWrapper(DIGITS_MODEL, dataset)
    first = ShapeInference(dataset, tmp_path / "first.onnx")
    second = ShapeInference(dataset, tmp_path / "second.onnx")
    pipeline = Pipeline(dataset, wrapper, ONNXRuntime(), [first, second], name="chain")
    source_dir = sorted(DIGITS_MODEL.parent.iterdir())
    compiled = pipeline.compile()
    assert sorted(DIGITS_MODEL.parent.iterdir()) == source_dir  # nothing written there
    assert compiled == tmp_path / "second.onnx"
    assert first.received == (DIGITS_MODEL, wrapper.get_io_specification())
    assert second.received[0] == tmp_path / "first.onnx"
    assert second.received[1] == wrapper.get_io_specification()
    result = pipeline.run()
    assert result.compiled_model_path == compiled and result.accuracy >= 0.95
    assert result.to_dict()["compilers"] == [
        {"compiler_framework": "onnx-shape-inference", "compiler_version": onnx.__version__}
    ] * 2


def test_real_quantisation_chain(tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    compiled = tmp_path / "digits-int8.onnx"
    result = run_scenario(
        scenario(optimizers=[{"type": "onnxruntime-quant",
                              "parameters": {"compiled_model_path": str(compiled)}}])
    )
    assert result.compiled_model_path == compiled and compiled.is_file()
    ops = {node.op_type for node in onnx.load(str(compiled)).graph.node}
    assert "QuantizeLinear" in ops
    assert result.accuracy >= 0.93


def test_runtime_that_cannot_take_the_model_is_refused_before_anything_runs():
    with pytest.raises(ConfigurationError,
                       match="LiteRTRuntime takes tflite models; ONNXWrapper before it "
                       "writes onnx"):
        build_pipeline(scenario(runtime={"type": "litert", "parameters": {}}))


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"datasets": {}}, "datasets: unknown key \\(did you mean 'dataset'\\?\\)"),
        ({"runtime": None}, "runtime: must be an object"),
        ({"runtime": {"type": "onnxruntime", "params": {}}}, "runtime: unknown key 'params'"),
        ({"runtime": {"parameters": {}}}, "runtime: key 'type' must be a string"),
        ({"optimizers": {}}, "'optimizers' must be a list"),
        ({"optimizers": [3]}, "optimizers\\[0\\]: must be an object"),
    ],
)
def test_structure_errors(bad, message):
    with pytest.raises(ConfigurationError, match=message):
        validate_scenario(scenario(**bad))


def test_missing_required_entry():
    broken = scenario()
    del broken["model_wrapper"]
    with pytest.raises(ConfigurationError, match="missing key 'model_wrapper'"):
        build_pipeline(broken)


def test_unknown_type_names_the_kind_and_known_names():
    with pytest.raises(ConfigurationError, match="unknown dataset type 'mnist' \\(known: .*digits"):
        build_pipeline(scenario(dataset={"type": "mnist"}))
    with pytest.raises(ConfigurationError, match="cannot import module 'no.such'"):
        build_pipeline(scenario(dataset={"type": "no.such.Dataset"}))
    with pytest.raises(ConfigurationError, match="is not a Runtime"):
        build_pipeline(scenario(runtime={"type": "kenning_hil.datasets.digits.DigitsDataset"}))


def test_wrong_typed_parameter_names_entry_key_and_type():
    with pytest.raises(ConfigurationError) as error:
        build_pipeline(scenario(dataset={"type": "digits", "parameters": {"batch_size": "8"}}))
    assert str(error.value) == (
        "scenario: dataset.parameters.batch_size: DigitsDataset: parameter 'batch_size' must "
        "be an integer, got '8' (string)"
    )


def test_bad_models_and_inputs_keep_their_error_types(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_pipeline(scenario(model_wrapper={"type": "onnx",
                                               "parameters": {"model_path": "nope.onnx"}}))
    from onnx_test_models import gemm_softmax_model

    small = gemm_softmax_model(tmp_path / "small.onnx", 16, 10)
    pipeline = build_pipeline(
        scenario(model_wrapper={"type": "onnx", "parameters": {"model_path": str(small)}})
    )
    with pytest.raises(InputSizeError):
        pipeline.run()


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "digits.onnx").write_bytes(DIGITS_MODEL.read_bytes())
    path = tmp_path / "scenarios" / "s.json"
    path.parent.mkdir()
    path.write_text(json.dumps(
        scenario(model_wrapper={"type": "onnx", "parameters": {"model_path": "m/digits.onnx"}})
    ))
    monkeypatch.chdir(tmp_path)
    result = run_scenario(path, samples=5)
    assert result.name == "s" and result.samples == 5


def test_load_scenario_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_scenario(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigurationError, match="broken.json is not valid JSON"):
        load_scenario(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ConfigurationError, match="list.json: must be a JSON object"):
        load_scenario(listed)


def test_result_without_latencies_or_accuracy():
    from kenning_hil.core.measurements import Measurements
    from kenning_hil.run.pipeline import RunResult

    result = RunResult("empty", Measurements(), Path("m.onnx"))
    assert result.latency is None and result.accuracy is None and result.samples == 0
    assert result.summary() == {"name": "empty", "samples": 0}

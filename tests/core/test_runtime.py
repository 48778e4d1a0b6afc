"""Runtime base class: io spec handling, (de)quantisation, layer order, bytes, local runs and
inference sessions. Runs real models: ONNX Runtime, and a NumPy executor of the digits graph
that uses only the base class's default per-batch path."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx_test_models import identity_model

from kenning_hil.core.errors import ConfigurationError, InputSizeError, ModelNotLoadedError
from kenning_hil.core.iospec import dequantize, io_spec_path, quantize
from kenning_hil.core.measurements import MeasurementsCollector
from kenning_hil.core.runtime import Runtime, model_size
from kenning_hil.datasets.digits import DigitsDataset
from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.runtimes.onnxruntime import ONNXRuntime

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"


class NumpyMLPRuntime(Runtime):
    """Executes the digits graph (Gemm, Relu, Gemm, Softmax) with NumPy; overrides nothing of
    the per-batch path, so run_locally goes through load_input / run / extract_raw_output."""

    input_formats = ["onnx"]

    def prepare_model(self, input_data):
        model = onnx.load_from_string(input_data) if input_data else onnx.load(str(self.model_path))
        weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.layers = [(weights["fc1_weight"], weights["fc1_bias"]),
                       (weights["fc2_weight"], weights["fc2_bias"])]
        self._input = self._output = None
        return True

    def load_input(self, input_data):
        (self._input,) = input_data
        return True

    def run(self):
        if not hasattr(self, "layers"):
            raise ModelNotLoadedError("no model")
        (w1, b1), (w2, b2) = self.layers
        hidden = np.maximum(self._input @ w1.T + b1, 0)
        logits = hidden @ w2.T + b2
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        self._output = [(exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)]

    def extract_raw_output(self):
        return self._output


QUANTIZED_SPEC = {
    "input": [{"name": "q", "shape": [-1, 4], "dtype": "int8", "prequantized_dtype": "float32",
               "scale": 0.25, "zero_point": 3}],
    "output": [{"name": "q_out", "shape": [-1, 4], "dtype": "int8",
                "prequantized_dtype": "float32", "scale": 0.25, "zero_point": 3}],
}


@pytest.fixture
def quantized_runtime(tmp_path):
    model = identity_model(tmp_path / "q.onnx", [("q", "int8", [None, 4])])
    io_spec_path(model).write_text(json.dumps(QUANTIZED_SPEC))
    runtime = ONNXRuntime()
    runtime.model_path = model
    assert runtime.prepare_local()
    return runtime


def test_preprocess_input_quantizes_as_the_spec_says(quantized_runtime):
    x = np.array([[0.1, -0.9, 40.0, -1.0], [0.125, 0.375, 0.0, 0.5]], dtype=np.float32)
    (q,) = quantized_runtime.preprocess_input(x.tobytes())
    assert q.dtype == np.int8 and q.shape == (2, 4)
    np.testing.assert_array_equal(q, quantize(x, 0.25, 3, "int8"))
    assert q[0, 2] == 127  # saturated


def test_postprocess_output_dequantizes(quantized_runtime):
    raw = np.array([[-128, 0, 3, 127]], dtype=np.int8)
    (y,) = quantized_runtime.postprocess_output([raw])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, dequantize(raw, 0.25, 3))


def test_infer_runs_the_whole_quantized_path(quantized_runtime, tmp_path):
    wrapper = ONNXWrapper(quantized_runtime.model_path)
    x = np.array([[0.3, -0.6, 1.1, 2.0]], dtype=np.float32)
    (y,) = quantized_runtime.infer([x], wrapper)
    np.testing.assert_array_equal(y, dequantize(quantize(x, 0.25, 3, "int8"), 0.25, 3))
    (raw,) = quantized_runtime.extract_raw_output()
    assert raw.dtype == np.int8


@pytest.mark.parametrize("size", [0, 3, 5, 17])
def test_wrong_input_size_is_an_input_size_error(quantized_runtime, size):
    with pytest.raises(InputSizeError, match="expected a positive multiple of 16 bytes") as error:
        quantized_runtime.prepare_input(b"\0" * size)
    assert isinstance(error.value, ValueError)  # the seed's contract


def test_inputs_and_outputs_follow_the_layer_order(tmp_path):
    model = identity_model(tmp_path / "m.onnx", [("a", "float32", [None, 2]),
                                                  ("b", "int16", [None, 3])])
    # the wrapper's order is b, a; compiled (model) order a, b
    spec = {
        "input": [{"name": "b", "shape": [-1, 3], "dtype": "int16", "order": 1},
                  {"name": "a", "shape": [-1, 2], "dtype": "float32", "order": 0}],
        "output": [{"name": "b_out", "shape": [-1, 3], "dtype": "int16", "order": 1},
                   {"name": "a_out", "shape": [-1, 2], "dtype": "float32", "order": 0}],
    }
    runtime = ONNXRuntime()
    runtime.prepare_io_specification(json.dumps(spec).encode())  # spec before model, as served
    runtime.prepare_model(model.read_bytes())
    a = np.array([[1.5, 2.5]], dtype=np.float32)
    b = np.array([[7, 8, 9]], dtype=np.int16)
    prepared = runtime.preprocess_input(b.tobytes() + a.tobytes())
    np.testing.assert_array_equal(prepared[0], a)
    np.testing.assert_array_equal(prepared[1], b)
    runtime.load_input(prepared)
    runtime.run()
    out_b, out_a = runtime.extract_output()
    np.testing.assert_array_equal(out_a, a)
    np.testing.assert_array_equal(out_b, b)


def test_io_specification_from_bytes_file_or_model(tmp_path):
    runtime = ONNXRuntime()
    with pytest.raises(ConfigurationError, match="not JSON"):
        runtime.prepare_io_specification(b"{not json")
    with pytest.raises(ConfigurationError, match="missing key 'output'"):
        runtime.prepare_io_specification(b'{"input": []}')
    copy = tmp_path / "digits.onnx"
    copy.write_bytes(DIGITS_MODEL.read_bytes())
    runtime.model_path = copy
    runtime.prepare_local()  # no .json next to the copy: read from the session
    assert runtime.input_spec == [{"name": "pixels", "shape": [-1, 64], "dtype": "float32"}]
    assert runtime.get_io_spec_path(copy) == io_spec_path(copy)


def test_without_io_specification_nothing_is_converted(tmp_path):
    runtime = NumpyMLPRuntime()
    runtime.model_path = DIGITS_MODEL
    runtime.prepare_model(None)
    arrays = [np.ones((1, 64), np.float32)]
    assert runtime.convert_input_arrays(arrays) == arrays
    assert runtime.postprocess_output(arrays) == arrays
    with pytest.raises(ModelNotLoadedError, match="no io specification"):
        runtime.preprocess_input(b"\0" * 256)


def test_model_not_loaded_errors():
    runtime = ONNXRuntime()
    with pytest.raises(ModelNotLoadedError):
        runtime.run()
    with pytest.raises(ModelNotLoadedError):
        runtime.load_input([np.zeros((1, 64), np.float32)])
    with pytest.raises(ModelNotLoadedError):
        runtime.extract_output()
    with pytest.raises(ModelNotLoadedError):
        NumpyMLPRuntime().run()


def test_run_locally_returns_the_runs_measurements():
    MeasurementsCollector.clear()
    dataset = DigitsDataset(batch_size=4)
    measurements = ONNXRuntime(disable_performance_measurements=True).run_locally(
        dataset, ONNXWrapper(DIGITS_MODEL, dataset), DIGITS_MODEL
    )
    assert measurements["total"] == 359 and measurements["accuracy"] >= 0.95
    steps = measurements["target_inference_step"]
    stamps = measurements["target_inference_step_timestamp"]
    assert len(steps) == len(stamps) == 90 and all(s > 0 for s in steps)
    assert stamps == sorted(stamps)
    assert all(later - start >= step for start, later, step in zip(stamps, stamps[1:], steps))
    assert measurements["compiled_model_size"] == DIGITS_MODEL.stat().st_size
    assert not any(key.startswith("session_utilization") for key in measurements)
    # merged into the global collector too, as the seed does
    assert MeasurementsCollector.measurements.get_values("target_inference_step") == steps


def test_run_locally_through_the_default_batch_path_matches_onnxruntime():
    dataset = DigitsDataset(batch_size=5)
    wrapper = ONNXWrapper(DIGITS_MODEL, dataset)
    numpy_run = NumpyMLPRuntime(disable_performance_measurements=True).run_locally(
        dataset, wrapper, DIGITS_MODEL
    )
    ort_run = ONNXRuntime(disable_performance_measurements=True).run_locally(
        dataset, wrapper, DIGITS_MODEL
    )
    assert numpy_run["accuracy"] == ort_run["accuracy"] >= 0.95
    assert numpy_run["eval_confusion_matrix"] == ort_run["eval_confusion_matrix"]
    assert len(numpy_run["target_inference_step"]) == 72


def test_run_locally_rejects_inputs_of_the_wrong_size(tmp_path):
    from onnx_test_models import gemm_softmax_model

    model = gemm_softmax_model(tmp_path / "small.onnx", 32, 10)
    dataset = DigitsDataset()
    with pytest.raises(InputSizeError, match="'x' expects samples of shape \\[32\\].*\\[64\\]"):
        ONNXRuntime().run_locally(dataset, ONNXWrapper(model, dataset), model)


def test_inference_session_collects_system_statistics():
    runtime = ONNXRuntime()
    runtime.stats_step = 0.01
    runtime.inference_session_start()
    time.sleep(0.08)
    stats = runtime.inference_session_end()
    assert len(stats["session_utilization_mem_percent"]) >= 3
    assert all(0 < m <= 100 for m in stats["session_utilization_mem_percent"])
    assert runtime.inference_session_end().data == {}  # no session open: nothing
    disabled = ONNXRuntime(disable_performance_measurements=True)
    disabled.inference_session_start()
    assert disabled.inference_session_end().data == {}


def test_run_locally_includes_session_statistics():
    dataset = DigitsDataset(subset="all")
    runtime = ONNXRuntime()
    runtime.stats_step = 0.002
    measurements = runtime.run_locally(dataset, ONNXWrapper(DIGITS_MODEL, dataset), DIGITS_MODEL)
    assert len(measurements["session_utilization_cpus_percent"]) >= 1


def test_consult_model_type_and_formats():
    runtime = ONNXRuntime()
    assert runtime.get_input_formats() == ["onnx"]
    assert runtime.consult_model_type(ONNXWrapper(DIGITS_MODEL)) == "onnx"


def test_model_size_of_files_and_directories(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "lib" / "b.bin").write_bytes(b"x" * 5)
    assert model_size(tmp_path / "lib") == 15
    assert model_size(tmp_path / "lib" / "a.bin") == 10


def test_a_received_model_is_saved_where_asked_and_an_unwritable_path_is_a_clear_error(tmp_path):
    from kenning_hil.core.errors import ModelLoadError
    from kenning_hil.core.runtime import save_received_model

    target = tmp_path / "sub" / "model.onnx"
    assert save_received_model(b"model bytes", target) == target
    assert target.read_bytes() == b"model bytes"
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelLoadError, match=r"cannot save the received model to .*file/model"):
        save_received_model(b"x", blocker / "model.onnx")

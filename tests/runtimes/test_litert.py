"""LiteRT runtime and the TFLite flatbuffer reader, on the project's digits int8 model and
(when the models path has them) the MLPerf Tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kenning_hil.core.errors import KenningHILError, ModelLoadError
from kenning_hil.datasets.mlperf_tiny import MLPERF_TINY_MODELS, mlperf_tiny_model_path
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file, read_tflite_model
from kenning_hil.modelwrappers.tflite import TFLiteWrapper
from kenning_hil.runtimes.litert import LiteRTRuntime

from .tflite_edits import replace_operator

litert = pytest.importorskip(
    "ai_edge_litert.interpreter",
    reason="needs the 'litert' extra: pip install 'kenning-hil[litert]'",
)


def _mlperf(name: str, models_dir: Path):
    model = next(m for m in MLPERF_TINY_MODELS if m.name == name)
    path = mlperf_tiny_model_path(model, models_dir)
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny model {path} absent (set KENNING_HIL_MODELS)")
    return path


@pytest.mark.parametrize("name", [m.name for m in MLPERF_TINY_MODELS])
def test_flatbuffer_reader_agrees_with_litert(name, models_dir):
    path = _mlperf(name, models_dir)
    info = read_tflite_file(path)
    interpreter = litert.Interpreter(model_path=str(path))
    for ours, theirs in zip(info.inputs + info.outputs,
                            interpreter.get_input_details() + interpreter.get_output_details()):
        assert ours.name == theirs["name"]
        assert ours.shape == list(theirs["shape"])
        assert np.dtype(ours.dtype) == np.dtype(theirs["dtype"])
        assert ours.scale == pytest.approx([theirs["quantization"][0]])
        assert ours.zero_point == [theirs["quantization"][1]]
    assert len(info.operators) == len(interpreter._get_ops_details())


def test_reference_kernels_run_digits_as_accurately_as_default(
    digits_int8_tflite, digits_dataset
):
    wrapper = TFLiteWrapper(digits_int8_tflite, digits_dataset)
    accuracies = [
        LiteRTRuntime(reference_kernels=ref).run_locally(
            digits_dataset, wrapper, digits_int8_tflite)["accuracy"]
        for ref in (False, True)
    ]
    assert accuracies[0] == accuracies[1] > 0.95


def test_wrapper_io_spec_is_read_from_the_flatbuffer(digits_int8_tflite, tmp_path):
    copy = tmp_path / "copy.tflite"  # no .json beside it
    copy.write_bytes(digits_int8_tflite.read_bytes())
    spec = TFLiteWrapper(copy).get_io_specification()
    assert spec["input"][0]["dtype"] == "int8" and spec["input"][0]["shape"] == [1, 64]
    assert spec["output"][0]["scale"] == pytest.approx(1 / 256)


def test_wrapper_host_inference_matches_runtime(digits_int8_tflite, digits_dataset):
    wrapper = TFLiteWrapper(digits_int8_tflite, digits_dataset)
    wrapper.prepare_model()
    (x,), _ = next(iter(digits_dataset.iter_chunks(5)))
    runtime = LiteRTRuntime(model_path=digits_int8_tflite)
    runtime.prepare_local()
    expected = runtime.postprocess_output(runtime.run_batch(runtime.convert_input_arrays([x])))
    np.testing.assert_array_equal(wrapper.run_inference([x])[0], expected[0])


def test_model_received_as_bytes_is_saved(digits_int8_tflite, tmp_path):
    target = tmp_path / "received" / "model.tflite"
    runtime = LiteRTRuntime(save_model_path=target)
    assert runtime.prepare_model(digits_int8_tflite.read_bytes())
    assert target.read_bytes() == digits_int8_tflite.read_bytes()
    assert runtime.prepare_io_specification(None)
    assert runtime.input_spec[0]["dtype"] == "int8"


@pytest.mark.parametrize("cut", [7, 100, -40])
def test_corrupt_tflite_names_the_file(digits_int8_tflite, tmp_path, cut):
    broken = tmp_path / "broken.tflite"
    data = digits_int8_tflite.read_bytes()
    broken.write_bytes(data[:cut] if cut > 0 else data[:cut])
    runtime = LiteRTRuntime(model_path=broken)
    with pytest.raises(ModelLoadError, match=r"broken\.tflite: not a (valid TFLite|TFLite model)"):
        runtime.prepare_local()
    with pytest.raises(ModelLoadError, match=r"broken\.tflite"):
        TFLiteWrapper(broken).get_io_specification()


def test_not_a_tflite_file_is_named(tmp_path):
    other = tmp_path / "model.onnx.tflite"
    other.write_bytes(b"\x08\x07\x12\x0bpytorch" + bytes(64))
    with pytest.raises(ModelLoadError, match="not a TFLite model .*file identifier"):
        read_tflite_file(other)


def test_operator_the_runtime_lacks_is_a_clear_error(digits_int8_tflite):
    # Turn FULLY_CONNECTED into an operator code beyond LiteRT's builtin table.
    data = replace_operator(digits_int8_tflite.read_bytes(), "FULLY_CONNECTED", 250)
    assert "BUILTIN_250" in read_tflite_model(data).operators
    with pytest.raises(KenningHILError, match="LiteRTRuntime cannot load the model: .*250"):
        LiteRTRuntime().prepare_model(data)

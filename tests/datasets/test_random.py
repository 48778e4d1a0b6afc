"""RandomDataset: seeded inputs shaped and typed by an io specification."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.datasets.random import RandomDataset

SPEC = {
    "input": [
        {"name": "image", "shape": [1, 4, 4, 3], "dtype": "float32"},
        {"name": "ids", "shape": [-1, 5], "dtype": "int16"},
        {
            "name": "q",
            "shape": [-1, 6],
            "dtype": "int8",
            "prequantized_dtype": "float32",
            "scale": 0.1,
            "zero_point": -28,
        },
    ],
    "output": [{"name": "y", "shape": [-1, 2], "dtype": "float32"}],
}


def test_inputs_follow_the_io_specification():
    dataset = RandomDataset(io_specification=SPEC, samples=200, batch_size=200,
                            distribution="uniform")
    (image, ids, q), _ = next(iter(dataset))
    assert image.shape == (200, 4, 4, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert ids.dtype == np.int16 and ids.min() < -10000 and ids.max() > 10000
    # uniform: float data for a quantised tensor spans its representable range
    assert q.dtype == np.float32
    assert q.min() >= (-128 + 28) * 0.1 - 1e-5 and q.max() <= (127 + 28) * 0.1 + 1e-5
    assert q.min() < -8 and q.max() > 14


def test_spread_inputs_lie_around_the_zero_point_in_quantisation_steps():
    """The default draw (#23 finding 4): normal around the zero point (real value 0), 32
    steps of standard deviation for int8, whole steps, within the representable range."""
    (_, _, q), _ = next(iter(RandomDataset(io_specification=SPEC, samples=400, batch_size=400)))
    steps = q / 0.1
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert abs(float(steps.mean())) < 2 and 28 < float(steps.std()) < 36
    assert q.min() >= (-128 + 28) * 0.1 - 1e-5 and q.max() <= (127 + 28) * 0.1 + 1e-5
    # a zero point at the edge of the range (unsigned data shifted to int8) is moved inward,
    # so half the draws are not clipped to one value
    edge = {"input": [{**SPEC["input"][2], "zero_point": -128}], "output": SPEC["output"]}
    (q,), _ = next(iter(RandomDataset(io_specification=edge, samples=400, batch_size=400)))
    assert float((q <= 1e-6).mean()) < 0.05


def test_spread_inputs_give_distinct_outputs_where_uniform_ones_do_not(models_dir):
    """MLPerf Tiny VWW under LiteRT's reference kernels: uniform int8 noise images drive it to
    a handful of outputs (3 of 20 measured), the spread draw's smooth images to many."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter",
                                             reason="needs the 'litert' extra")
    from kenning_hil.formats.tflite_flatbuffer import read_tflite_file
    from kenning_hil.judge.agreement import distinct_outputs

    path = models_dir / "mlperf_tiny" / "vww_96_int8.tflite"
    if not path.is_file():
        pytest.skip(f"MLPerf Tiny model {path} absent")
    spec = read_tflite_file(path).io_specification()
    interpreter = interpreter_module.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=interpreter_module.OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    entry, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = entry["quantization"]
    counts = {}
    for distribution in ("uniform", "spread"):
        dataset = RandomDataset(io_specification=spec, samples=20, distribution=distribution)
        outputs = []
        for x in dataset.get_data()[0][0]:
            quantised = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)
            interpreter.set_tensor(entry["index"], quantised[None])
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(out["index"]).copy())
        counts[distribution] = distinct_outputs([np.concatenate(outputs)])
    assert counts["spread"] >= 10 > counts["uniform"], counts


def test_samples_are_seeded_and_independent_of_batching():
    whole = RandomDataset(io_specification=SPEC, samples=10, seed=3).get_data()[0]
    batched = RandomDataset(io_specification=SPEC, samples=10, seed=3, batch_size=3)
    parts = [x for x, _ in batched]
    for index in range(3):
        np.testing.assert_array_equal(np.concatenate([p[index] for p in parts]), whole[index])
    other = RandomDataset(io_specification=SPEC, samples=10, seed=4).get_data()[0]
    assert not np.array_equal(other[0], whole[0])
    limited = RandomDataset(io_specification=SPEC, samples=10, seed=3)
    limited.set_sample_limit(4)
    np.testing.assert_array_equal(limited.get_data()[0][1], whole[1][:4])


def test_value_range_for_plain_float_inputs():
    dataset = RandomDataset(io_specification=SPEC, samples=50, low=-2.0, high=-1.0)
    image = dataset.get_data()[0][0]
    assert -2.0 <= image.min() and image.max() <= -1.0


def test_io_spec_from_a_file_or_a_model_path(tmp_path):
    model = tmp_path / "m.tflite"
    (tmp_path / "m.tflite.json").write_text(json.dumps(SPEC))
    from_model = RandomDataset(io_spec_path=model, samples=2)
    from_file = RandomDataset(io_spec_path=tmp_path / "m.tflite.json", samples=2)
    np.testing.assert_array_equal(from_model.get_data()[0][0], from_file.get_data()[0][0])
    json_built = RandomDataset.from_json({"io_spec_path": str(model), "samples": 3})
    assert len(json_built) == 3 and json_built.subset == "all"


def test_configuration_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="exactly one of"):
        RandomDataset()
    with pytest.raises(ConfigurationError, match="does not exist"):
        RandomDataset(io_spec_path=tmp_path / "missing.onnx")
    with pytest.raises(ConfigurationError, match="distribution must be one of spread, uniform"):
        RandomDataset(io_specification=SPEC, distribution="gaussian")
    with pytest.raises(ConfigurationError, match="samples must be >= 1"):
        RandomDataset(io_specification=SPEC, samples=0)
    with pytest.raises(ConfigurationError, match="input\\[0\\]: missing key 'dtype'"):
        RandomDataset(io_specification={"input": [{"name": "x", "shape": [1]}], "output": []})


def test_evaluation_counts_samples():
    dataset = RandomDataset(io_specification=SPEC, samples=7, batch_size=3)
    from kenning_hil.core.measurements import Measurements

    total = Measurements()
    for x, y in dataset:
        dataset.merge_evaluation(total, dataset.evaluate([np.zeros((len(x[0]), 2))], y))
    assert dataset.compute_quality_metrics(total) == {"total": 7}

"""litert-quant (#23 finding 1): a float32 `.tflite` made by TensorFlow's converter from a
small conv model (trained here on the digits train split, not a shipped file) is quantised to
full int8 by ai-edge-quantizer, calibrated on the run's dataset; it runs on host-litert within
2 accuracy points of the float model, and on qemu-m4 bit-exactly against LiteRT's reference
kernels on 20 samples with at least 10 distinct outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.errors import ModelLoadError
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file
from tests.skips import require_simulation

from .conftest import needs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DIGITS = {"type": "digits", "parameters": {"image_layout": "nhwc"}}
QUANTISE = [{"type": "litert-quant"}]


@pytest.fixture(scope="module")
def float_conv_tflite(tmp_path_factory) -> Path:
    """Conv(8) -> AvgPool -> Conv(16) -> Flatten -> Dense(10) on 8x8 digits, float32,
    written by TensorFlow's converter (operators the firmware runs). Logits, not a softmax:
    confident softmax outputs saturate to a few int8 vectors (11 distinct of 20 samples
    measured), which would make the bit-exactness check below check few outputs."""
    needs("tensorflow", "tensorflow")
    from kenning_hil.datasets.digits import DigitsDataset
    from kenning_hil.optimizers.onnx_to_tensorflow import import_tensorflow

    tf = import_tensorflow("a float test model")
    dataset = DigitsDataset(image_layout="nhwc")
    train_x, _, train_y, _ = dataset.train_test_split_representations()
    x = np.concatenate(dataset.prepare_input_samples(train_x)[0:1])
    y = np.asarray(dataset.prepare_output_samples(train_y)[0]).reshape(-1)
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 1), batch_size=1),
        tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        tf.keras.layers.AveragePooling2D(2),
        tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ])
    model.compile(tf.keras.optimizers.Adam(0.01),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("float-conv") / "digits-conv-float.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def catalog_target(name: str):
    from kenning_hil.targets import Target
    from kenning_hil.targets.catalog import TargetCatalog

    target = Target(TargetCatalog([REPO / "targets"]).get(name))
    available, reason = target.availability()
    if not available:
        pytest.skip(f"target {name} not available here: {reason}")
    return target


def test_float_model_is_quantised_to_full_int8(float_conv_tflite, tmp_path):
    needs("ai_edge_quantizer", "litert")
    from kenning_hil.datasets.digits import DigitsDataset

    source = read_tflite_file(float_conv_tflite)
    assert {t.dtype for t in source.inputs + source.outputs} == {"float32"}
    cls = resolve_class("optimizer", "litert-quant")
    out = tmp_path / "int8.tflite"
    cls(DigitsDataset(image_layout="nhwc"), out).compile(float_conv_tflite)
    info = read_tflite_file(out)
    assert info.operators == source.operators  # no QUANTIZE/DEQUANTIZE added
    assert [t.dtype for t in info.inputs + info.outputs] == ["int8", "int8"]
    filters = [t for t in info.tensors if t.constant and len(t.shape) == 4]
    assert filters and all(t.type_name == "INT8" for t in filters)
    # per-channel weights: every conv filter has one scale per output channel
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(out)).get_tensor_details()
    conv_filters = [d for d in details if len(d["shape"]) == 4 and d["dtype"] == np.int8
                    and len(d["quantization_parameters"]["scales"]) > 1]
    assert sorted(d["shape"][0] for d in conv_filters) == [8, 16]  # both convolutions
    for d in conv_filters:
        assert len(d["quantization_parameters"]["scales"]) == d["shape"][0], d["name"]
    import json

    spec = json.loads(Path(str(out) + ".json").read_text())
    assert spec["input"][0]["dtype"] == "int8" and spec["input"][0]["name"] == (
        source.inputs[0].name)
    from kenning_hil.sim.firmware_ops import load_refusal

    data = out.read_bytes()
    assert load_refusal(data, len(data), 3670016) is None  # the firmware would load it
    with pytest.raises(ModelLoadError, match="quantised already"):
        cls(DigitsDataset(image_layout="nhwc"), tmp_path / "again.tflite").compile(out)


def test_quantised_accuracy_within_two_points_on_host_litert(float_conv_tflite, harness):
    needs("ai_edge_quantizer", "litert")
    target = catalog_target("host-litert")
    float_run = harness.run(target, harness.request(float_conv_tflite, DIGITS), "lq::float")
    int8_run = harness.run(
        target, harness.request(float_conv_tflite, DIGITS, QUANTISE), "lq::int8")
    print(f"\nfloat accuracy {float_run.accuracy:.4f}, int8 {int8_run.accuracy:.4f} "
          f"({float_run.samples} samples)")
    assert float_run.samples == int8_run.samples == 359
    assert float_run.accuracy >= 0.9
    assert abs(float_run.accuracy - int8_run.accuracy) <= 0.02


def test_quantised_model_on_qemu_m4_is_bit_exact_with_litert_reference(
    float_conv_tflite, harness
):
    needs("ai_edge_quantizer", "litert")
    require_simulation("target qemu-m4")
    from kenning_hil.judge.agreement import OutputTolerance
    from kenning_hil.run.comparison import compare_on_targets

    reference, board = catalog_target("host-litert-ref"), catalog_target("qemu-m4")
    request = harness.request(float_conv_tflite, DIGITS, QUANTISE, samples=20)
    comparison = compare_on_targets(harness, [reference, board], request, "lq::qemu",
                                    OutputTolerance())
    pair = comparison.pair("qemu-m4")
    print("\n" + comparison.summary())
    assert pair.samples == 20 and pair.exact_samples == 20, pair.failure()
    assert pair.distinct_outputs >= 10
    assert comparison.results["qemu-m4"].latency.unit == "instructions"
    assert os.path.getsize(comparison.results["qemu-m4"].compiled_model_path) < 20000

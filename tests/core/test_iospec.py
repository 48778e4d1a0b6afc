"""Tests of kenning_hil.core.iospec: validation, files, entry helpers, (de)quantisation."""

import copy
import ctypes
import ctypes.util
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kenning_hil.core.errors import ConfigurationError, InputSizeError
from kenning_hil.core.iospec import (
    dequantize,
    dequantize_entry,
    input_entries,
    io_spec_path,
    is_quantized,
    load_io_specification,
    numpy_dtype,
    output_entries,
    quantize,
    quantize_entry,
    save_io_specification,
    tensor_nbytes,
    tensor_shape,
    validate_io_specification,
)


def make_spec() -> dict:
    return {
        "input": [
            {
                "name": "input_1",
                "shape": [-1, 49, 10, 1],
                "dtype": "int8",
                "prequantized_dtype": "float32",
                "scale": 0.5847029089927673,
                "zero_point": 83,
            }
        ],
        "output": [
            {"name": "probs", "shape": [1, 12], "dtype": "float32", "class_names": ["a"]},
        ],
    }


# Validation


def test_valid_spec_is_returned_unchanged():
    spec = make_spec()
    expected = copy.deepcopy(spec)
    assert validate_io_specification(spec) is spec
    assert spec == expected


def test_per_channel_and_processed_sections_are_valid():
    spec = make_spec()
    spec["output"][0].update(dtype="int8", scale=[0.1, 0.2], zero_point=[0, -3], order=0)
    spec["processed_output"] = [{"name": "label", "shape": [1], "dtype": "int64"}]
    validate_io_specification(spec)


def _set(section, index, key, value):
    def mutate(spec):
        spec[section][index][key] = value

    return mutate


def _delete(section, index, key):
    def mutate(spec):
        del spec[section][index][key]

    return mutate


@pytest.mark.parametrize(
    "mutate, fragments",
    [
        (_set("input", 0, "dtype", "flaot32"), ["input[0]", "'dtype'", "'flaot32'"]),
        (_set("input", 0, "dtype", "complex64"), ["input[0]", "'dtype'"]),
        (_set("output", 0, "shape", [1, 0]), ["output[0]", "'shape'", "[1, 0]"]),
        (_set("output", 0, "shape", "1x12"), ["output[0]", "'shape'"]),
        (_set("output", 0, "shape", [1, True]), ["output[0]", "'shape'"]),
        (_set("output", 0, "name", 3), ["output[0]", "'name'"]),
        (_delete("input", 0, "name"), ["input[0]", "missing key 'name'"]),
        (_delete("input", 0, "zero_point"), ["input[0]", "'scale' given without 'zero_point'"]),
        (_set("input", 0, "scale", -1.0), ["input[0]", "'scale'", "-1.0"]),
        (_set("input", 0, "scale", float("inf")), ["input[0]", "'scale'"]),
        (_set("input", 0, "zero_point", 1.5), ["input[0]", "'zero_point'", "1.5"]),
        (_set("input", 0, "prequantized_dtype", "int8"), ["input[0]", "'prequantized_dtype'"]),
        (_set("input", 0, "order", -1), ["input[0]", "'order'"]),
    ],
)
def test_validation_errors_name_entry_and_key(mutate, fragments):
    spec = make_spec()
    mutate(spec)
    with pytest.raises(ConfigurationError) as info:
        validate_io_specification(spec, source="kws.tflite.json")
    message = str(info.value)
    assert message.startswith("kws.tflite.json: ")
    for fragment in fragments:
        assert fragment in message


def test_per_channel_length_mismatch_is_reported():
    spec = make_spec()
    spec["input"][0].update(scale=[0.1, 0.2], zero_point=[0, 0, 0])
    with pytest.raises(ConfigurationError, match=r"input\[0\].*same length, got 2 and 3"):
        validate_io_specification(spec)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ([], "must be a JSON object"),
        ({"input": []}, "missing key 'output'"),
        ({"input": [], "output": [], "inputs": []}, "unknown key 'inputs'"),
        ({"input": {}, "output": []}, "'input' must be a list"),
        ({"input": ["x"], "output": []}, "input[0]: must be an object"),
    ],
)
def test_structure_errors(spec, fragment):
    with pytest.raises(ConfigurationError) as info:
        validate_io_specification(spec)
    assert fragment in str(info.value)


def test_order_must_be_complete_and_unique():
    spec = make_spec()
    spec["output"].append({"name": "b", "shape": [1], "dtype": "float32", "order": 0})
    with pytest.raises(ConfigurationError, match="every entry or none"):
        validate_io_specification(spec)
    spec["output"][0]["order"] = 0
    with pytest.raises(ConfigurationError, match=r"0\.\.1, each once, got \[0, 0\]"):
        validate_io_specification(spec)
    spec["output"][0]["order"] = 1
    validate_io_specification(spec)


# Files


def test_io_spec_path_appends_json():
    assert str(io_spec_path("models/m.onnx")) == "models/m.onnx.json"


def test_save_and_load_round_trip(tmp_path):
    path = io_spec_path(tmp_path / "sub" / "model.tflite")
    assert save_io_specification(path, make_spec()) == path
    assert load_io_specification(path) == make_spec()


def test_load_missing_file_is_none(tmp_path):
    assert load_io_specification(tmp_path / "absent.json") is None


def test_load_invalid_json_names_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"input": [')
    with pytest.raises(ConfigurationError, match="broken.json: io specification is not valid JSON"):
        load_io_specification(path)


def test_load_invalid_spec_names_file_and_entry(tmp_path):
    path = tmp_path / "bad.json"
    spec = make_spec()
    spec["output"][0]["dtype"] = "float"
    spec["output"][0]["shape"] = [1, "12"]
    path.write_text(json.dumps(spec))
    with pytest.raises(ConfigurationError) as info:
        load_io_specification(path)
    assert str(path) in str(info.value)
    assert "output[0]" in str(info.value) and "'shape'" in str(info.value)


def test_load_directory_is_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_io_specification(tmp_path)


def test_save_invalid_spec_writes_nothing(tmp_path):
    path = tmp_path / "m.json"
    with pytest.raises(ConfigurationError, match="missing key 'output'"):
        save_io_specification(path, {"input": []})
    assert not path.exists()


# Entry helpers


def test_shapes_dtypes_and_sizes():
    entry = make_spec()["input"][0]
    assert numpy_dtype(entry) == np.int8
    assert tensor_shape(entry) == (1, 49, 10, 1)
    assert tensor_shape(entry, batch=4) == (4, 49, 10, 1)
    assert tensor_nbytes(entry, batch=2) == 2 * 490
    out = make_spec()["output"][0]
    assert tensor_nbytes(out) == 48


def test_dynamic_inner_dimension_is_an_error():
    entry = {"name": "seq", "shape": [1, -1], "dtype": "float32"}
    with pytest.raises(ConfigurationError, match="tensor 'seq'.*dynamic dimension"):
        tensor_shape(entry)


def test_numpy_dtype_rejects_bad_name():
    with pytest.raises(ConfigurationError, match="tensor 'x': key 'dtype'"):
        numpy_dtype({"name": "x", "dtype": "int9"})


def test_is_quantized():
    spec = make_spec()
    assert is_quantized(spec["input"][0])
    assert not is_quantized(spec["output"][0])
    float_with_params = {"name": "f", "shape": [1], "dtype": "float32", "scale": 1.0,
                         "zero_point": 0}
    assert not is_quantized(float_with_params)


def test_entries_sorted_by_order():
    spec = {
        "input": [
            {"name": "a", "shape": [1], "dtype": "float32", "order": 2},
            {"name": "b", "shape": [1], "dtype": "float32", "order": 0},
            {"name": "c", "shape": [1], "dtype": "float32", "order": 1},
        ],
        "output": [
            {"name": "y", "shape": [1], "dtype": "float32"},
            {"name": "x", "shape": [1], "dtype": "float32"},
        ],
    }
    assert [e["name"] for e in input_entries(spec)] == ["b", "c", "a"]
    assert [e["name"] for e in output_entries(spec)] == ["y", "x"]
    assert [e["name"] for e in spec["input"]] == ["a", "b", "c"]  # the spec is not reordered


# Quantisation


def test_half_away_rounding_on_ties():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], dtype=np.float32)
    assert quantize(x, 1.0, 0, "int8").tolist() == [1, 2, 3, -1, -2, -3]
    assert quantize(x, 1.0, 0, "int8", rounding="half_even").tolist() == [0, 2, 2, 0, -2, -2]
    assert quantize(x, 1.0, 0, "int8", rounding="trunc").tolist() == [0, 1, 2, 0, -1, -2]
    # A tie after the division: 1.25 / 0.5 == 2.5.
    assert quantize(np.float32(1.25), 0.5, 0, "int8").item() == 3


def test_just_below_half_rounds_down():
    below_half = np.nextafter(np.float32(0.5), np.float32(0))  # 0.49999997
    assert quantize(np.array([below_half, -below_half]), 1.0, 0, "int8").tolist() == [0, 0]


def test_rounding_matches_c_roundf():
    # std::round on a float is roundf: compare with the C library's on float32 quotients.
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    libm.roundf.restype = ctypes.c_float
    libm.roundf.argtypes = [ctypes.c_float]
    rng = np.random.default_rng(1)
    x = rng.uniform(-40, 40, size=3000).astype(np.float32)
    x[:200] = (np.arange(-100, 100) + 0.5).astype(np.float32) * np.float32(0.25)
    scale = np.float32(0.25)
    expected = [int(libm.roundf(float(v))) for v in x / scale]
    got = quantize(x, float(scale), 0, "int32").tolist()
    assert got == expected


def test_zero_point_and_clipping_at_dtype_limits():
    x = np.array([-1e9, -3.0, 0.0, 3.0, 1e9, np.inf, -np.inf], dtype=np.float32)
    assert quantize(x, 0.1, 5, "int8").tolist() == [-128, -25, 5, 35, 127, 127, -128]
    assert quantize(x, 0.1, 5, "uint8").tolist() == [0, 0, 5, 35, 255, 255, 0]
    assert quantize(x, 0.1, 0, "int16").tolist() == [-32768, -30, 0, 30, 32767, 32767, -32768]
    assert quantize(np.float32(1e12), 1.0, 0, "int32").item() == 2**31 - 1
    assert quantize(np.float32(-1e12), 1.0, 0, "int32").item() == -(2**31)
    assert quantize([1.0], 1.0, 0, "int8").dtype == np.int8


def test_quantize_rejects_bad_arguments():
    with pytest.raises(ConfigurationError, match="integer type"):
        quantize([1.0], 1.0, 0, "float32")
    with pytest.raises(ConfigurationError, match="integer type"):
        quantize([1.0], 1.0, 0, "int64")
    with pytest.raises(ConfigurationError, match="scale"):
        quantize([1.0], 0.0, 0, "int8")
    with pytest.raises(ConfigurationError, match="rounding"):
        quantize([1.0], 1.0, 0, "int8", rounding="up")
    with pytest.raises(InputSizeError, match="NaN"):
        quantize([np.nan], 1.0, 0, "int8")


def test_dequantize_is_float32_affine():
    q = np.array([-128, 0, 83, 127], dtype=np.int8)
    out = dequantize(q, 0.5, 83)
    assert out.dtype == np.float32
    assert out.tolist() == [-105.5, -41.5, 0.0, 22.0]


@settings(max_examples=60, deadline=None)
@given(
    scale=st.floats(1e-4, 10.0),
    zero_point=st.integers(-128, 127),
    dtype=st.sampled_from(["int8", "uint8", "int16"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_within_half_step(scale, zero_point, dtype, seed):
    info = np.iinfo(dtype)
    zero_point = int(np.clip(zero_point, info.min, info.max))
    low, high = (info.min - zero_point) * scale, (info.max - zero_point) * scale
    x = np.random.default_rng(seed).uniform(low, high, size=256).astype(np.float32)
    q = quantize(x, scale, zero_point, dtype)
    assert q.dtype == np.dtype(dtype)
    error = np.abs(dequantize(q, scale, zero_point).astype(np.float64) - x)
    # Half a step, plus float32 rounding of the quotient and the result.
    tolerance = scale / 2 + 1e-6 * max(abs(low), abs(high)) + 1e-6 * scale
    assert error.max() <= tolerance


def test_entry_helpers_use_entry_parameters():
    entry = make_spec()["input"][0]
    x = np.array([0.0, 1.0, -50.0], dtype=np.float32)
    q = quantize_entry(x, entry)
    assert q.tolist() == quantize(x, entry["scale"], 83, "int8").tolist()
    np.testing.assert_allclose(dequantize_entry(q, entry), x, atol=entry["scale"] / 2 + 1e-6)
    with pytest.raises(ConfigurationError, match="tensor 'probs': is not quantised"):
        quantize_entry(x, make_spec()["output"][0])

"""The one {type, parameters} entry: its normaliser, the target-description short form, and
the one model_entry behind hil.run and suites, with each caller's context in its errors."""

import re

import pytest

from kenning_hil.blocks.entries import (
    ENTRY_KEYS,
    ENTRY_SCHEMA,
    inline_entry,
    model_entry,
    normalize_entry,
)
from kenning_hil.core.errors import ConfigurationError
from kenning_hil.run.request import hil_model_entry, optimizer_entries
from kenning_hil.suites.loader import parse_suite
from kenning_hil.suites.schema import SUITE_SCHEMA


def test_normalize_entry_fills_parameters_and_copies_them():
    given = {"type": "tflite", "parameters": {"target": "int8"}}
    entry = normalize_entry(given, "here")
    assert entry == given and entry["parameters"] is not given["parameters"]
    assert normalize_entry({"type": "digits"}, "here") == {"type": "digits", "parameters": {}}


@pytest.mark.parametrize(
    "value, message",
    [
        ("digits", "here must be an object with 'type' and 'parameters', got str"),
        ({"type": "x", "params": {}}, "here: unknown key 'params' (allowed: type, parameters)"),
        ({"parameters": {}}, "here: key 'type' must be a string, got None"),
        ({"type": "x", "parameters": [1]}, "here: key 'parameters' must be an object, got list"),
    ],
)
def test_normalize_entry_errors_name_where(value, message):
    with pytest.raises(ConfigurationError, match=f"^{re.escape(message)}$"):
        normalize_entry(value, "here")


def test_the_suite_schema_uses_the_one_entry_fragment():
    assert ENTRY_KEYS == ("type", "parameters")
    chains = SUITE_SCHEMA["properties"]["optimizers"]["additionalProperties"]
    assert chains["items"] is ENTRY_SCHEMA


def test_inline_entry_merges_parameters_beside_type():
    spec = {"type": "uart", "baudrate": 9600, "parameters": {"baudrate": 115200, "timeout": 5}}
    assert inline_entry(spec, "t.yaml: key 'protocol'") == {
        "type": "uart", "parameters": {"baudrate": 115200, "timeout": 5}}
    with pytest.raises(ConfigurationError, match=r"^t\.yaml: key 'protocol' needs a 'type'"):
        inline_entry({"baudrate": 9600}, "t.yaml: key 'protocol'")


def test_one_model_entry_with_each_callers_context(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert hil_model_entry("m.onnx", [tmp_path]) == {
        "type": "onnx", "parameters": {"model_path": str(model.resolve())}}
    with pytest.raises(ConfigurationError, match=r"^hil\.run: model file 'gone\.onnx' not found"):
        hil_model_entry("gone.onnx", [tmp_path])
    with pytest.raises(ConfigurationError, match=r"^hil\.run: cannot tell the model type of "
                                                 r"'m\.pt' .*; pass model="):
        hil_model_entry("m.pt", [tmp_path])
    # a suite keeps a missing file as given (it still collects) and names its file and key
    assert model_entry("gone.onnx", [tmp_path], "s.yaml: key 'models.d.model'", "") == {
        "type": "onnx", "parameters": {"model_path": "gone.onnx"}}
    suite = {"models": {"d": {"model": "m.pt", "dataset": "digits"}}}
    expected = r"^s\.yaml: key 'models\.d\.model': cannot tell the model type of 'm\.pt' .*; use "
    with pytest.raises(ConfigurationError, match=expected + "model_wrapper"):
        parse_suite(suite, "s.yaml", "s", [tmp_path])


def test_optimizer_entries_take_names_and_entries():
    assert optimizer_entries(["tflite", {"type": "tvm", "parameters": {"opt_level": 3}}]) == [
        {"type": "tflite", "parameters": {}}, {"type": "tvm", "parameters": {"opt_level": 3}}]
    with pytest.raises(ConfigurationError, match=r"^hil\.run: optimizer\[1\]: unknown key 'name'"):
        optimizer_entries(["tflite", {"type": "tvm", "name": "x"}])

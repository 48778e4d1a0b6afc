"""Tests of kenning_hil.core.args: schemas, JSON parameters, command-line options."""

import argparse
from pathlib import Path

import jsonschema
import pytest

from kenning_hil.core.args import ArgumentsHandler, get_arguments_structure, load_class
from kenning_hil.core.errors import ConfigurationError


class Base(ArgumentsHandler):
    arguments_structure = {
        "model_path": {"type": Path, "required": True, "description": "Model file"},
        "batch_size": {"type": int, "default": 1, "description": "Samples per batch"},
        "mode": {"type": str, "enum": ["fast", "exact"], "default": "fast"},
        "threshold": {"type": float, "default": 0.5, "description": "Accuracy in %"},
        "verbose": {"type": bool, "default": False, "description": "Print more"},
        "sizes": {"type": int, "is_list": True, "nullable": True},
        "options": {"type": dict, "default": {}},
        "anything": {"type": object},
        "level": {"type": str, "enum": ["low", "high"], "nullable": True},
    }

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class Sub(Base):
    arguments_structure = {
        "batch_size": {"default": 8},
        "compiled_path": {"type": Path, "default": "build/out.bin", "argparse_name": "--out"},
    }


class Runtime(ArgumentsHandler):
    arguments_structure = {
        "model_path": {"type": Path, "required": True, "description": "Model file"},
        "port": {"type": int, "default": 0},
    }

    def __init__(self, protocol=None, **kwargs):
        self.protocol = protocol
        self.kwargs = kwargs


# Structure and schema


def test_structures_merge_along_class_hierarchy():
    structure = get_arguments_structure(Sub)
    assert list(structure)[:2] == ["model_path", "batch_size"]
    assert structure["batch_size"] == {
        "type": int, "default": 8, "description": "Samples per batch"
    }
    assert structure["compiled_path"]["argparse_name"] == "--out"
    assert get_arguments_structure(Base)["batch_size"]["default"] == 1
    assert "compiled_path" not in get_arguments_structure(Base)


def test_parameter_schema_types_required_enum_nullable_list():
    schema = Base.form_parameterschema()
    jsonschema.Draft7Validator.check_schema(schema)
    props = schema["properties"]
    assert schema["title"] == "Base"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["model_path"]
    assert props["model_path"] == {"type": "string", "description": "Model file"}
    assert props["batch_size"]["type"] == "integer" and props["batch_size"]["default"] == 1
    assert props["threshold"]["type"] == "number"
    assert props["verbose"]["type"] == "boolean"
    assert props["mode"]["enum"] == ["fast", "exact"]
    assert props["sizes"] == {"type": ["array", "null"], "items": {"type": "integer"}}
    assert props["options"]["type"] == "object"
    assert "type" not in props["anything"]
    assert props["level"] == {"type": ["string", "null"], "enum": ["low", "high", None]}


def test_parameter_schema_path_default_is_string():
    props = Sub.form_parameterschema()["properties"]
    assert props["compiled_path"]["default"] == "build/out.bin"
    assert props["batch_size"]["default"] == 8


# JSON parameters


def test_from_json_converts_and_fills_defaults():
    obj = Base.from_json({"model_path": "m.onnx", "threshold": 1, "sizes": [1, 2]})
    assert obj.kwargs == {
        "model_path": Path("m.onnx"),
        "batch_size": 1,
        "mode": "fast",
        "threshold": 1.0,
        "verbose": False,
        "sizes": [1, 2],
        "options": {},
    }
    assert isinstance(obj.kwargs["threshold"], float)


def test_from_json_uses_subclass_default_and_passes_context():
    obj = Runtime.from_json({"model_path": "m"}, protocol="tcp")
    assert obj.protocol == "tcp"
    sub = Sub.from_json({"model_path": "m"})
    assert sub.kwargs["batch_size"] == 8
    assert sub.kwargs["compiled_path"] == Path("build/out.bin")


def test_mutable_default_is_not_shared():
    first = Base.from_json({"model_path": "m"})
    first.kwargs["options"]["changed"] = True
    second = Base.from_json({"model_path": "m"})
    assert second.kwargs["options"] == {}
    assert Base.arguments_structure["options"]["default"] == {}


def test_nullable_accepts_null():
    obj = Base.from_json({"model_path": "m", "sizes": None, "level": None})
    assert obj.kwargs["sizes"] is None and obj.kwargs["level"] is None


@pytest.mark.parametrize(
    "params, message",
    [
        ({"model_path": "m", "batch_size": "x"},
         "Base: parameter 'batch_size' must be an integer, got 'x' (string)"),
        ({"model_path": "m", "batch_size": 2.5},
         "Base: parameter 'batch_size' must be an integer, got 2.5 (number)"),
        ({"model_path": "m", "verbose": 1},
         "Base: parameter 'verbose' must be a boolean, got 1 (integer)"),
        ({"model_path": "m", "threshold": True},
         "Base: parameter 'threshold' must be a number, got True (boolean)"),
        ({"model_path": 3}, "Base: parameter 'model_path' must be a string, got 3 (integer)"),
        ({"model_path": "m", "sizes": "1,2"},
         "Base: parameter 'sizes' must be a list or null, got '1,2' (string)"),
        ({"model_path": "m", "sizes": [1, "x"]},
         "Base: parameter 'sizes[1]' must be an integer, got 'x' (string)"),
        ({"model_path": "m", "mode": "slow"},
         "Base: parameter 'mode' must be one of 'fast', 'exact', got 'slow'"),
        ({"batch_size": 2}, "Base: missing required parameter 'model_path'"),
        ({"model_path": "m", "batch": 2},
         "Base: unknown parameter 'batch' (known parameters: anything, batch_size, level, "
         "mode, model_path, options, sizes, threshold, verbose); did you mean 'batch_size'?"),
    ],
)
def test_from_json_errors_name_key_and_expected_type(params, message):
    with pytest.raises(ConfigurationError) as info:
        Base.from_json(params)
    assert str(info.value) == message


def test_from_json_rejects_non_object():
    with pytest.raises(ConfigurationError, match="Base: parameters must be a JSON object, got"):
        Base.from_json([1])


def test_from_json_none_means_no_parameters():
    class Optional(ArgumentsHandler):
        arguments_structure = {"port": {"type": int, "default": 0}, "host": {"type": str}}

        def __init__(self, **kwargs):
            self.kwargs = kwargs

    assert Optional.from_json(None).kwargs == {"port": 0}
    with pytest.raises(ConfigurationError, match="missing required parameter 'model_path'"):
        Runtime.from_json(None)


# Command line


def test_form_argparse_builds_working_options():
    parser, group = Sub.form_argparse()
    assert group.title == "Sub arguments"
    args = parser.parse_args([
        "--model-path", "m.tflite", "--batch-size", "4", "--verbose", "--sizes", "1", "2",
        "--mode", "exact", "--options", '{"a": 1}', "--out", "x.bin", "--threshold", "0.9",
    ])
    obj = Sub.from_argparse(args)
    assert obj.kwargs == {
        "model_path": Path("m.tflite"),
        "batch_size": 4,
        "mode": "exact",
        "threshold": 0.9,
        "verbose": True,
        "sizes": [1, 2],
        "options": {"a": 1},
        "compiled_path": Path("x.bin"),
    }


def test_form_argparse_defaults_and_negative_bool():
    parser, _ = Sub.form_argparse()
    obj = Sub.from_argparse(parser.parse_args(["--model-path", "m", "--no-verbose"]))
    assert obj.kwargs["verbose"] is False
    assert obj.kwargs["batch_size"] == 8
    assert obj.kwargs["compiled_path"] == Path("build/out.bin")
    assert "sizes" not in obj.kwargs


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--mode", "slow"], "invalid choice: 'slow'"),
        (["--batch-size", "x"], "invalid int value: 'x'"),
        (["--options", "{bad"], "options must be JSON"),
    ],
)
def test_form_argparse_rejects_bad_values(argv, fragment, capsys):
    parser, _ = Base.form_argparse()
    with pytest.raises(SystemExit):
        parser.parse_args(["--model-path", "m", *argv])
    assert fragment in capsys.readouterr().err


def test_missing_required_option():
    parser, _ = Base.form_argparse()
    with pytest.raises(ConfigurationError, match="Base: missing required option --model-path"):
        Base.from_argparse(parser.parse_args([]))


def test_help_renders_percent_and_defaults():
    parser, _ = Base.form_argparse()
    text = parser.format_help()
    assert "Accuracy in % (default: 0.5)" in text
    assert "Samples per batch (default: 1)" in text
    assert "--verbose, --no-verbose" in text


def test_shared_flags_between_classes_are_not_duplicated():
    parser, _ = Base.form_argparse()
    parser, runtime_group = Runtime.form_argparse(parser)
    flags = [opt for action in parser._actions for opt in action.option_strings]
    assert flags.count("--model-path") == 1
    assert [a.option_strings for a in runtime_group._group_actions] == [["--port"]]
    args = parser.parse_args(["--model-path", "shared.onnx", "--port", "5"])
    assert Base.from_argparse(args).kwargs["model_path"] == Path("shared.onnx")
    runtime = Runtime.from_argparse(args, protocol="uart")
    assert runtime.kwargs == {"model_path": Path("shared.onnx"), "port": 5}
    assert runtime.protocol == "uart"


def test_form_argparse_extends_given_parser():
    parser = argparse.ArgumentParser(prog="kenning-hil")
    returned, _ = Runtime.form_argparse(parser)
    assert returned is parser
    assert parser.parse_args(["--model-path", "m"]).port == 0


# Class loading


def test_load_class():
    assert load_class("kenning_hil.core.args.ArgumentsHandler") is ArgumentsHandler
    with pytest.raises(ConfigurationError, match="not a dotted class path"):
        load_class("ArgumentsHandler")
    with pytest.raises(ConfigurationError, match="cannot import module 'kenning_hil.nope'"):
        load_class("kenning_hil.nope.Thing")
    with pytest.raises(ConfigurationError, match="module 'kenning_hil.core.args' has no class"):
        load_class("kenning_hil.core.args.Missing")

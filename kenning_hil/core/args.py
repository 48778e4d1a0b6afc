"""ArgumentsHandler: `arguments_structure` is the single source of a class's command-line
options and of its JSON schema.

An entry of `arguments_structure` maps a parameter name (the constructor keyword) to:

- ``description``: help text;
- ``type``: one of int, float, str, bool, Path, dict, object (``object`` = any JSON value);
- ``default``: the default value (no default and not ``required`` means default None);
- ``required``: the parameter must be given;
- ``enum``: the allowed values;
- ``is_list``: the value is a list of ``type``;
- ``nullable``: None is an accepted value;
- ``argparse_name``: the command-line flag (default: ``--`` + name with ``-`` for ``_``).

Structures are merged along the class hierarchy: a subclass adds to and overrides what its
bases declare.
"""

from __future__ import annotations

import argparse
import copy
import importlib
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError

_JSON_TYPES = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    Path: "string",
    dict: "object",
    list: "array",
}

_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def get_arguments_structure(cls: type) -> dict[str, dict]:
    """Returns the class's `arguments_structure` merged with those of all its bases."""
    merged: dict[str, dict] = {}
    for klass in reversed(cls.__mro__):
        structure = klass.__dict__.get("arguments_structure")
        if structure:
            for name, spec in structure.items():
                merged[name] = {**merged.get(name, {}), **spec}
    return merged


def _argparse_flag(name: str, spec: dict) -> str:
    return spec.get("argparse_name", "--" + name.replace("_", "-"))


def _json_type(spec: dict) -> dict:
    """JSON schema fragment for one parameter."""
    ptype = spec.get("type", str)
    schema: dict[str, Any] = {}
    if ptype is not object:
        schema["type"] = _JSON_TYPES[ptype]
    if "enum" in spec:
        schema["enum"] = list(spec["enum"])
    if spec.get("is_list"):
        schema = {"type": "array", "items": schema}
    if spec.get("nullable"):
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    if "description" in spec:
        schema["description"] = spec["description"]
    if "default" in spec:
        default = spec["default"]
        schema["default"] = str(default) if isinstance(default, Path) else default
    return schema


def _describe_type(schema: dict) -> str:
    types = schema.get("type")
    if types is None:
        return "any JSON value"
    if isinstance(types, str):
        types = [types]
    words = [_TYPE_WORDS.get(t, t) for t in types]
    if schema.get("type") == "array" and "items" in schema and "type" in schema["items"]:
        item = _describe_type(schema["items"]).removeprefix("an ").removeprefix("a ")
        words = [f"a list of {item}s"]
    return " or ".join(words)


def _convert_value(value: Any, spec: dict) -> Any:
    """Turns a validated JSON value into the Python type the constructor expects."""
    if value is None:
        return None
    ptype = spec.get("type", str)
    if spec.get("is_list"):
        return [Path(v) if ptype is Path and v is not None else v for v in value]
    if ptype is Path:
        return Path(value)
    if ptype is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (dict, list)):
        # A fresh copy per object: a mutable default must not be shared between instances.
        return copy.deepcopy(value)
    return value


class ArgumentsHandler:
    """Builds argparse groups and JSON schemas from `arguments_structure`."""

    arguments_structure: dict[str, dict] = {}

    @classmethod
    def form_argparse(
        cls, parser: argparse.ArgumentParser | None = None
    ) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
        """Creates (or extends) an argparse parser with one group for this class.

        Options another class already added to the same parser are shared, not duplicated:
        both classes then read the same value (e.g. a model path used by a wrapper and a
        runtime).
        """
        if parser is None:
            parser = argparse.ArgumentParser(add_help=False)
        group = parser.add_argument_group(f"{cls.__name__} arguments")
        existing = {opt for action in parser._actions for opt in action.option_strings}
        for name, spec in get_arguments_structure(cls).items():
            flag = _argparse_flag(name, spec)
            if flag in existing:
                continue
            ptype = spec.get("type", str)
            # argparse %-formats help texts: a literal '%' must be doubled.
            help_text = spec.get("description", "").replace("%", "%%")
            kwargs: dict[str, Any] = {"dest": name, "help": help_text}
            if ptype is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
                kwargs["default"] = spec.get("default", None)
            else:
                if ptype in (dict, object):
                    kwargs["type"] = _parse_json_value(name)
                else:
                    kwargs["type"] = ptype
                if spec.get("is_list"):
                    kwargs["nargs"] = "+"
                if "enum" in spec:
                    kwargs["choices"] = list(spec["enum"])
                kwargs["default"] = spec.get("default", None)
            if "default" in spec and kwargs.get("help") is not None:
                kwargs["help"] += f" (default: {spec['default']})".replace("%", "%%")
            group.add_argument(flag, **kwargs)
        return parser, group

    @classmethod
    def form_parameterschema(cls) -> dict:
        """Creates the JSON schema of this class's parameters."""
        structure = get_arguments_structure(cls)
        schema = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": cls.__name__,
            "type": "object",
            "additionalProperties": False,
            "properties": {name: _json_type(spec) for name, spec in structure.items()},
        }
        required = [name for name, spec in structure.items() if spec.get("required")]
        if required:
            schema["required"] = required
        return schema

    @classmethod
    def parse_json_parameters(cls, json_dict: dict | None) -> dict[str, Any]:
        """Validates `json_dict` against the schema; returns constructor keyword arguments.

        Errors name the class, the parameter and the expected type.
        """
        import jsonschema

        json_dict = {} if json_dict is None else json_dict
        if not isinstance(json_dict, dict):
            raise ConfigurationError(
                f"{cls.__name__}: parameters must be a JSON object, got {type(json_dict).__name__}"
            )
        schema = cls.form_parameterschema()
        validator = jsonschema.Draft7Validator(schema)
        errors = sorted(validator.iter_errors(json_dict), key=lambda e: list(e.absolute_path))
        if errors:
            raise ConfigurationError(_explain_schema_error(cls.__name__, errors[0], schema))
        structure = get_arguments_structure(cls)
        kwargs = {}
        for name, spec in structure.items():
            if name in json_dict:
                kwargs[name] = _convert_value(json_dict[name], spec)
            elif "default" in spec:
                kwargs[name] = _convert_value(spec["default"], spec)
        return kwargs

    @classmethod
    def parameter_problems(cls, json_dict: Any) -> list[tuple[str, str]]:
        """Every problem of `json_dict` against the schema, not only the first:
        (parameter name or "", message naming the class), unknown names with close matches."""
        import jsonschema

        if not isinstance(json_dict, dict):
            return [("", f"{cls.__name__}: parameters must be a JSON object, "
                         f"got {type(json_dict).__name__}")]
        schema = cls.form_parameterschema()
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(json_dict),
                        key=lambda e: [str(p) for p in e.absolute_path])
        problems = []
        for error in errors:
            if error.validator == "additionalProperties":
                known = sorted(schema.get("properties", {}))
                for extra in sorted(set(error.instance) - set(known)):
                    problems.append((extra, _unknown_parameter(cls.__name__, extra, known)))
                continue
            path = list(error.absolute_path)
            problems.append((str(path[0]) if path else "",
                             _explain_schema_error(cls.__name__, error, schema)))
        return problems

    @classmethod
    def parse_argparse_parameters(cls, args: argparse.Namespace) -> dict[str, Any]:
        """Picks this class's parameters out of parsed command-line arguments."""
        structure = get_arguments_structure(cls)
        kwargs = {}
        for name, spec in structure.items():
            value = getattr(args, name, None)
            if value is None:
                if spec.get("required"):
                    raise ConfigurationError(
                        f"{cls.__name__}: missing required option {_argparse_flag(name, spec)}"
                    )
                if "default" not in spec:
                    continue
                value = spec["default"]
            kwargs[name] = _convert_value(value, spec)
        return kwargs

    @classmethod
    def from_argparse(cls, args: argparse.Namespace, **context):
        """Creates the object from command-line arguments made by `form_argparse`."""
        return cls(**context, **cls.parse_argparse_parameters(args))

    @classmethod
    def from_json(cls, json_dict: dict | None, **context):
        """Creates the object from a JSON dict, validated against `form_parameterschema`."""
        return cls(**context, **cls.parse_json_parameters(json_dict))


def _parse_json_value(name: str):
    import json

    def parse(text: str):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if not text.lstrip().startswith(("{", "[", '"')):
                return text  # a plain word: a string value (e.g. a TVM target "llvm")
            raise argparse.ArgumentTypeError(f"{name} must be JSON: {exc}") from exc

    parse.__name__ = "JSON"
    return parse


def _explain_schema_error(owner: str, error, schema: dict) -> str:
    path = list(error.absolute_path)
    # e.g. ['sizes', 1] -> "sizes[1]", the item of a list parameter
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:] if path else None
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(schema.get("properties", {})))
        return _unknown_parameter(owner, extra[0], sorted(schema.get("properties", {})))
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{owner}: missing required parameter '{missing}'"
    if error.validator == "type":
        expected = _describe_type({"type": error.validator_value})
        return (
            f"{owner}: parameter '{key}' must be {expected}, "
            f"got {error.instance!r} ({_json_name(error.instance)})"
        )
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{owner}: parameter '{key}' must be one of {allowed}, got {error.instance!r}"
    where = f"parameter '{key}'" if key else "parameters"
    return f"{owner}: {where}: {error.message}"


def _unknown_parameter(owner: str, name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (f"{owner}: unknown parameter '{name}' (known parameters: "
            f"{', '.join(known) or 'none'}){hint}")


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def load_class(dotted_path: str) -> type:
    """Imports `package.module.ClassName` and returns the class, with a clear error."""
    module_name, _, class_name = dotted_path.rpartition(".")
    if not module_name:
        raise ConfigurationError(f"'{dotted_path}' is not a dotted class path (module.Class)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"cannot import module '{module_name}' for type '{dotted_path}': {exc}"
        ) from exc
    try:
        return getattr(module, class_name)
    except AttributeError as exc:
        raise ConfigurationError(f"module '{module_name}' has no class '{class_name}'") from exc

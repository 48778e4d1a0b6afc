"""Scenario entries: the one ``{type, parameters}`` shape (its JSON-schema fragment and its
normaliser, used by scenarios, suites and ``hil.run``), how a scenario is checked, the model
and dataset shorthands, and how an entry becomes an object (`build_block`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.errors import ConfigurationError, os_reason

SCENARIO_KEYS = ("dataset", "model_wrapper", "optimizers", "runtime", "protocol")
REQUIRED_KEYS = ("dataset", "model_wrapper", "runtime")
ENTRY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "parameters": {"type": "object"}},
}
"""An entry in a document validated by JSON schema (suite files); `normalize_entry` checks
the same rules on a Python value."""
ENTRY_KEYS = tuple(ENTRY_SCHEMA["properties"])


def load_scenario(path: str | Path) -> dict:
    """Reads and validates a scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"scenario file {path} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"scenario file {path} cannot be read: {os_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"scenario file {path} cannot be read: {exc}") from exc
    try:
        scenario = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"scenario file {path} is not valid JSON: {exc}") from exc
    return validate_scenario(scenario, str(path))


def validate_scenario(scenario: Any, source: str = "scenario") -> dict:
    """Checks the scenario's structure (keys and entry shapes; parameters are checked by
    each class when built). Returns it unchanged."""
    if not isinstance(scenario, dict):
        raise ConfigurationError(f"{source}: must be a JSON object, got {type(scenario).__name__}")
    unknown = sorted(set(scenario) - set(SCENARIO_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{source}: unknown key '{unknown[0]}' (allowed: {', '.join(SCENARIO_KEYS)})"
        )
    for key in REQUIRED_KEYS:
        if key not in scenario:
            raise ConfigurationError(f"{source}: missing key '{key}'")
    optimizers = scenario.get("optimizers", [])
    if not isinstance(optimizers, list):
        raise ConfigurationError(
            f"{source}: 'optimizers' must be a list of entries, got {type(optimizers).__name__}"
        )
    entries = [(key, scenario[key]) for key in REQUIRED_KEYS + ("protocol",) if key in scenario]
    entries += [(f"optimizers[{i}]", value) for i, value in enumerate(optimizers)]
    for where, value in entries:
        normalize_entry(value, f"{source}: '{where}'")
    return scenario


def entry(type_name: str, parameters: Mapping | None = None) -> dict:
    """A ``{type, parameters}`` entry (parameters copied, so the caller may change them)."""
    return {"type": type_name, "parameters": dict(parameters or {})}


def normalize_entry(value: Any, where: str) -> dict:
    """`value` checked against ENTRY_SCHEMA's rules, errors naming `where`; returned as a new
    entry whose parameters are ``{}`` when absent."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{where} must be an object with 'type' and 'parameters', got {type(value).__name__}"
        )
    unknown = sorted(set(value) - set(ENTRY_KEYS), key=str)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(ENTRY_KEYS)})"
        )
    if not isinstance(value.get("type"), str):
        raise ConfigurationError(f"{where}: key 'type' must be a string, got {value.get('type')!r}")
    parameters = value.get("parameters", {})
    if not isinstance(parameters, Mapping):
        raise ConfigurationError(
            f"{where}: key 'parameters' must be an object, got {type(parameters).__name__}"
        )
    return entry(value["type"], parameters)


def inline_entry(value: Any, where: str) -> dict:
    """An entry from a target description's short form, whose parameters may also stand
    beside 'type' (``protocol: {type: uart, baudrate: 115200}``); a key under 'parameters'
    wins over the same key inline."""
    if not isinstance(value, Mapping) or "type" not in value:
        raise ConfigurationError(f"{where} needs a 'type' (a registered name or a class path)")
    inline = {k: v for k, v in value.items() if k not in ENTRY_KEYS}
    nested = normalize_entry(
        {"type": value["type"], "parameters": value.get("parameters") or {}}, where
    )
    return entry(nested["type"], {**inline, **nested["parameters"]})


def model_entry(
    model: Any, search: Sequence[Path], where: str, instead: str, require_file: bool = False
) -> dict:
    """A model wrapper entry from a model file (its type from the suffix) or an entry; a
    relative model_path is searched in `search`. `where` starts every error (``hil.run``, a
    suite file's key), `instead` says how to name the type when the suffix cannot; with
    `require_file` a model file that is not found is an error here, else it is kept as given
    (a suite still collects, and its test fails naming the file)."""
    if isinstance(model, Mapping):
        result = normalize_entry(model, where)
        path = result["parameters"].get("model_path")
        if isinstance(path, str):
            result["parameters"]["model_path"] = resolve_model_path(path, search)
        return result
    path = str(model)
    suffix = Path(path).suffix.lower()
    if suffix not in MODEL_WRAPPER_BY_SUFFIX:
        raise ConfigurationError(
            f"{where}: cannot tell the model type of {path!r} (known suffixes: "
            f"{', '.join(MODEL_WRAPPER_BY_SUFFIX)}); {instead}"
        )
    resolved = resolve_model_path(path, search)
    if require_file and not Path(resolved).exists():
        searched = ", ".join(str(s) for s in search)
        raise ConfigurationError(f"{where}: model file {path!r} not found (searched {searched})")
    return entry(MODEL_WRAPPER_BY_SUFFIX[suffix], {"model_path": resolved})


def build_block(kind: str, entry: dict, base: type, where: str, **context: Any) -> Any:
    """Builds one object of a scenario; errors name the scenario entry."""
    try:
        cls = resolve_class(kind, entry["type"], base)
        return cls.from_json(entry.get("parameters", {}), **context)
    except ConfigurationError as exc:
        raise ConfigurationError(f"scenario '{where}': {exc}") from exc

MODEL_WRAPPER_BY_SUFFIX = {".onnx": "onnx", ".tflite": "tflite"}



def parse_dataset(spec: Any, named: Mapping[str, Any], source: str, where: str) -> dict:
    """A dataset entry from a name in `named`, 'type', 'type:root', or an entry."""
    if isinstance(spec, Mapping):
        return normalize_entry(spec, f"{source}: {where}")
    if spec in named:
        return normalize_entry(named[spec], f"{source}: datasets.{spec}")
    dataset_type, sep, root = str(spec).partition(":")
    if not dataset_type:
        raise ConfigurationError(f"{source}: {where}: empty dataset {spec!r}")
    return entry(dataset_type, {"root": root} if sep else {})


def resolve_model_path(path: str, search: Sequence[Path]) -> str:
    """An absolute path for `path`, searched in order; unresolved paths are kept as given
    (the test then fails or skips naming the file, and collection still succeeds)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    for directory in search:
        if (Path(directory) / candidate).exists():
            return str((Path(directory) / candidate).resolve())
    return path

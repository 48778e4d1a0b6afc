"""Scenario entries: the one ``{type, parameters}`` shape, how a scenario is checked, and
how an entry becomes an object (`build_block`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.errors import ConfigurationError

SCENARIO_KEYS = ("dataset", "model_wrapper", "optimizers", "runtime", "protocol")
REQUIRED_KEYS = ("dataset", "model_wrapper", "runtime")
ENTRY_KEYS = ("type", "parameters")


def load_scenario(path: str | Path) -> dict:
    """Reads and validates a scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"scenario file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
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
    entries += [(f"optimizers[{i}]", entry) for i, entry in enumerate(optimizers)]
    for where, entry in entries:
        _validate_entry(entry, f"{source}: '{where}'")
    return scenario


def _validate_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigurationError(
            f"{where} must be an object with 'type' and 'parameters', got {type(entry).__name__}"
        )
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(ENTRY_KEYS)})"
        )
    if not isinstance(entry.get("type"), str):
        raise ConfigurationError(f"{where}: key 'type' must be a string, got {entry.get('type')!r}")
    if not isinstance(entry.get("parameters", {}), dict):
        raise ConfigurationError(f"{where}: key 'parameters' must be an object")


def build_block(kind: str, entry: dict, base: type, where: str, **context: Any) -> Any:
    """Builds one object of a scenario; errors name the scenario entry."""
    try:
        cls = resolve_class(kind, entry["type"], base)
        return cls.from_json(entry.get("parameters", {}), **context)
    except ConfigurationError as exc:
        raise ConfigurationError(f"scenario '{where}': {exc}") from exc

MODEL_WRAPPER_BY_SUFFIX = {".onnx": "onnx", ".tflite": "tflite"}



def parse_dataset(spec: Any, named: dict[str, dict], source: str, where: str) -> dict:
    """A scenario dataset entry from a name, 'type', 'type:root', or an entry."""
    if isinstance(spec, dict):
        return spec
    if spec in named:
        return named[spec]
    dataset_type, sep, root = str(spec).partition(":")
    if not dataset_type:
        raise ConfigurationError(f"{source}: {where}: empty dataset {spec!r}")
    return {"type": dataset_type, "parameters": {"root": root} if sep else {}}


def resolve_model_path(path: str, search: Sequence[Path], source: str, where: str) -> str:
    """An absolute path for `path`, searched in order; unresolved paths are kept as given
    (the test then fails or skips naming the file, and collection still succeeds)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    for directory in search:
        if (Path(directory) / candidate).exists():
            return str((Path(directory) / candidate).resolve())
    return path

"""Scenario entries: the one ``{type, parameters}`` shape (its JSON-schema fragment and its
normaliser, used by scenarios, suites and ``hil.run``), how a scenario is checked, the model
and dataset shorthands, and how an entry becomes an object (`build_block`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.args import load_class
from kenning_hil.core.errors import ConfigurationError, one_line, os_reason

SCENARIO_KEYS = ("dataset", "model_wrapper", "optimizers", "runtime", "protocol")
REQUIRED_KEYS = ("dataset", "model_wrapper")
"""A scenario without `runtime` gets one for the last block's output format
(`RUNTIME_BY_FORMAT`), as Kenning deduces one."""
ENTRY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "parameters": {"type": "object"}},
}
"""An entry in a document validated by JSON schema (suite files); `normalize_entry` checks
the same rules on a Python value."""
ENTRY_KEYS = tuple(ENTRY_SCHEMA["properties"])
KIND_OF_KEY = {"dataset": "dataset", "model_wrapper": "model_wrapper", "optimizers": "optimizer",
               "runtime": "runtime", "protocol": "protocol"}
RUNTIME_BY_FORMAT = {"tflite": "litert", "tvm": "tvm", "onnx": "onnxruntime"}
"""The runtime a scenario without one gets, by the format its last block writes (Kenning
deduces tvm and tflite; it has none for onnx, we take ONNX Runtime)."""


class ScenarioProblems(ConfigurationError):
    """Every problem found in one scenario file: `problems` are lines
    ``<file>: <key path>: <message>``; the message is all of them, after a count."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(self.problems[0])
        else:
            super().__init__(f"{source}: {len(self.problems)} problems:\n"
                             + "\n".join(self.problems))


def load_scenario(path: str | Path, search: Sequence[Path] = (),
                  notes: list[str] | None = None) -> dict:
    """Reads and validates a scenario file: JSON (tabs are JSON white space) or YAML, in our
    spelling or Kenning's; `search` (the models path) resolves ``kenning:///`` URIs. Every
    problem is reported at once (`ScenarioProblems`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"scenario file {path} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"scenario file {path} cannot be read: {os_reason(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"scenario file {path} cannot be read: {exc}") from exc
    scenario = parse_scenario_text(text, str(path))
    return validate_scenario(scenario, str(path), search, notes)


def parse_scenario_text(text: str, source: str) -> Any:
    """A scenario document from JSON, else YAML (Kenning reads both with one YAML parser,
    which refuses JSON indented with tabs; JSON's parser takes them)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        stripped = text.lstrip()
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as yaml_error:
            if stripped.startswith(("{", "[")):
                raise ConfigurationError(
                    f"scenario file {source} is not valid JSON: {json_error}") from None
            mark = getattr(yaml_error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(yaml_error, "problem", None) or one_line(yaml_error)
            raise ConfigurationError(
                f"scenario file {source} is neither JSON nor YAML: {problem}{where}") from None


def validate_scenario(scenario: Any, source: str = "scenario", search: Sequence[Path] = (),
                      notes: list[str] | None = None) -> dict:
    """Checks a scenario (keys, entry shapes, types, every parameter against its class) and
    returns it normalised: Kenning's class names and parameter names in ours, ``kenning:///``
    URIs resolved against `search`, a deduced `runtime` when absent, Kenning's own top-level
    keys checked (`platform` kept for the caller to map onto a target). Every problem is
    reported at once (`ScenarioProblems`); notes on ignored Kenning keys go to `notes` (else
    they are warnings)."""
    from kenning_hil.blocks.kenning_names import KENNING_TOP_LEVEL, did_you_mean

    if not isinstance(scenario, Mapping):
        raise ConfigurationError(f"{source}: must be a JSON object, got {type(scenario).__name__}")
    problems: list[str] = []

    def problem(where: str, message: str) -> None:
        problems.append(f"{source}: {where}: {message}" if where else f"{source}: {message}")

    said: list[str] = []
    result: dict[str, Any] = {}
    for key in scenario:
        if key in SCENARIO_KEYS:
            continue
        if key in KENNING_TOP_LEVEL:
            if key not in ("platform", "runtime_builder", "report"):
                said.append(f"{source}: '{key}' is ignored ({KENNING_TOP_LEVEL[key]})")
            continue
        hint = did_you_mean(str(key), SCENARIO_KEYS + tuple(KENNING_TOP_LEVEL))
        problem(str(key), f"unknown key{hint} "
                f"(allowed: {', '.join(SCENARIO_KEYS)}; Kenning's {', '.join(KENNING_TOP_LEVEL)})")
    for key in REQUIRED_KEYS:
        if key not in scenario:
            problem("", f"missing key '{key}'")
    optimizers = scenario.get("optimizers", [])
    if not isinstance(optimizers, list):
        problem("optimizers", f"'optimizers' must be a list of entries, got "
                f"{type(optimizers).__name__}")
        optimizers = []
    entries = [(key, key, scenario[key]) for key in ("dataset", "model_wrapper", "runtime",
                                                     "protocol") if key in scenario]
    entries += [("optimizers", f"optimizers[{i}]", value) for i, value in enumerate(optimizers)]
    classes: dict[str, type] = {}
    for key, where, value in entries:
        checked = check_entry(KIND_OF_KEY[key], value, where, search, problem)
        if checked is None:
            continue
        entry_value, cls = checked
        if cls is not None:
            classes[where] = cls
        if key == "optimizers":
            result.setdefault("optimizers", []).append(entry_value)
        else:
            result[key] = entry_value
    if "optimizers" in scenario and "optimizers" not in result and not problems:
        result["optimizers"] = []
    for key in ("platform", "runtime_builder", "report"):
        if key in scenario:
            result[key] = _kenning_entry(key, scenario[key], problem)
    chain = [classes.get("model_wrapper")]
    chain += [classes.get(f"optimizers[{i}]") for i in range(len(optimizers))]
    if "runtime" not in scenario and "model_wrapper" in scenario and None not in chain:
        formats = getattr(chain[-1], "output_formats", [])
        runtime = next((RUNTIME_BY_FORMAT[f] for f in formats if f in RUNTIME_BY_FORMAT), None)
        if runtime is None:
            problem("", f"missing key 'runtime' (none deduced for formats {formats})")
        else:
            result["runtime"] = entry(runtime)
            classes["runtime"] = _try_class("runtime", runtime)
    names = ["model_wrapper", *(f"optimizers[{i}]" for i in range(len(optimizers)))]
    if "protocol" not in result and "platform" not in result:
        names.append("runtime")
    _check_formats([(n, classes.get(n)) for n in names], problem)
    if problems:
        raise ScenarioProblems(source, problems)
    for note in said:
        if notes is not None:
            notes.append(note)
        else:
            warnings.warn(note, stacklevel=2)
    return result


def check_entry(kind: str, value: Any, where: str, search: Sequence[Path],
                problem: Callable[[str, str], None]) -> tuple[dict, type | None] | None:
    """One entry checked: its shape, its type (resolved to a class) and every parameter
    (Kenning's names translated, ``kenning:///`` URIs resolved). Problems go to `problem`;
    returns (the entry in our spelling, its class), or None when its shape is wrong."""
    from kenning_hil.blocks.kenning_names import aliases_of, did_you_mean, resolve_resource_uri
    from kenning_hil.blocks.registry import resolve_class_path
    from kenning_hil.core.args import get_arguments_structure

    try:
        checked = normalize_entry(value, f"'{where}'")
    except ConfigurationError as exc:
        problem(where, str(exc).removeprefix(f"'{where}'").lstrip(": "))
        return None
    parameters = {}
    for name, item in checked["parameters"].items():
        if isinstance(item, str) and item.startswith("kenning://"):
            local = resolve_resource_uri(item, search)
            if local is None:
                searched = ", ".join(str(s) for s in search) or "no models path"
                problem(f"{where}.parameters.{name}",
                        f"{item} not found under the models path (searched {searched}; "
                        "kenning-hil downloads nothing)")
                local = item
            item = local
        parameters[name] = item
    try:
        path = resolve_class_path(kind, checked["type"])
        cls = load_class(path)
    except ConfigurationError as exc:
        problem(f"{where}.type", str(exc))
        return {"type": checked["type"], "parameters": parameters}, None
    base = _BASES.get(kind)
    if not isinstance(cls, type) or (base is not None and not issubclass(cls, _base(base))):
        problem(f"{where}.type", f"{kind} type '{checked['type']}' is not a "
                f"{base.rpartition('.')[2] if base else 'class'}")
        return {"type": checked["type"], "parameters": parameters}, None
    ours, found = translate_entry_parameters(cls, parameters)
    for name, message in found:
        problem(f"{where}.parameters.{name}", f"{cls.__name__}: {message}")
    own = get_arguments_structure(cls)
    for name, message in cls.parameter_problems(ours):
        if name and name not in own:  # close matches among Kenning's names too
            message = (f"{cls.__name__}: unknown parameter '{name}' (known parameters: "
                       f"{', '.join(sorted(own)) or 'none'}; Kenning's: "
                       f"{', '.join(sorted(aliases_of(cls))) or 'none'})"
                       + did_you_mean(name, [*own, *aliases_of(cls)]).replace(" (", "; ", 1)
                       .removesuffix(")"))
        problem(f"{where}.parameters.{name}" if name else f"{where}.parameters", message)
    return {"type": path if "." in checked["type"] else checked["type"], "parameters": ours}, cls


def translate_entry_parameters(cls: type, parameters: Mapping[str, Any]):
    """`parameters` with Kenning's names in ours, for `cls`: (parameters, problems)."""
    from kenning_hil.blocks.kenning_names import translate_parameters
    from kenning_hil.core.args import get_arguments_structure

    return translate_parameters(cls, parameters, get_arguments_structure(cls))


_BASES = {
    "dataset": "kenning_hil.core.dataset.Dataset",
    "model_wrapper": "kenning_hil.core.model.ModelWrapper",
    "optimizer": "kenning_hil.core.optimizer.Optimizer",
    "runtime": "kenning_hil.core.runtime.Runtime",
    "protocol": "kenning_hil.core.protocol.RuntimeProtocol",
}


def _base(path: str) -> type:
    return load_class(path)


def _try_class(kind: str, name: str) -> type | None:
    from kenning_hil.blocks.registry import resolve_class

    try:
        return resolve_class(kind, name)
    except ConfigurationError:
        return None


def _check_formats(chain: list[tuple[str, type | None]],
                   problem: Callable[[str, str], None]) -> None:
    """Each block must accept a format the block before it writes (told by the classes, so
    a TFLite -> TVM chain is refused before anything compiles)."""
    for (_, before), (where, after) in zip(chain, chain[1:]):
        if before is None or after is None:
            continue
        offered = list(getattr(before, "output_formats", []))
        accepted = list(getattr(after, "input_formats", []))
        if offered and accepted and not set(offered) & set(accepted):
            problem(f"{where}.type", f"{after.__name__} takes {', '.join(accepted)} models; "
                    f"{before.__name__} before it writes {', '.join(offered)}")


def _kenning_entry(key: str, value: Any, problem: Callable[[str, str], None]) -> Any:
    if key == "report":  # Kenning's report entry: its first `measurements` path is the output
        return value
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        problem(key, "must be an object with 'type' and 'parameters'")
        return value
    return entry(value["type"], value.get("parameters") or {})


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
    """Builds one object of a scenario (Kenning's parameter names translated to ours here,
    once); errors name the scenario entry."""
    try:
        cls = resolve_class(kind, entry["type"], base)
        parameters, problems = translate_entry_parameters(cls, entry.get("parameters") or {})
        if problems:
            name, message = problems[0]
            raise ConfigurationError(f"{cls.__name__}: parameter '{name}': {message}")
        return cls.from_json(parameters, **context)
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
    from kenning_hil.blocks.kenning_names import resolve_resource_uri

    if path.startswith("kenning://"):
        return resolve_resource_uri(path, search) or path
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    for directory in search:
        if (Path(directory) / candidate).exists():
            return str((Path(directory) / candidate).resolve())
    return path

"""Target descriptions: one YAML file per board, validated against a JSON schema.

The schema has a common part (what every board has: a runtime, memory, a pool size, timing)
and a part each target kind adds (how to reach the board). Errors name the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError, os_reason

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

# Sizes: "4MiB", "256 KiB", "1.5M", 4096. Binary units for K/M/G as in linker scripts.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KMGkmg]i?[Bb]?|[Bb])?\s*$"},
    ],
    "description": "bytes, or a size such as '256KiB', '4MiB', '1MB'",
}


def parse_size(value: int | str, what: str = "size") -> int:
    """Bytes from an int or a string such as '4MiB' (K/M/G and KiB/MiB/GiB are binary)."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{what}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _SIZE_UNITS:
        raise ConfigurationError(f"{what}: expected a size like '256KiB' or '4MiB', got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


COMMON_PROPERTIES: dict[str, dict] = {
    "name": {"type": "string", "pattern": NAME_PATTERN, "description": "defaults to the file name"},
    "kind": {"type": "string", "description": "how the board is reached"},
    "description": {"type": "string"},
    "runtime": {
        "type": "string",
        "description": "what executes models there (registered runtime name or dotted path)",
    },
    "runtime_parameters": {"type": "object"},
    "formats": {
        "type": "array",
        "items": {"type": "string"},
        "description": "model formats the board accepts (default: the runtime's input formats)",
    },
    "protocol": {
        "type": "object",
        "properties": {"type": {"type": "string"}},
        "required": ["type"],
        "description": "the RuntimeProtocol and its parameters: {type: tcp|uart, ...}",
    },
    "memory": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"flash": SIZE_SCHEMA, "ram": SIZE_SCHEMA},
    },
    "instances": {
        "description": "pool size (int) or one entry per board (port, address, ...)",
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "array", "minItems": 1, "items": {"type": ["string", "object"]}},
        ],
    },
    "timing": {
        "type": "string",
        "enum": ["target", "protocol", "instructions", "cycles"],
        "description": "what target-side latency measures",
    },
    "timeouts": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "lock": {"type": "number", "exclusiveMinimum": 0},
            "boot": {"type": "number", "exclusiveMinimum": 0},
            "request": {"type": "number", "exclusiveMinimum": 0},
        },
        "description": "seconds; each defaults to --hil-timeout",
    },
    "tags": {"type": "array", "items": {"type": "string"}},
    "requires": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Python modules this machine needs to use the target (e.g. onnxruntime)",
    },
}


@dataclass
class TargetDescription:
    """A validated target description (the YAML file's content, with defaults applied)."""

    name: str
    kind: str
    source: str
    runtime: str | None = None
    runtime_parameters: dict = field(default_factory=dict)
    formats: list[str] | None = None
    protocol: dict | None = None
    memory: dict[str, int] = field(default_factory=dict)
    instances: int | list = 1
    timing: str | None = None
    timeouts: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    description: str = ""
    # kind-specific keys, validated by the kind's schema fragment
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def flash(self) -> int | None:
        return self.memory.get("flash")

    @property
    def ram(self) -> int | None:
        return self.memory.get("ram")

    def option_path(self, key: str) -> Path | None:
        """The path of kind option `key` (e.g. a serial board's firmware): absolute as given,
        else relative to this description's file; None when the option is not set."""
        value = self.options.get(key)
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else Path(self.source).parent / path


def _key_path(error) -> str:
    path = [str(p) for p in error.absolute_path]
    return ".".join(path)


def explain_schema_error(source: str, error, properties: dict) -> str:
    """One line naming the file, the key and what was expected."""
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        import difflib

        extra = sorted(set(error.instance) - set(allowed))
        where = f"{key}." if key else ""
        close = difflib.get_close_matches(str(extra[0]), allowed, n=1)
        hint = f"did you mean '{where}{close[0]}'? " if close else ""
        return (
            f"{source}: unknown key '{where}{extra[0]}' "
            f"({hint}known keys{' of ' + key if key else ''}: {', '.join(allowed)})"
        )
    if error.validator == "required":
        missing = re.findall(r"'([^']+)'", error.message)
        missing_key = missing[0] if missing else error.message
        where = f"{key}." if key else ""
        return f"{source}: missing required key '{where}{missing_key}'"
    desc = error.schema.get("description")
    if error.validator in ("anyOf", "oneOf") and desc:
        return f"{source}: key '{key}' must be {desc}, got {error.instance!r}"
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{source}: key '{key}' must be one of {allowed}, got {error.instance!r}"
    if error.validator == "type":
        expected = error.validator_value
        return f"{source}: key '{key}' must be of type {expected}, got {error.instance!r}"
    if error.validator == "pattern":
        return f"{source}: key '{key}' has an invalid value {error.instance!r}" + (
            f" ({desc})" if desc else f" (must match {error.validator_value})"
        )
    return f"{source}: key '{key or '<top>'}': {error.message}"


def validate(data: Any, schema: dict, source: str) -> None:
    """Validates `data` against `schema`; raises ConfigurationError naming source and key."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    # the error on the deepest key is the most specific; anyOf errors are kept whole (not
    # descended into) because their schema's description says what is accepted
    best = max(errors, key=lambda e: (len(e.absolute_path), -errors.index(e)))
    raise ConfigurationError(explain_schema_error(source, best, schema.get("properties", {})))


def target_schema(kind_properties: dict, kind_required: tuple[str, ...] = ()) -> dict:
    """The full schema of a target of one kind: common keys plus the kind's keys."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {**COMMON_PROPERTIES, **kind_properties},
        "required": ["kind", *kind_required],
    }


def parse_target(data: Any, source: str, default_name: str | None = None) -> TargetDescription:
    """Validates one target description (a parsed YAML mapping) and applies defaults."""
    from kenning_hil.targets.kinds import get_kind_class, known_kinds

    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source}: a target description must be a mapping, got {type(data).__name__}"
        )
    kind_name = data.get("kind")
    if kind_name is None:
        raise ConfigurationError(
            f"{source}: missing required key 'kind' (one of: {', '.join(known_kinds())})"
        )
    if not isinstance(kind_name, str) or kind_name not in known_kinds():
        raise ConfigurationError(
            f"{source}: key 'kind' must be one of {', '.join(known_kinds())}, got {kind_name!r}"
        )
    kind_cls = get_kind_class(kind_name)
    validate(data, target_schema(kind_cls.properties, kind_cls.required), source)
    name = data.get("name", default_name)
    if name is None:
        raise ConfigurationError(f"{source}: missing required key 'name'")
    if not re.match(NAME_PATTERN, name):
        raise ConfigurationError(f"{source}: target name {name!r} must match {NAME_PATTERN}")
    memory = {
        key: parse_size(value, f"{source}: key 'memory.{key}'")
        for key, value in (data.get("memory") or {}).items()
    }
    options = {k: v for k, v in data.items() if k not in COMMON_PROPERTIES}
    description = TargetDescription(
        name=name,
        kind=kind_name,
        source=source,
        runtime=data.get("runtime"),
        runtime_parameters=dict(data.get("runtime_parameters") or {}),
        formats=data.get("formats"),
        protocol=data.get("protocol"),
        memory=memory,
        instances=data.get("instances", kind_cls.default_instances(options)),
        timing=data.get("timing"),
        timeouts=dict(data.get("timeouts") or {}),
        tags=list(data.get("tags") or []),
        requires=list(data.get("requires") or []),
        description=data.get("description", ""),
        options=options,
    )
    kind_cls.check(description)
    return description


def load_target_file(path: Path) -> TargetDescription:
    """Reads and validates one target YAML file; the name defaults to the file's stem."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"{path}: cannot read target description: {os_reason(exc)}"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigurationError(f"{path}: not valid YAML{where}: {problem}") from exc
    return parse_target(data, str(path), default_name=path.stem)

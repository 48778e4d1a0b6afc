"""The JSON schema of a suite file."""

from __future__ import annotations

from kenning_hil.blocks.entries import ENTRY_SCHEMA as _ENTRY
from kenning_hil.targets.description import NAME_PATTERN

_DATASET = {
    "description": "a dataset name, 'type' or 'type:root', or {type, parameters}",
    "anyOf": [{"type": "string"}, _ENTRY],
}
_NAMES = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_MARKS = {"type": "array", "items": {"type": "string"}}
_REFERENCE = {"type": "string", "description": "the target every other target is compared with"}
_COMPARE = {
    "type": "object",
    "description": "{exact: true} | {max_lsb: N} | {atol: A, rtol: R}, and per target under "
                   "'targets'",
}
_MODEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "description": "a model file (.onnx, .tflite)"},
        "model_wrapper": _ENTRY,
        "dataset": _DATASET,
        "samples": {"type": "integer", "minimum": 1},
        "thresholds": {"type": "object"},
        "tolerance": {"type": "object"},
        "marks": _MARKS,
        "targets": _NAMES,
        "reference": _REFERENCE,
        "compare": _COMPARE,
    },
}
SUITE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["models"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "description": {"type": "string"},
        "samples": {"type": "integer", "minimum": 1},
        "targets": {
            "description": "'all' (every --target) or a list of target names",
            "anyOf": [{"enum": ["all"]}, _NAMES],
        },
        "marks": _MARKS,
        "thresholds": {"type": "object"},
        "tolerance": {"type": "object"},
        "reference": _REFERENCE,
        "compare": _COMPARE,
        "dataset": _DATASET,
        "datasets": {"type": "object", "additionalProperties": _ENTRY},
        "models": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _MODEL,
        },
        "optimizers": {
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": {"type": "array", "items": _ENTRY},
        },
        "matrix": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "models": _NAMES,
                    "optimizers": _NAMES,
                    "targets": _NAMES,
                    "samples": {"type": "integer", "minimum": 1},
                    "thresholds": {"type": "object"},
                    "marks": _MARKS,
                },
            },
        },
    },
}

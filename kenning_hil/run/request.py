"""What to run: a RunRequest of scenario entries, built from what a test or suite names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.blocks.entries import MODEL_WRAPPER_BY_SUFFIX, parse_dataset, resolve_model_path
from kenning_hil.core.errors import ConfigurationError

# ------------------------------------------------------------------------------- requests


@dataclass
class RunRequest:
    """What to run: scenario entries (as in a scenario JSON) and a sample count."""

    model_wrapper: dict
    dataset: dict | None  # None only for compiling (no calibration data)
    optimizers: list[dict] = field(default_factory=list)
    samples: int | None = None
    name: str = ""

    @property
    def model_name(self) -> str:
        path = self.model_wrapper.get("parameters", {}).get("model_path")
        return self.name or (Path(path).stem if path else self.model_wrapper["type"])


def model_entry(model: Any, search: Sequence[Path]) -> dict:
    """A model wrapper entry from a path (type from the suffix) or an entry."""
    if isinstance(model, Mapping):
        entry = {"type": model["type"], "parameters": dict(model.get("parameters") or {})}
        path = entry["parameters"].get("model_path")
        if isinstance(path, str):
            entry["parameters"]["model_path"] = resolve_model_path(path, search, "hil.run", "model")
        return entry
    path = str(model)
    suffix = Path(path).suffix.lower()
    if suffix not in MODEL_WRAPPER_BY_SUFFIX:
        raise ConfigurationError(
            f"hil.run: cannot tell the model type of {path!r} (known suffixes: "
            f"{', '.join(MODEL_WRAPPER_BY_SUFFIX)}); pass model={{'type': ..., 'parameters': ...}}"
        )
    resolved = resolve_model_path(path, search, "hil.run", "model")
    if not Path(resolved).exists():
        searched = ", ".join(str(s) for s in search)
        raise ConfigurationError(f"hil.run: model file {path!r} not found (searched {searched})")
    return {"type": MODEL_WRAPPER_BY_SUFFIX[suffix], "parameters": {"model_path": resolved}}


def optimizer_entries(optimizer: Any) -> list[dict]:
    """None, a type name, an entry, or a list of those -> a list of entries."""
    if optimizer is None:
        return []
    items = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
    entries = []
    for item in items:
        if isinstance(item, str):
            entries.append({"type": item, "parameters": {}})
        elif isinstance(item, Mapping) and "type" in item:
            entries.append({"type": item["type"], "parameters": dict(item.get("parameters") or {})})
        else:
            raise ConfigurationError(
                f"hil.run: optimizer must be a type name or {{'type': ..., 'parameters': ...}}, "
                f"got {item!r}"
            )
    return entries


def dataset_entry(dataset: Any) -> dict:
    if dataset is None:
        raise ConfigurationError("hil.run: no dataset given (e.g. dataset='digits')")
    return parse_dataset(dataset, {}, "hil.run", "dataset")

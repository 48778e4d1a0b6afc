"""What to run: a RunRequest of scenario entries, built from what a test or suite names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.blocks.entries import entry, model_entry, normalize_entry, parse_dataset
from kenning_hil.core.errors import ConfigurationError

HIL_RUN = "hil.run"
"""How errors name what a test passed to hil.run (and to the model, dataset and optimizers
fixtures)."""

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


def optimizer_entries(optimizer: Any) -> list[dict]:
    """None, a type name, an entry, or a list of those -> a list of entries."""
    if optimizer is None:
        return []
    items = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
    entries = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            entries.append(entry(item))
        elif isinstance(item, Mapping):
            entries.append(normalize_entry(item, f"{HIL_RUN}: optimizer[{i}]"))
        else:
            raise ConfigurationError(
                f"{HIL_RUN}: optimizer must be a type name or {{'type': ..., 'parameters': ...}}, "
                f"got {item!r}"
            )
    return entries


def hil_model_entry(model: Any, search: Sequence[Path]) -> dict:
    """The model wrapper entry of what a test passed as hil.run's `model`: a model file,
    which must exist, or an entry."""
    return model_entry(model, search, HIL_RUN, "pass model={'type': ..., 'parameters': ...}",
                       require_file=True)


def dataset_entry(dataset: Any) -> dict:
    if dataset is None:
        raise ConfigurationError(f"{HIL_RUN}: no dataset given (e.g. dataset='digits')")
    return parse_dataset(dataset, {}, HIL_RUN, "dataset")

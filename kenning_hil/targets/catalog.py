"""The targets known to a run: YAML files in target directories.

Directories are searched in order (user directories first, then the project's ``targets/``,
then the descriptions shipped with the package, `SHIPPED_TARGETS_DIR`); the first description
of a name wins, so a user can override a shipped board.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.targets.description import TargetDescription, load_target_file
from kenning_hil.targets.errors import UnknownTargetError

DEFAULT_TARGET = "host-onnxruntime"

# The repository's targets/*.yaml travel in a wheel as package data (setup.py copies them to
# kenning_hil/targets/shipped/); a source checkout uses its targets/ folder itself. Searched
# last by every run, they make DEFAULT_TARGET present in any project.
PACKAGED_TARGETS_DIR = Path(__file__).resolve().parent / "shipped"
SHIPPED_TARGETS_DIR = (PACKAGED_TARGETS_DIR if PACKAGED_TARGETS_DIR.is_dir()
                       else Path(__file__).resolve().parents[2] / "targets")


@dataclass
class CatalogEntry:
    name: str
    source: str
    description: TargetDescription | None
    error: str | None = None


class TargetCatalog:
    """Target descriptions found in `dirs` (searched in order)."""

    def __init__(self, dirs: Sequence[Path] = ()):
        self.dirs = [Path(d) for d in dirs]
        self._entries: dict[str, CatalogEntry] | None = None

    def _scan(self) -> dict[str, CatalogEntry]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, CatalogEntry] = {}
        for directory in self.dirs:
            if not directory.is_dir():
                continue
            in_this_dir: dict[str, str] = {}
            files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
            for path in files:
                try:
                    desc = load_target_file(path)
                    entry = CatalogEntry(desc.name, str(path), desc)
                except ConfigurationError as exc:
                    entry = CatalogEntry(path.stem, str(path), None, str(exc))
                if entry.name in in_this_dir:
                    raise ConfigurationError(
                        f"{path}: target name '{entry.name}' is already described by "
                        f"{in_this_dir[entry.name]}"
                    )
                in_this_dir[entry.name] = str(path)
                entries.setdefault(entry.name, entry)
        self._entries = entries
        return entries

    def names(self) -> list[str]:
        return sorted(self._scan())

    def entries(self) -> list[CatalogEntry]:
        return [self._scan()[name] for name in self.names()]

    def get(self, name: str) -> TargetDescription:
        """The description of `name`; an invalid file raises its validation error."""
        entry = self._scan().get(name)
        if entry is None:
            searched = ", ".join(str(d) for d in self.dirs) or "no directories"
            raise UnknownTargetError(
                f"unknown target '{name}' (known: {', '.join(self.names()) or 'none'}; "
                f"searched {searched}; add a YAML file there or pass --target-dir)"
            )
        if entry.description is None:
            raise ConfigurationError(entry.error)
        return entry.description

    def resolve(self, names: Iterable[str]) -> list[TargetDescription]:
        return [self.get(name) for name in names]

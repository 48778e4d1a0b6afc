"""Finding a project's root and pytest configuration the way pytest does, without pytest.

`kenning-hil suite` must give its tests pytest's ids (paths relative to the rootdir) and
apply the project's ``hil_*`` settings, so it looks for the configuration file as pytest
does: from the common ancestor of the given paths upwards, the first directory holding
pytest.toml, .pytest.toml, pytest.ini or .pytest.ini (even empty), a pyproject.toml with a
[tool.pytest] or [tool.pytest.ini_options] table, a tox.ini with [pytest] or a setup.cfg
with [tool:pytest]; failing that the nearest pyproject.toml; failing that the ancestor
itself, with no configuration.
"""

from __future__ import annotations

import configparser
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.config.options import OPTIONS
from kenning_hil.config.settings import HILSettings
from kenning_hil.core.errors import ConfigurationError

# pytest's order; (file, table or section, always the config file when present)
CONFIG_FILES = [
    ("pytest.toml", "pytest", True),
    (".pytest.toml", "pytest", True),
    ("pytest.ini", "pytest", True),
    (".pytest.ini", "pytest", True),
    ("pyproject.toml", "tool.pytest", False),
    ("tox.ini", "pytest", False),
    ("setup.cfg", "tool:pytest", False),
]


@dataclass
class ProjectConfig:
    rootdir: Path
    file: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)  # hil_* values by option dest

    def settings(self, values: dict[str, Any], ignore_ini: Sequence[str] = ()) -> HILSettings:
        """The run's settings: `values` given on the command line (relative paths from the
        current directory), then the environment, then this configuration's hil_* keys
        (less those named in `ignore_ini`), then the defaults."""
        ini = {dest: v for dest, v in self.values.items() if dest not in ignore_ini}
        return HILSettings.resolve(self.rootdir, values, ini, cwd=Path.cwd())


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None


def _table(path: Path, section: str) -> dict | None:
    """The file's pytest settings as a dict; None when it has no such table/section."""
    if path.suffix == ".toml":
        data = _toml(path)
        if path.name == "pyproject.toml":
            pytest_table = data.get("tool", {}).get("pytest")
            if not isinstance(pytest_table, dict):
                return None
            ini_options = pytest_table.get("ini_options")
            return dict(ini_options) if isinstance(ini_options, dict) else dict(pytest_table)
        table = data.get(section)
        return dict(table) if isinstance(table, dict) else {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error) as exc:
        raise ConfigurationError(f"{path}: cannot read it: {exc}") from None
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def hil_values(table: dict) -> dict[str, Any]:
    """The hil_* keys of a pytest settings table, by option dest (ini lists split as pytest's
    "args" type does)."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.ini not in table:
            continue
        value = table[option.ini]
        if option.kind in ("list", "pathlist") and isinstance(value, str):
            value = shlex.split(value)
        values[option.dest] = value
    return values


def common_ancestor(paths: Sequence[Path]) -> Path:
    dirs = [p if p.is_dir() else p.parent for p in (Path(x).resolve() for x in paths)]
    if not dirs:
        return Path.cwd()
    return Path(os.path.commonpath([str(d) for d in dirs]))


def find_project_config(paths: Sequence[Path], rootdir: Path | None = None) -> ProjectConfig:
    """The rootdir and configuration pytest would use for `paths` (or for an explicit
    `rootdir`: its own configuration file, if any)."""
    start = Path(rootdir).resolve() if rootdir is not None else common_ancestor(paths)
    directories = [start] if rootdir is not None else [start, *start.parents]
    for directory in directories:
        for name, section, always in CONFIG_FILES:
            path = directory / name
            if not path.is_file():
                continue
            table = _table(path, section)
            if table is None and not always:
                continue
            return ProjectConfig(directory, path, hil_values(table or {}))
    if rootdir is None:
        for directory in directories:
            if (directory / "pyproject.toml").is_file():
                return ProjectConfig(directory, directory / "pyproject.toml")
    return ProjectConfig(start)

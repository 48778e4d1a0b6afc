"""HIL run settings: one table of options shared by both faces.

Each `Option` is a command-line flag of ``pytest`` (plugin) and of ``kenning-hil suite``
(CLI), an ini key ``hil_*`` and a pytest fixture; `HILSettings` is their resolved form, and
`HILSettings.harness()` builds the library objects a run needs (sessions on board pools,
compile cache, baselines) the same way for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError

MODELS_ENV = "KENNING_HIL_MODELS"
LOCK_DIR_ENV = "KENNING_HIL_LOCK_DIR"
DEFAULT_REPORT_DIR = "results/hil"
DEFAULT_COMPILE_CACHE = ".pytest_cache/kenning-hil-compile"
DEFAULT_MODELS_PATH = "../shared/models"
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Option:
    """One setting: a command-line flag, an ini key of the same name, and a fixture."""

    flag: str
    dest: str
    fixture: str
    help: str
    kind: str = "str"  # str, int, float, bool, path, list, pathlist
    env: str | None = None

    @property
    def ini(self) -> str:
        return f"hil_{self.dest.removeprefix('hil_')}"

    def argparse_kwargs(self) -> dict[str, Any]:
        """`add_argument` keywords (pytest's addoption takes the same): unset is None, so
        the environment, ini and default can fill it in."""
        kwargs: dict[str, Any] = {"dest": self.dest, "help": self.help}
        if self.kind in ("list", "pathlist"):
            kwargs.update(action="append", default=None, metavar="NAME")
        elif self.kind == "bool":
            kwargs.update(action="store_true", default=None)
        else:
            kwargs.update(default=None, type={"int": int, "float": float}.get(self.kind, str))
        return kwargs


OPTIONS = [
    Option("--target", "target", "target", "target to run on (repeatable; default: "
           "host-onnxruntime)", "list"),
    Option("--suite", "suite", "suite", "suite YAML file to collect (repeatable)", "pathlist"),
    Option("--samples", "samples", "samples", "cap on the samples of every HIL run, for quick "
           "smoke runs (default: the run's own count, the suite's, or all)", "int"),
    Option("--hil-timeout", "hil_timeout", "hil_timeout", "seconds to wait for a free board, a "
           "boot, and each target request (default 60)", "float"),
    Option("--baseline", "baseline", "baseline_dir", "directory of baselines to compare "
           "results with", "path"),
    Option("--update-baseline", "update_baseline", "update_baseline", "write measured values "
           "as the new baselines instead of comparing", "bool"),
    Option("--hil-report", "hil_report", "hil_report_dir", "directory for per-test results "
           f"and the session report (default: {DEFAULT_REPORT_DIR})", "path"),
    Option("--compile-cache", "compile_cache", "compile_cache_dir", "compile cache directory "
           f"(default: {DEFAULT_COMPILE_CACHE})", "path"),
    Option("--target-dir", "target_dir", "target_dirs", "directory of target YAML files, "
           "searched before ./targets (repeatable)", "pathlist"),
    Option("--models-path", "models_path", "models_path", "directory of external models "
           f"(env {MODELS_ENV}; default {DEFAULT_MODELS_PATH})", "path", env=MODELS_ENV),
    Option("--hil-lock-dir", "hil_lock_dir", "hil_lock_dir", "directory of board pool locks "
           f"shared by all test processes (env {LOCK_DIR_ENV})", "path", env=LOCK_DIR_ENV),
]
OPTION_BY_DEST = {option.dest: option for option in OPTIONS}

# where pytest reads its ini keys, in its order of precedence: (file, section)
INI_FILES = [("pytest.ini", "pytest"), ("pyproject.toml", "tool.pytest.ini_options"),
             ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")]


def read_ini(rootdir: Path) -> tuple[dict[str, Any], str]:
    """The ``hil_*`` keys of the project's pytest configuration, by option dest, and the file
    they came from; outside pytest (``kenning-hil suite``) the project's settings still
    apply. Like pytest, the first file that has the section wins."""
    import configparser
    import shlex

    try:
        import tomllib
    except ImportError:  # Python 3.10: pyproject.toml is not read (pytest.ini etc. are)
        tomllib = None

    for name, section in INI_FILES:
        path = Path(rootdir) / name
        if not path.is_file() or (name == "pyproject.toml" and tomllib is None):
            continue
        try:
            if name == "pyproject.toml":
                table = tomllib.loads(path.read_text(encoding="utf-8"))
                for key in section.split("."):
                    table = table.get(key, {}) if isinstance(table, dict) else {}
                if not table:
                    continue
                raw = dict(table)
            else:
                parser = configparser.ConfigParser(interpolation=None)
                parser.read(path, encoding="utf-8")
                if not parser.has_section(section):
                    continue
                raw = dict(parser.items(section))
        except (OSError, ValueError, configparser.Error) as exc:
            raise ConfigurationError(
                f"{path}: cannot read its [{section}] section: {exc}") from None
        values: dict[str, Any] = {}
        for option in OPTIONS:
            if option.ini not in raw:
                continue
            value = raw[option.ini]
            if option.kind in ("list", "pathlist") and isinstance(value, str):
                value = shlex.split(value)
            values[option.dest] = value
        return values, f"{path} [{section}]"
    return {}, ""


@dataclass
class HILSettings:
    """Resolved settings of a run; relative paths are already resolved against `rootdir`."""

    rootdir: Path
    targets: list[str]
    targets_given: bool  # False: the default target (an unavailable one is skipped, not failed)
    suites: list[Path]
    samples: int | None
    timeout: float
    baseline_dir: Path | None
    update_baseline: bool
    report_dir: Path
    compile_cache_dir: Path
    target_dirs: list[Path]
    models_path: Path
    lock_dir: Path | None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, rootdir: Path, values: dict[str, Any],
                ini: dict[str, Any] | None = None) -> HILSettings:
        """Settings from raw option values by dest (None: not given), then the environment
        (options with `env`), then `ini` values by dest, then the defaults."""
        from kenning_hil.targets.catalog import DEFAULT_TARGET

        rootdir = Path(rootdir)
        values = dict(values)
        sources: dict[str, str] = {}
        for option in OPTIONS:
            sources[option.dest] = "command line"
            if values.get(option.dest) in (None, []):
                if option.env and os.environ.get(option.env):
                    values[option.dest] = os.environ[option.env]
                    sources[option.dest] = f"environment {option.env}"
                elif ini and ini.get(option.dest) not in (None, "", []):
                    values[option.dest] = ini[option.dest]
                    sources[option.dest] = f"ini {option.ini}"
                else:
                    sources[option.dest] = "default"

        def path(value: Any) -> Path:
            result = Path(str(value)).expanduser()
            return result if result.is_absolute() else rootdir / result

        targets = [t for item in (values.get("target") or []) for t in str(item).split(",") if t]
        update = values.get("update_baseline")
        if isinstance(update, str):
            update = update.strip().lower() in ("1", "true", "yes", "on")
        settings = cls(
            rootdir=rootdir,
            targets=targets or [DEFAULT_TARGET],
            targets_given=bool(targets),
            suites=[path(p) for p in (values.get("suite") or [])],
            samples=_positive(OPTION_BY_DEST["samples"], values.get("samples"), int),
            timeout=_positive(OPTION_BY_DEST["hil_timeout"], values.get("hil_timeout"), float)
            or DEFAULT_TIMEOUT,
            baseline_dir=None if values.get("baseline") is None else path(values["baseline"]),
            update_baseline=bool(update),
            report_dir=path(values.get("hil_report") or DEFAULT_REPORT_DIR),
            compile_cache_dir=path(values.get("compile_cache") or DEFAULT_COMPILE_CACHE),
            target_dirs=[*(path(p) for p in (values.get("target_dir") or [])),
                          rootdir / "targets"],
            models_path=path(values.get("models_path") or DEFAULT_MODELS_PATH),
            lock_dir=None if values.get("hil_lock_dir") is None else path(values["hil_lock_dir"]),
            sources=sources,
        )
        if settings.update_baseline and settings.baseline_dir is None:
            raise ConfigurationError("--update-baseline needs --baseline DIR (where to write them)")
        return settings

    def prepare_report_dir(self) -> None:
        """Creates the report directory before anything runs: an unusable one is a usage
        error now, not a failure after the first measurement."""
        try:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            probe = self.report_dir / f".write-probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigurationError(
                f"--hil-report / hil_report: cannot write to {self.report_dir}: "
                f"{exc.strerror or exc}"
            ) from None

    def catalog(self):
        from kenning_hil.targets.catalog import TargetCatalog

        return TargetCatalog(self.target_dirs)

    def harness(self, holder: str = "", workers: int = 1):
        """The per-process Harness: sessions on the targets' pools, compile cache, baselines."""
        from kenning_hil.baseline import BaselineStore
        from kenning_hil.cache import CompileCache
        from kenning_hil.harness import Harness
        from kenning_hil.targets.sessions import SessionManager

        sessions = SessionManager(
            workdir=self.report_dir / "targets",
            lock_dir=self.lock_dir,
            default_timeout=self.timeout,
            holder=holder,
            workers=workers,
        )
        return Harness(
            sessions,
            CompileCache(self.compile_cache_dir),
            self.report_dir,
            search=[self.rootdir, self.models_path],
            baselines=BaselineStore(self.baseline_dir) if self.baseline_dir else None,
            update_baseline=self.update_baseline,
        )


def capped_samples(asked: int | None, cap: int | None) -> int | None:
    """The samples a run uses: what it asked for (None: the whole dataset), at most `cap`
    (--samples / hil_samples), so a smoke run shortens every run, explicit counts too."""
    if cap is None:
        return asked
    return cap if asked is None else min(asked, cap)


def _positive(option: Option, value: Any, cast: type) -> Any:
    if value is None:
        return None
    try:
        result = cast(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{option.flag} / {option.ini}: expected {cast.__name__}, "
                                 f"got {value!r}") from None
    if result <= 0:
        raise ConfigurationError(f"{option.flag} / {option.ini}: must be positive, got {value!r}")
    return result

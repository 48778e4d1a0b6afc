"""Settings resolution and the composition root.

`HILSettings` is the resolved form of the options table (command line, environment, ini,
defaults); `HILSettings.harness()` builds the library objects a run needs (sessions on
board pools, compile cache, baselines), the one place they are put together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.config.options import (
    DEFAULT_COMPILE_CACHE,
    DEFAULT_MODELS_PATH,
    DEFAULT_REPORT_DIR,
    DEFAULT_TIMEOUT,
    OPTION_BY_DEST,
    OPTIONS,
    Option,
)
from kenning_hil.core.errors import ConfigurationError, os_reason


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
    # reruns of a test after an infrastructure error (0: none; run/outcome.py)
    retries: int = 0
    # progress display of long work (run/progress.py); off with --no-progress
    progress: bool = True

    @classmethod
    def resolve(cls, rootdir: Path, values: dict[str, Any],
                ini: dict[str, Any] | None = None, cwd: Path | None = None) -> HILSettings:
        """Settings from raw option values by dest (None: not given), then the environment
        (options with `env`), then `ini` values by dest, then the defaults. Relative paths
        given on the command line or in the environment start at `cwd` (where the command
        was run, as for pytest's own path options; default: `rootdir`); those from the ini
        file and the defaults start at `rootdir`."""
        from kenning_hil.targets.catalog import DEFAULT_TARGET, SHIPPED_TARGETS_DIR

        rootdir = Path(rootdir)
        cwd = Path(cwd) if cwd is not None else rootdir
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

        def path(value: Any, dest: str = "") -> Path:
            result = Path(str(value)).expanduser()
            if result.is_absolute():
                return result
            given_here = sources.get(dest, "").startswith(("command line", "environment"))
            return (cwd if given_here else rootdir) / result

        names = [t.strip() for item in (values.get("target") or []) for t in str(item).split(",")]
        targets = list(dict.fromkeys(t for t in names if t))  # a target named twice runs once
        update = values.get("update_baseline")
        if isinstance(update, str):
            update = update.strip().lower() in ("1", "true", "yes", "on")
        settings = cls(
            rootdir=rootdir,
            targets=targets or [DEFAULT_TARGET],
            targets_given=bool(targets),
            suites=[path(p, "suite") for p in (values.get("suite") or [])],
            samples=_positive(OPTION_BY_DEST["samples"], values.get("samples"), int),
            timeout=_positive(OPTION_BY_DEST["hil_timeout"], values.get("hil_timeout"), float)
            or DEFAULT_TIMEOUT,
            baseline_dir=None if values.get("baseline") is None
            else path(values["baseline"], "baseline"),
            update_baseline=bool(update),
            report_dir=path(values.get("hil_report") or DEFAULT_REPORT_DIR, "hil_report"),
            compile_cache_dir=path(values.get("compile_cache") or DEFAULT_COMPILE_CACHE,
                                   "compile_cache"),
            target_dirs=_search_order(
                *(path(p, "target_dir") for p in (values.get("target_dir") or [])),
                rootdir / "targets", SHIPPED_TARGETS_DIR),
            models_path=path(values.get("models_path") or DEFAULT_MODELS_PATH, "models_path"),
            lock_dir=None if values.get("hil_lock_dir") is None
            else path(values["hil_lock_dir"], "hil_lock_dir"),
            sources=sources,
            retries=_count(OPTION_BY_DEST["hil_retries"], values.get("hil_retries")),
            progress=_flag(OPTION_BY_DEST["progress"], values.get("progress"), True),
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
                f"{os_reason(exc)}"
            ) from None

    def harness(self, holder: str = "", workers: int = 1, progress: Any = None):
        """The per-process Harness: sessions on the targets' pools, compile cache, baselines;
        `progress` (run/progress.py, built by the face that knows its terminal) shows long
        work."""
        from kenning_hil.judge.baselines import BaselineStore
        from kenning_hil.run.compile_cache import CompileCache
        from kenning_hil.run.harness import Harness
        from kenning_hil.targets.sessions import SessionManager

        sessions = SessionManager(
            workdir=self.report_dir / "targets",
            lock_dir=self.lock_dir,
            default_timeout=self.timeout,
            holder=holder,
            workers=workers,
            progress=progress,
        )
        return Harness(
            sessions,
            CompileCache(self.compile_cache_dir),
            self.report_dir,
            search=[self.rootdir, self.models_path],
            baselines=BaselineStore(self.baseline_dir) if self.baseline_dir else None,
            update_baseline=self.update_baseline,
            progress=progress,
        )


def capped_samples(asked: int | None, cap: int | None) -> int | None:
    """The samples a run uses: what it asked for (None: the whole dataset), at most `cap`
    (--samples / hil_samples), so a smoke run shortens every run, explicit counts too."""
    if cap is None:
        return asked
    return cap if asked is None else min(asked, cap)


def _flag(option: Option, value: Any, default: bool) -> bool:
    """A yes/no setting from the command line (a bool) or an ini / environment string."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{option.flag} / {option.ini}: expected true or false, got "
                             f"{value!r}")


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


def _count(option: Option, value: Any) -> int:
    """A count that may be 0 (unset: 0)."""
    if value is None:
        return 0
    try:
        result = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{option.flag} / {option.ini}: expected a whole number, "
                                 f"got {value!r}") from None
    if result < 0:
        raise ConfigurationError(f"{option.flag} / {option.ini}: must be 0 or more, got {value!r}")
    return result


def _search_order(*dirs: Path) -> list[Path]:
    """`dirs` in order, each folder once: in this repository the project's targets/ is also
    the shipped one."""
    seen: set[Path] = set()
    unique = []
    for directory in dirs:
        if directory.resolve() not in seen:
            seen.add(directory.resolve())
            unique.append(directory)
    return unique

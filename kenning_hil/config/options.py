"""The options table: each `Option` is a command-line flag of ``pytest`` (plugin), an ini
key ``hil_*`` and a pytest fixture, with the defaults they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODELS_ENV = "KENNING_HIL_MODELS"
LOCK_DIR_ENV = "KENNING_HIL_LOCK_DIR"
DEFAULT_REPORT_DIR = "results/hil"
DEFAULT_COMPILE_CACHE = ".pytest_cache/kenning-hil-compile"
# external models (MLPerf Tiny, ...): `models/` of the project (its rootdir); a project keeps
# them elsewhere with hil_models_path, KENNING_HIL_MODELS or --models-path
DEFAULT_MODELS_PATH = "models"
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
    metavar: str | None = None

    @property
    def ini(self) -> str:
        return f"hil_{self.dest.removeprefix('hil_')}"

    def argparse_kwargs(self) -> dict[str, Any]:
        """`add_argument` keywords (pytest's addoption takes the same): unset is None, so
        the environment, ini and default can fill it in."""
        kwargs: dict[str, Any] = {"dest": self.dest, "help": self.help}
        if self.kind in ("list", "pathlist"):
            kwargs.update(action="append", default=None)
        elif self.kind == "bool" and self.flag.startswith("--no-"):
            # `--no-progress` turns off what is on by default (ini `hil_progress = false`)
            kwargs.update(action="store_const", const=False, default=None)
        elif self.kind == "bool":
            kwargs.update(action="store_true", default=None)
        else:
            kwargs.update(default=None, type={"int": int, "float": float}.get(self.kind, str))
        if self.kind != "bool":
            kwargs["metavar"] = self.metavar or {"path": "DIR", "pathlist": "PATH", "int": "N",
                                                 "float": "S"}.get(self.kind, "NAME")
        return kwargs


OPTIONS = [
    Option("--target", "target", "target", "target to run on (repeatable; default: "
           "host-onnxruntime)", "list"),
    Option("--suite", "suite", "suite", "suite YAML file to collect (repeatable)", "pathlist"),
    Option("--samples", "samples", "samples", "cap on the samples of every HIL run, for quick "
           "smoke runs (default: the run's own count, the suite's, or all)", "int"),
    Option("--hil-timeout", "hil_timeout", "hil_timeout", "seconds to wait for a free board, a "
           "boot, and each target request (default 60)", "float"),
    Option("--hil-retries", "hil_retries", "hil_retries", "times a test is rerun on a fresh "
           "board after an infrastructure error (board did not boot, connection lost, emulator "
           "died, lock timeout, flash failed); never after a failed check (default 0)", "int"),
    Option("--no-progress", "progress", "hil_progress", "no progress display of compiling, "
           "firmware builds, model uploads and dataset runs (default: a bar with rate and ETA "
           "on a terminal, one line per finished phase otherwise; ini hil_progress = false)",
           "bool"),
    Option("--baseline", "baseline", "baseline_dir", "directory of baselines to compare "
           "results with", "path"),
    Option("--update-baseline", "update_baseline", "update_baseline", "write measured values "
           "as the new baselines instead of comparing", "bool"),
    Option("--hil-report", "hil_report", "hil_report_dir", "directory for per-test results "
           f"and the session report (default: {DEFAULT_REPORT_DIR})", "path"),
    Option("--compile-cache", "compile_cache", "compile_cache_dir", "compile cache directory "
           f"(default: {DEFAULT_COMPILE_CACHE})", "path"),
    Option("--target-dir", "target_dir", "target_dirs", "directory of target YAML files, "
           "searched before ./targets and the shipped ones (repeatable)", "pathlist",
           metavar="DIR"),
    Option("--models-path", "models_path", "models_path", "directory of external models "
           f"(env {MODELS_ENV}; default {DEFAULT_MODELS_PATH}/ under the rootdir)", "path",
           env=MODELS_ENV),
    Option("--hil-lock-dir", "hil_lock_dir", "hil_lock_dir", "directory of board pool locks "
           f"shared by all test processes (env {LOCK_DIR_ENV})", "path", env=LOCK_DIR_ENV),
]
OPTION_BY_DEST = {option.dest: option for option in OPTIONS}

"""pytest in a child process, with the kenning-hil plugin: what `suite`, `targets` and
`report` run, so the project's rootdir, configuration file, `hil_*` settings, collection,
`-k` / `-m` selection and test ids are pytest's own, not a second implementation.

The CLI face must not import pytest (only the plugin does: the import-linter contract), hence
a child process: ``python -m pytest``, the interpreter running this command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from kenning_hil.core.errors import ConfigurationError

PLUGIN = "kenning_hil.pytest_plugin"

# pytest's exit codes (pytest.ExitCode, not imported here)
PYTEST_OK = 0
PYTEST_INTERRUPTED = 2  # collection errors, or stopped (pytest.exit, Ctrl-C)
PYTEST_USAGE_ERROR = 4
PYTEST_NO_TESTS_COLLECTED = 5


@dataclass
class PytestRun:
    returncode: int
    stdout: str | None  # None: it went straight to this process's stdout
    stderr: str


def _plugin_autoloaded() -> bool:
    """Whether pytest will load the plugin itself, through the `pytest11` entry point."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(entry.value == PLUGIN for entry in metadata.entry_points(group="pytest11"))


def pytest_command(args: list[str]) -> list[str]:
    """The child's command line: the plugin named with ``-p`` only where autoloading will not
    load it (naming it twice would register it twice)."""
    plugin = [] if _plugin_autoloaded() else ["-p", PLUGIN]
    return [sys.executable, "-m", "pytest", *plugin, *args]


def run_pytest(args: list[str], capture_stdout: bool = False) -> PytestRun:
    """Runs pytest with `args` in the current directory. Its stdout is this command's own
    (streamed as it runs) unless captured; stderr is kept, so a usage error can be said in
    one line, and is for the caller to pass on."""
    sys.stdout.flush()
    process = subprocess.Popen(pytest_command(args), text=True, stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE if capture_stdout else None)
    try:
        stdout, stderr = process.communicate()
    except KeyboardInterrupt:
        # the terminal interrupted pytest too: let it print its summary and write the report
        process.wait()
        raise
    return PytestRun(process.returncode, stdout, stderr)


def usage_error_message(stderr: str) -> str:
    """pytest's usage error (``ERROR: <message>`` lines, or argparse's ``<prog>: error:
    <message>``) as one line."""
    argparse_error = re.search(r"^\S+: error: (.+)$", stderr, re.M)
    if argparse_error:
        return argparse_error.group(1).strip()
    messages = [line.removeprefix("ERROR: ").strip() for line in stderr.splitlines()
                if line.startswith("ERROR: ")]
    return "; ".join(messages) or " ".join(stderr.split()) or "pytest: usage error"


def project_settings(args: list[str]) -> dict[str, Any]:
    """The project's resolved kenning-hil settings, as pytest run from the current directory
    resolves them (``pytest --hil-settings``: its rootdir, configuration file and hil_* keys;
    `args` are more options, e.g. ``--target-dir``). Paths are strings, absolute."""
    done = run_pytest(["--hil-settings", *args], capture_stdout=True)
    if done.returncode == PYTEST_USAGE_ERROR:
        raise ConfigurationError(usage_error_message(done.stderr))
    lines = [line for line in (done.stdout or "").splitlines() if line.strip()]
    try:
        if done.returncode != PYTEST_OK:
            raise ValueError
        settings = json.loads(lines[-1])  # the last line: a conftest may print before it
    except (IndexError, ValueError):
        sys.stderr.write(done.stderr)
        raise ConfigurationError(
            f"pytest --hil-settings did not give the project's settings (exit code "
            f"{done.returncode}): {' '.join(lines[-3:]) or 'no output'}") from None
    return settings

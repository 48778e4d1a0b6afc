"""Helpers for targets that are local processes (a server, an emulator): the command of the
target server, start one whose output goes to a log file, wait for a line in that log, stop
it without leaving orphans; run a board's command (flash, reset, power) to its end."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from kenning_hil.core.errors import os_reason
from kenning_hil.runtimes import serve
from kenning_hil.sim.process import die_with_parent
from kenning_hil.targets.errors import TargetError

# a killed test worker must not leave its target server running (Linux only)
_die_with_parent = die_with_parent(signal.SIGTERM)


def server_env() -> dict[str, str]:
    """The environment of a target server child: ours, with PYTHONPATH naming this process's
    import path first, so a user's own classes importable here (the ini's `pythonpath`,
    which pytest adds to sys.path only) are importable in the server too."""
    import os

    paths = [p for p in sys.path if p and os.path.isdir(p)]
    inherited = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        dict.fromkeys([*paths, *filter(None, inherited.split(os.pathsep))]))}


def start_logged(cmd: Sequence[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """Starts `cmd` with stdout and stderr appended to `log_path`; the process's
    ``log_offset`` attribute is where its output starts in the file."""
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 (closed below, once the child has it)
    except OSError as exc:
        raise TargetError(
            f"cannot write the log of {Path(cmd[0]).name} at {log_path}: {os_reason(exc)} "
            f"(is the --hil-report directory writable?)"
        ) from None
    with log:
        offset = log.tell()
        try:
            proc = subprocess.Popen(
                [*_die_with_parent, *cmd],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            raise TargetError(f"cannot start {cmd[0]}: {os_reason(exc)}") from exc
    proc.log_offset = offset
    return proc


def log_tail(log_path: Path, lines: int = 5) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


def wait_for_line(
    proc: subprocess.Popen,
    log_path: Path,
    pattern: str,
    timeout: float,
    what: str,
    offset: int = 0,
) -> re.Match:
    """Polls the log from byte `offset` (where this process's output starts) until `pattern`
    matches; TargetError if the process exits or time runs out."""
    regex = re.compile(pattern)
    start = time.monotonic()
    delay = 0.01
    while True:
        try:
            with open(log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            text = ""
        match = regex.search(text)
        if match:
            return match
        if proc.poll() is not None:
            raise TargetError(
                f"{what} exited with code {proc.returncode} before it was ready "
                f"(log {log_path}: {log_tail(log_path)})"
            )
        if time.monotonic() - start > timeout:
            stop(proc)
            raise TargetError(
                f"{what} not ready after {timeout:.1f} s (log {log_path}: {log_tail(log_path)})"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def board_commands_problem(
    options: dict, keys: Sequence[str], firmware: Path | None, path: str | None = None,
) -> str | None:
    """Why the board commands among `keys` (flash, reset, power) cannot run here: a tool not
    on `path` (default: PATH) or the firmware they pass absent; None when nothing is missing."""
    for key in keys:
        if key in options:
            tool = shlex.split(options[key])[0]
            if shutil.which(tool, path=path) is None:
                return f"{key} tool '{tool}' not found on PATH"
    if firmware is not None and not firmware.is_file():
        return f"firmware {firmware} not found"
    return None


def run_board_command(
    cmd: Sequence[str], key: str, where: str, log_path: Path, timeout: float,
    env: dict | None = None,
) -> str:
    """Runs the board command of key `key` (flash, reset, power) to its end, its output
    written to `log_path`; returns its stdout. A missing tool, a timeout or a non-zero exit
    is a TargetError starting with `where` (the target and board), in category 'flash' for
    the flash command and 'boot' for the others (a board not reset or powered did not boot)."""
    shown = shlex.join(cmd)
    category = "flash" if key == "flash" else "boot"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, env=env,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise TargetError(f"{where}: {key} tool not found: {cmd[0]}", category) from exc
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"{where}: {key} command did not finish in {timeout:g} s: {shown}",
                          category) from exc
    log_path.write_text(f"$ {shown}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise TargetError(f"{where}: {key} command failed with code {done.returncode}: "
                          f"{' | '.join(tail)} (log {log_path})", category)
    return done.stdout


def server_command(*args: str) -> list[str]:
    """The target server (`kenning_hil.runtimes.serve`) with `args`, run by the interpreter
    (and so the environment and installed kenning_hil) of this process."""
    return [sys.executable, "-m", serve.MODULE, *args]

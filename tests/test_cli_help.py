"""What a newcomer sees of `kenning-hil`: the commands one line each with no arguments, and
in every command's --help examples that run as written."""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kenning_hil.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def kenning_hil(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kenning_hil.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _commands(parser: argparse.ArgumentParser, prefix: tuple = ()) -> dict[tuple, Any]:
    """Every (sub)command's parser by its words, nested ones (flow run) too."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[(*prefix, name)] = sub
                found.update(_commands(sub, (*prefix, name)))
    return found


COMMANDS = _commands(build_parser())


def _examples(help_text: str) -> list[str]:
    """The command lines under "examples:" (continuation lines joined)."""
    lines = help_text.split("\nexamples:\n", 1)[1].splitlines()
    commands, joined = [], ""
    for line in lines:
        if not line.startswith("  "):
            break
        joined += line.strip().removesuffix("\\")
        if not line.endswith("\\"):
            commands.append(joined)
            joined = ""
        else:
            joined += " "
    return commands


def test_no_arguments_lists_the_commands_one_line_each():
    done = kenning_hil()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    top = [words[0] for words in COMMANDS if len(words) == 1]
    assert len(top) >= 6
    for name in top:
        mine = [line for line in lines if line.split()[:1] == [name]]
        assert len(mine) == 1, (name, done.stdout)
        assert len(mine[0].split()) > 3  # the command and what it does, on that one line
    assert "kenning-hil COMMAND --help" in done.stdout


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_every_command_help_has_an_example(words):
    done = kenning_hil(*words, "--help")
    assert done.returncode == 0, done.stderr
    examples = _examples(done.stdout)
    assert examples, done.stdout
    for example in examples:
        assert example.startswith(f"kenning-hil {' '.join(words[:1])}"), example


# the examples that run here without a board or a server: run as written (outputs aside)
RUNNABLE = {("run",), ("targets",), ("flow", "run")}


@pytest.mark.parametrize("words", sorted(RUNNABLE), ids=" ".join)
def test_examples_run_as_written(words, tmp_path):
    help_text = kenning_hil(*words, "--help").stdout
    example = _examples(help_text)[0]
    argv = shlex.split(example.split("  ", 1)[0])[1:]  # text after two spaces is a comment
    if words[0] == "run":
        argv += ["--output", str(tmp_path / "m.json")]
    if words[0] == "flow":
        argv += ["--hil-report", str(tmp_path / "hil")]
    done = kenning_hil(*argv)
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-2000:])
    assert "\r" not in done.stderr  # not a terminal: progress, if any, in whole lines

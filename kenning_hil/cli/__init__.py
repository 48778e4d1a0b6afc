"""`kenning-hil` command line.

Each subcommand is a module of this package with an `add_command(subparsers)` function: it
adds its parser and sets `handler`, the function that runs it and returns the exit code.
Errors a user can fix (`KenningHILError`) print as one line, ``kenning-hil: error:
<message>``, and exit with code 2 (3 for an infrastructure error: a board that did not
boot, a lost connection, ..., run/outcome.py); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from kenning_hil.cli.export_measurements import add_export_measurements_command
from kenning_hil.cli.flow import add_flow_command
from kenning_hil.cli.report import add_report_command
from kenning_hil.cli.run import add_run_command
from kenning_hil.cli.serve import add_serve_command
from kenning_hil.cli.suite import add_suite_command
from kenning_hil.cli.targets import add_targets_command
from kenning_hil.core.errors import KenningHILError, one_line

PROG = "kenning-hil"
EXIT_USER_ERROR = 2
EXIT_INFRASTRUCTURE = 3  # a broken board or lab, not the model or the input


# --- entry point -----------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_run_command,
    add_targets_command,
    add_serve_command,
    add_suite_command,
    add_report_command,
    add_flow_command,
    add_export_measurements_command,
]


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, except an epilog of examples ("examples:" and indented command
    lines, as each subcommand has) keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser: the examples of its epilog kept as written."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Hardware-in-the-loop tests for ML models on embedded targets.",
        epilog=f"examples:\n  {PROG}                      the commands, one line each\n"
        f"  {PROG} COMMAND --help       a command's options, with examples\n",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_command in SUBCOMMANDS:
        add_command(subparsers)
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """What `kenning-hil` alone prints: one line per command (its help), then how to learn
    more; lines are not wrapped, so each command stays on its own line."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    width = max(len(choice.dest) for choice in commands._choices_actions) + 2
    lines = [f"usage: {PROG} COMMAND [options]", "",
             "Hardware-in-the-loop tests for ML models on embedded targets.", "", "commands:"]
    lines += [f"  {choice.dest.ljust(width)}{choice.help}" for choice in commands._choices_actions]
    lines += ["", f"`{PROG} COMMAND --help` shows a command's options and examples."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # what can this do? the commands, one line each
        print(command_list(parser))
        return 0
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    try:
        return args.handler(args)
    except KenningHILError as exc:
        problems = getattr(exc, "problems", None)
        if problems and len(problems) > 1:  # a file's every problem, one a line
            print(f"{PROG}: error: {getattr(exc, 'source', '')}: {len(problems)} problems",
                  file=sys.stderr)
            for problem in problems:
                print(f"  {one_line(problem)}", file=sys.stderr)
        else:
            from kenning_hil.run.outcome import infrastructure_category, infrastructure_message

            category = infrastructure_category(exc)
            if category is not None:
                print(f"{PROG}: error: {infrastructure_message(category, one_line(exc))}",
                      file=sys.stderr)
                return EXIT_INFRASTRUCTURE
            print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`kenning-hil targets | head`): not an error of ours; point
        # stdout at /dev/null so the interpreter's final flush does not complain again
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


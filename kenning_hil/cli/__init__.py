"""`kenning-hil` command line.

Each subcommand is a module of this package with an `add_command(subparsers)` function: it
adds its parser and sets `handler`, the function that runs it and returns the exit code.
Errors a user can fix (`KenningHILError`) print as one line, ``kenning-hil: error:
<message>``, and exit with code 2; anything else is a bug and keeps its traceback.
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Hardware-in-the-loop tests for ML models on embedded targets."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in SUBCOMMANDS:
        add_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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


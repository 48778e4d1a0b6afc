"""`kenning-hil report`: a results directory's session report, rendered again."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# --- report ----------------------------------------------------------------------------------


def add_report_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render a results directory's session report again (report.md, report.rst)",
        description="Render report.md, report.rst and the latency figure of a results "
        "directory (a pytest run's --hil-report) from its summary.json, and print the "
        "summary table.",
    )
    parser.add_argument("directory", type=Path, nargs="?", default=None,
                        help="results directory with summary.json (default: the project's "
                        "hil_report setting, results/hil)")
    parser.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    from kenning_hil.report.session import rerender
    from kenning_hil.report.summary import format_table, load_rows

    directory = args.directory
    if directory is None:
        from kenning_hil.cli.pytest_process import project_settings

        # the project's hil_report as pytest resolves it from here
        directory = Path(project_settings([])["report_dir"])
    path = rerender(directory)
    print(format_table(load_rows(directory / "summary.json")))
    print(f"report: {path} ({path.with_suffix('.rst').name})")
    return 0

"""`kenning-hil export-measurements`: the per-test results of a pytest run as plain Kenning
measurements files, which Kenning's report tooling reads (`run.results.kenning_measurements`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULT_SUFFIX = ".json"


def add_export_measurements_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export-measurements",
        epilog="examples:\n"
        "  kenning-hil export-measurements                  the project's results/hil\n"
        "  kenning-hil export-measurements results/demo/digits --out measurements/\n",
        help="write Kenning measurements files (seconds, flat keys) from pytest's results",
        description="Convert the per-test result files of a pytest run (<hil-report>/tests/"
        "*.json, measurements nested under a key, times in ns) into plain Kenning "
        "measurements files: Kenning's keys at the top level, times in seconds, our ns "
        "figures under <key>_ns, format_version 2. One file per result.",
    )
    parser.add_argument("results", type=Path, nargs="*",
                        help="results directories or result files (default: the project's "
                        "hil_report setting, results/hil)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the files (default: <results dir>/kenning); a "
                        "path ending in .json when exporting one result file")
    parser.set_defaults(handler=export_measurements_command)


def result_files(paths: list[Path]) -> list[Path]:
    """The result files named, or those under each results directory's tests/."""
    from kenning_hil.core.errors import ConfigurationError

    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            tests = path / "tests" if (path / "tests").is_dir() else path
            found = sorted(p for p in tests.glob(f"*{RESULT_SUFFIX}") if not p.name.startswith("."))
            if not found:
                raise ConfigurationError(f"{tests}: no result files (*.json) there")
            files += found
        else:
            raise ConfigurationError(f"{path}: no such results directory or file")
    return files


def export_measurements_command(args: argparse.Namespace) -> int:
    from kenning_hil.core.errors import ConfigurationError, os_reason
    from kenning_hil.core.measurements import save_json_file
    from kenning_hil.run.results import kenning_measurements

    inputs = list(args.results)
    if not inputs:
        from kenning_hil.cli.pytest_process import project_settings

        inputs = [Path(project_settings([])["report_dir"])]
    files = result_files(inputs)
    single = args.out is not None and args.out.suffix == RESULT_SUFFIX
    if single and len(files) != 1:
        raise ConfigurationError(
            f"--out {args.out}: a file for one result, but {len(files)} were given")
    out_dir = args.out if args.out is not None else (
        inputs[0] / "kenning" if inputs[0].is_dir() else inputs[0].parent / "kenning")
    for path in files:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigurationError(
                f"{path}: cannot read the result file: {os_reason(exc)}") from None
        if not isinstance(record, dict):
            raise ConfigurationError(f"{path}: not a result file (a JSON object)")
        target = args.out if single else out_dir / path.name
        save_json_file(target, kenning_measurements(record), "Kenning measurements")
        print(target)
    return 0

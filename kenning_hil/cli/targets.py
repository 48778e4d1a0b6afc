"""`kenning-hil targets`: the targets a project knows and whether each is usable here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# --- targets ---------------------------------------------------------------------------------


def add_targets_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "targets",
        help="list known targets and whether each is available here (and why not)",
        description="List the targets described in the target directories (and the built-in "
        "host target), checking each without booting it. The project root, its targets/ and "
        "its hil_target_dir setting are found as pytest finds them, from the current "
        "directory upwards.",
    )
    parser.add_argument(
        "--target-dir",
        dest="target_dirs",
        action="append",
        type=Path,
        default=[],
        help="directory of target YAML files, searched before the project's targets/ "
        "(repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=targets_command)


def targets_command(args: argparse.Namespace) -> int:
    import json

    from kenning_hil.project_config import find_project_config
    from kenning_hil.targets.gpu import gpu_visibility
    from kenning_hil.targets.listing import format_rows, rows_as_json, target_rows

    given = {"target_dir": [str(p) for p in args.target_dirs] or None}
    settings = find_project_config([Path.cwd()]).settings(given)
    rows = target_rows(settings.catalog())
    if args.json:
        print(json.dumps(rows_as_json(rows), indent=2))
    else:
        print(format_rows(rows))
        # gpu-marked tests run only where one is visible
        print(f"gpu: {gpu_visibility().describe()}")
    return 0

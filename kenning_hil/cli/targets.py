"""`kenning-hil targets`: the targets a project knows and whether each is usable here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# --- targets ---------------------------------------------------------------------------------


def add_targets_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "targets",
        epilog="examples:\n"
        "  kenning-hil targets                     every target, usable here or why not\n"
        "  kenning-hil targets --target-dir lab/   with the lab's own target files\n",
        help="list known targets and whether each is available here (and why not); exits 1 "
        "when a target file is invalid",
        description="List the targets described in the target directories (and those shipped "
        "with kenning-hil), checking each without booting it. The project root, its targets/ and "
        "its hil_target_dir setting are pytest's, from the current directory (read from "
        "`pytest --hil-settings`).",
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

    from kenning_hil.cli.pytest_process import project_settings
    from kenning_hil.runtimes.serve import native_code_runtimes
    from kenning_hil.targets.catalog import TargetCatalog
    from kenning_hil.targets.gpu import gpu_visibility
    from kenning_hil.targets.listing import format_rows, invalid_rows, rows_as_json, target_rows

    # the project's target directories as pytest resolves them from here
    settings = project_settings([f"--target-dir={p}" for p in args.target_dirs])
    rows = target_rows(TargetCatalog([Path(p) for p in settings["target_dirs"]]))
    if args.json:
        print(json.dumps(rows_as_json(rows), indent=2))
    else:
        print(format_rows(rows))
        # which runtimes a served model runs as native code (opt-in on the server)
        print(
            f"native code: runtime(s) {', '.join(native_code_runtimes()) or 'none'} run an "
            f"uploaded model as native code; `kenning-hil serve` refuses such uploads unless "
            f"started with --allow-native-models"
        )
        # gpu-marked tests run only where one is visible
        print(f"gpu: {gpu_visibility().describe()}")
    invalid = invalid_rows(rows)
    if invalid:
        import sys

        # unavailable here is fine; a description that cannot be read is a mistake to fix
        print(f"kenning-hil targets: {len(invalid)} invalid target file(s): "
              f"{', '.join(r.source for r in invalid)}", file=sys.stderr)
        return 1
    return 0

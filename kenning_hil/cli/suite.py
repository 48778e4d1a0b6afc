"""`kenning-hil suite`: the tests of suite files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# --- suite -----------------------------------------------------------------------------------


def add_suite_command(subparsers: Any) -> None:
    from kenning_hil.config.options import OPTIONS

    parser = subparsers.add_parser(
        "suite",
        help="run suite YAML files on targets without pytest (same tests, ids, baselines)",
        description="Run the tests of suite files on targets, one after another: compile "
        "(cached), run on a free board of each target's pool, judge thresholds and baselines, "
        "write per-test results and the session report, print the summary table. The project "
        "root and its pytest configuration are found as pytest finds them, so test ids, "
        "hil_* settings, baselines and results are the same as `pytest SUITE --target ...`. "
        "Exit code 1 when a test failed or errored, 2 on a usage error.",
    )
    parser.add_argument("suites", nargs="*", type=Path, metavar="SUITE",
                        help="suite YAML file or a directory of them (default: the ini's "
                        "hil_suite)")
    for option in OPTIONS:
        if option.dest == "suite":
            continue
        parser.add_argument(option.flag, **option.argparse_kwargs())
    parser.add_argument("--rootdir", type=Path, default=None,
                        help="project root (default: found from the suites' directory upwards, "
                        "as pytest does); test ids and the ini's relative paths start here")
    parser.add_argument("-k", dest="keyword", metavar="EXPRESSION",
                        help="run only tests whose id matches, as pytest -k: names are "
                        "case-insensitive substrings, with and / or / not")
    parser.add_argument("-m", dest="markexpr", metavar="MARKEXPR",
                        help="run only tests whose marks match, as pytest -m (e.g. 'not gpu')")
    parser.set_defaults(handler=suite_command)


def suite_command(args: argparse.Namespace) -> int:
    from kenning_hil.config.options import OPTIONS
    from kenning_hil.project_config import find_project_config
    from kenning_hil.report.summary import format_table
    from kenning_hil.suite_run import run_suites
    from kenning_hil.suites.loader import suite_files

    project = find_project_config(args.suites or [Path.cwd()], args.rootdir)
    print(f"rootdir: {project.rootdir}, configfile: {project.file or 'none'}")
    values = {option.dest: getattr(args, option.dest, None) for option in OPTIONS}
    values["suite"] = None
    if args.suites:
        values["suite"] = [str(f.resolve()) for p in args.suites for f in suite_files(p)]
    # named suites replace the ini's, as path arguments replace pytest's testpaths
    settings = project.settings(values, ignore_ini=("suite",) if args.suites else ())
    if not args.suites:
        settings.suites = [f for p in settings.suites for f in suite_files(p)]
    outcome = run_suites(settings, args.keyword, args.markexpr)
    print(format_table(outcome.rows))
    counts = ", ".join(f"{outcome.count(o)} {o}" for o in ("passed", "failed", "error",
                                                           "skipped") if outcome.count(o))
    print(f"{counts}; results: {settings.report_dir} (report: {outcome.report})")
    from kenning_hil.run.outcome import baseline_summary

    line = baseline_summary(outcome.baselines, settings.baseline_dir)
    if line:
        print(line)
    return 1 if outcome.failed else 0

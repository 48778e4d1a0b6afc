"""`kenning-hil suite`: the tests of suite files, run by pytest with the kenning-hil plugin."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# --- suite -----------------------------------------------------------------------------------

EXIT_CODES = ("0 when every selected test passed (or skipped), 1 when a test "
              "failed or errored, 2 on a usage error (pytest's 4, said in one line), on "
              "errors while collecting the suites (pytest's 2) and when no test was selected "
              "(pytest's 5)")


def add_suite_command(subparsers: Any) -> None:
    from kenning_hil.config.options import OPTIONS

    parser = subparsers.add_parser(
        "suite",
        epilog="examples:\n"
        "  kenning-hil suite suites/digits.yaml --target host-onnxruntime --target qemu-m4\n"
        "  kenning-hil suite suites/ -k int8 --samples 10 --no-progress\n",
        help="run suite YAML files on targets (pytest with the plugin, suite tests only)",
        description="Run the tests of suite files: `pytest SUITE... --hil-suites-only` in a "
        "child process, with the kenning-hil plugin. pytest finds the project root and its "
        "configuration, collects, selects (-k, -m), runs and reports, so test ids, hil_* "
        "settings, baselines and results are those of `pytest SUITE --target ...`; only "
        "suite tests run (other tests under the paths are not collected). The output is "
        f"pytest's. Exit codes: {EXIT_CODES}.",
    )
    parser.add_argument("suites", nargs="*", type=Path, metavar="SUITE",
                        help="suite YAML file or a directory of them (default: the ini's "
                        "hil_suite)")
    for option in OPTIONS:
        if option.dest == "suite":
            continue
        parser.add_argument(option.flag, **option.argparse_kwargs())
    parser.add_argument("--rootdir", type=Path, default=None, metavar="DIR",
                        help="project root (default: found by pytest from the suites' "
                        "directory upwards); test ids and the ini's relative paths start here")
    parser.add_argument("-k", dest="keyword", metavar="EXPRESSION",
                        help="run only tests whose names match, as pytest -k (it is pytest's "
                        "-k: names, marks, and / or / not)")
    parser.add_argument("-m", dest="markexpr", metavar="MARKEXPR",
                        help="run only tests whose marks match, as pytest -m (e.g. 'not gpu')")
    parser.add_argument("--collect-only", action="store_true",
                        help="list the selected tests' ids, one a line, without running them")
    parser.set_defaults(handler=suite_command)


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The pytest command line of a `kenning-hil suite` command line."""
    from kenning_hil.config.options import OPTIONS

    command = ["--hil-suites-only"]
    for option in OPTIONS:
        value = getattr(args, option.dest, None)
        if value is None:
            continue
        if isinstance(value, bool):
            # given: True for a switch that turns something on, False for a --no-... one
            if value is not option.flag.startswith("--no-"):
                command.append(option.flag)
        else:  # flag=value: a value that starts with "-" is still the flag's
            command += [f"{option.flag}={v}" for v in (value if isinstance(value, list)
                                                        else [value])]
    if args.rootdir is not None:
        command.append(f"--rootdir={args.rootdir}")
    if args.keyword is not None:
        command += ["-k", args.keyword]
    if args.markexpr is not None:
        command += ["-m", args.markexpr]
    if args.collect_only:
        command += ["--collect-only", "-q"]
    # after "--", pytest reads every argument as a path, even one starting with "-"
    return [*command, "--", *(str(path) for path in args.suites)]


def suite_command(args: argparse.Namespace) -> int:
    from kenning_hil.cli import pytest_process as child
    from kenning_hil.core.errors import ConfigurationError

    done = child.run_pytest(pytest_arguments(args))
    if done.returncode == child.PYTEST_USAGE_ERROR:
        raise ConfigurationError(child.usage_error_message(done.stderr))
    sys.stderr.write(done.stderr)
    if done.returncode == child.PYTEST_NO_TESTS_COLLECTED:
        raise ConfigurationError("no tests selected" + "".join(
            f" ({flag} {expression!r} matched none)"
            for flag, expression in (("-k", args.keyword), ("-m", args.markexpr))
            if expression))
    if done.returncode == child.PYTEST_INTERRUPTED:
        raise ConfigurationError("pytest was interrupted: errors while collecting the "
                                 "suites, or a stop (its output above says which)")
    return done.returncode  # 0 passed, 1 a test failed or errored; anything else is pytest's

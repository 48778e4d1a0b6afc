"""`kenning-hil` command line.

Each subcommand is one `add_*_command(subparsers)` function listed in `SUBCOMMANDS`: it adds
its parser and sets `handler`, the function that runs it and returns the exit code. Errors a
user can fix (`KenningHILError`) print as one line, ``kenning-hil: error: <message>``, and exit
with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.core.measurements import to_jsonable
from kenning_hil.registry import registered_names, resolve_class

PROG = "kenning-hil"
EXIT_USER_ERROR = 2
RESULTS_DIR = Path("results")

# flag form of `run`: (option, dest, registry kind)
BLOCK_OPTIONS = (
    ("--dataset", "dataset_type", "dataset"),
    ("--model-wrapper", "model_wrapper_type", "model_wrapper"),
    ("--runtime", "runtime_type", "runtime"),
    ("--protocol", "protocol_type", "protocol"),
)


def one_line(error: BaseException) -> str:
    """The error message on a single line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__


# --- run -----------------------------------------------------------------------------------


def _add_class_options(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """Adds an argument group per registered class; returns (option dests, unavailable
    classes). Defaults are left unset so each class applies its own."""
    before = {action.dest for action in parser._actions}
    unavailable = []
    for kind in ("dataset", "model_wrapper", "optimizer", "runtime", "protocol"):
        for name in registered_names(kind):
            try:
                cls = resolve_class(kind, name)
            except KenningHILError as exc:
                unavailable.append(f"{kind} '{name}' ({one_line(exc)})")
                continue
            _, group = cls.form_argparse(parser)
            group.title = f"{kind} '{name}' ({cls.__name__}) options"
    dests = [a.dest for a in parser._actions if a.dest not in before]
    parser.set_defaults(**{dest: None for dest in dests})
    return dests, unavailable


def add_run_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a scenario: dataset -> model -> optimizers -> runtime, print a summary",
        description=(
            "Run a scenario JSON file, or build one from flags (--dataset, --model-wrapper, "
            "--runtime and the options of the chosen classes). Relative paths resolve against "
            "the current directory."
        ),
    )
    parser.add_argument("scenario", nargs="?", type=Path, help="scenario JSON file")
    parser.add_argument(
        "--output",
        type=Path,
        help="measurements JSON to write (default: results/<scenario>-<timestamp>.json)",
    )
    parser.add_argument("--samples", type=int, help="run at most this many samples")
    for option, dest, kind in BLOCK_OPTIONS:
        parser.add_argument(
            option, dest=dest, help=f"{kind} type: {', '.join(registered_names(kind)) or '-'}"
        )
    parser.add_argument(
        "--optimizers",
        dest="optimizer_types",
        nargs="+",
        default=[],
        help=f"optimizer types, in order: {', '.join(registered_names('optimizer')) or '-'}",
    )
    dests, unavailable = _add_class_options(parser)
    if unavailable:
        parser.epilog = "Not available here: " + "; ".join(unavailable)
    parser.set_defaults(handler=run_command, class_option_dests=dests)


def _scenario_from_flags(args: argparse.Namespace) -> tuple[dict, str]:
    missing = [opt for opt, dest, kind in BLOCK_OPTIONS[:3] if getattr(args, dest) is None]
    if missing:
        raise ConfigurationError(
            f"run: give a scenario file, or all of --dataset, --model-wrapper and --runtime "
            f"(missing: {', '.join(missing)})"
        )

    def entry(kind: str, name: str) -> dict:
        cls = resolve_class(kind, name)
        return {"type": name, "parameters": to_jsonable(cls.parse_argparse_parameters(args))}

    scenario: dict[str, Any] = {}
    for _, dest, kind in BLOCK_OPTIONS:
        if getattr(args, dest) is not None:
            scenario[kind] = entry(kind, getattr(args, dest))
    if args.optimizer_types:
        scenario["optimizers"] = [entry("optimizer", name) for name in args.optimizer_types]
    model_path = scenario["model_wrapper"]["parameters"].get("model_path") or "model"
    name = f"{Path(model_path).name.split('.')[0]}-{args.runtime_type.split('.')[-1]}"
    return scenario, name


def run_command(args: argparse.Namespace) -> int:
    from kenning_hil.pipeline import build_pipeline, load_scenario

    if args.samples is not None and args.samples < 1:
        raise ConfigurationError(f"run: --samples must be a positive integer, got {args.samples}")
    if args.scenario is not None:
        flags = [opt for opt, dest, _ in BLOCK_OPTIONS if getattr(args, dest) is not None]
        flags += ["--optimizers"] if args.optimizer_types else []
        flags += [
            "--" + dest.replace("_", "-")
            for dest in args.class_option_dests
            if getattr(args, dest) is not None and dest != "samples"
        ]
        if flags:
            raise ConfigurationError(
                f"run: {', '.join(flags)} cannot be combined with a scenario file "
                "(put the parameters into the scenario)"
            )
        scenario = load_scenario(args.scenario)
        name, source = args.scenario.stem, str(args.scenario)
    else:
        scenario, name = _scenario_from_flags(args)
        source = "command line"
    pipeline = build_pipeline(scenario, name, source)
    output = args.output or RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    try:
        result = pipeline.run(args.samples)
    except KenningHILError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:  # a run that failed midway keeps its measurements
            partial.save(output)
            print(f"partial measurements: {output}", file=sys.stderr)
        raise
    try:
        result.save(output)
    except OSError as exc:
        raise ConfigurationError(f"run: cannot write measurements to {output}: {exc}") from exc
    print(format_summary(result.summary(), output))
    return 0


def format_summary(summary: dict, output: Path) -> str:
    lines = [f"scenario: {summary['name']}", f"samples: {summary['samples']}"]
    for key in ("accuracy", "top_3_accuracy"):
        if key in summary:
            lines.append(f"{key.replace('_', '-')}: {summary[key]:.4f}")
    latency = summary.get("latency")
    if latency:
        from kenning_hil.baseline import format_seconds

        lines.append(  # the units the pytest table and the reports use
            f"latency p50: {format_seconds(latency['p50'])}, "
            f"p95: {format_seconds(latency['p95'])}"
        )
    if "compiled_model_size" in summary:
        lines.append(f"compiled model size: {summary['compiled_model_size']} bytes")
    lines.append(f"measurements: {output}")
    return "\n".join(lines)


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

    from kenning_hil.gpu import gpu_visibility
    from kenning_hil.project_config import find_project_config
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


# --- serve -----------------------------------------------------------------------------------


def add_serve_command(subparsers: Any) -> None:
    """`serve`: a runtime as a target server, over TCP (default) or a serial line."""
    import json

    def json_object(text: str) -> dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError("must be a JSON object")
        return value

    parser = subparsers.add_parser(
        "serve",
        help="run a target server: a runtime that a host drives over TCP or a serial line",
        description="Serve a runtime over the kenning-hil/Kenning wire protocol, one client at "
        "a time, until interrupted. Prints 'listening on ADDRESS' once ready (with --port 0 "
        "the port is chosen by the system).",
    )
    parser.add_argument(
        "--runtime", required=True, help=f"runtime type: {', '.join(registered_names('runtime'))}"
    )
    parser.add_argument(
        "--runtime-parameters",
        type=json_object,
        default={},
        help='JSON object of runtime parameters, e.g. \'{"num_threads": 1}\'',
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (TCP)")
    parser.add_argument("--port", type=int, default=12345, help="TCP port; 0: any free port")
    parser.add_argument("--serial", help="serve on this serial device or pyserial URL instead")
    parser.add_argument("--baudrate", type=int, default=115200, help="serial line rate")
    parser.add_argument(
        "--checksum",
        choices=["verify", "ignore"],
        default="verify",
        help="received checksums: verify (default) or ignore",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=64 << 20,
        help="largest message (e.g. model) accepted, in bytes",
    )
    parser.add_argument("--max-frame-size", type=int, help="largest frame, header included")
    parser.add_argument(
        "--frame-timeout", type=float, help="seconds before a stalled partial frame is dropped"
    )
    parser.add_argument("--log-level", default="INFO", help="server log level (default: INFO)")
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    import logging
    import signal

    from kenning_hil.core.runtime import Runtime

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    params: dict[str, Any] = {
        "checksum": args.checksum,
        "max_message_size": args.max_message_size,
    }
    if args.max_frame_size is not None:
        params["max_frame_size"] = args.max_frame_size
    if args.frame_timeout is not None:
        params["frame_timeout"] = args.frame_timeout
    if args.serial is not None:
        protocol_type = "uart"
        params.update(port=args.serial, baudrate=args.baudrate)
    else:
        protocol_type = "tcp"
        params.update(host=args.host, port=args.port)
    protocol = resolve_class("protocol", protocol_type).from_json(params)
    runtime_cls = resolve_class("runtime", args.runtime, Runtime)
    runtime = runtime_cls.from_json(args.runtime_parameters, protocol=protocol)
    runtime.prepare_server()
    # SIGTERM stops the server cleanly (closes the port) instead of killing it mid-answer
    signal.signal(signal.SIGTERM, lambda signum, frame: runtime.close_server())
    print(f"listening on {protocol.address}", flush=True)
    runtime.run_server()
    return 0


# --- suite -----------------------------------------------------------------------------------


def add_suite_command(subparsers: Any) -> None:
    from kenning_hil.settings import OPTIONS

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
    from kenning_hil.project_config import find_project_config
    from kenning_hil.report.summary import format_table
    from kenning_hil.settings import OPTIONS
    from kenning_hil.suite import suite_files
    from kenning_hil.suite_run import run_suites

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
    from kenning_hil.harness import baseline_summary

    line = baseline_summary(outcome.baselines, settings.baseline_dir)
    if line:
        print(line)
    return 1 if outcome.failed else 0


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
        from kenning_hil.project_config import find_project_config

        directory = find_project_config([Path.cwd()]).settings({}).report_dir
    path = rerender(directory)
    print(format_table(load_rows(directory / "summary.json")))
    print(f"report: {path} ({path.with_suffix('.rst').name})")
    return 0


# --- entry point -----------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_run_command,
    add_targets_command,
    add_serve_command,
    add_suite_command,
    add_report_command,
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


if __name__ == "__main__":
    sys.exit(main())

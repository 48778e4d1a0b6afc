"""`kenning-hil flow run FLOW.json`: a KenningFlow (data providers -> model runners ->
output collectors) run in a loop until its data ends, `--steps` are done, or Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError

# the settings a flow uses from the options table (the rest are test-run settings)
FLOW_OPTIONS = ("hil_report", "compile_cache", "target_dir", "models_path", "hil_lock_dir",
                "hil_timeout")


def add_flow_command(subparsers: Any) -> None:
    from kenning_hil.config.options import OPTION_BY_DEST

    parser = subparsers.add_parser(
        "flow",
        epilog="examples:\n"
        "  kenning-hil flow run examples/flows/digits-host.json --steps 100\n",
        help="run a KenningFlow: data providers -> model runners -> output collectors",
        description="Run a KenningFlow JSON file (a list of runners: type, parameters, "
        "inputs, outputs; docs/flows.md).",
    )
    actions = parser.add_subparsers(dest="flow_command", metavar="ACTION")
    run = actions.add_parser(
        "run",
        epilog="examples:\n"
        "  kenning-hil flow run examples/flows/digits-host.json --steps 100\n"
        "  kenning-hil flow run examples/flows/digits-qemu-m4.json --target qemu-m4\n",
        help="check and run a flow file",
        description="Check the flow (types, parameters, names, io specs), then run its steps "
        "until a data provider is exhausted, --steps are done or Ctrl-C (the first Ctrl-C "
        "finishes the current step and cleans up; a second one stops at once). The "
        "measurements are written like a test's (<hil-report>/tests/flow-<name>.json). "
        "Relative paths in the flow resolve against the current directory (model files also "
        "against the flow's folder and the models path). Exit codes: 0 done, 2 on a bad flow "
        "or a failed step, 130 when interrupted.",
    )
    run.add_argument("flow", type=Path, metavar="FLOW.json", help="the flow file")
    run.add_argument("--steps", type=int, metavar="N", help="run at most N steps")
    run.add_argument("--target", metavar="NAME",
                     help="run every model runner on this target of the catalog instead")
    for dest in FLOW_OPTIONS:
        option = OPTION_BY_DEST[dest]
        run.add_argument(option.flag, **option.argparse_kwargs())
    run.set_defaults(handler=flow_run)
    parser.set_defaults(handler=lambda args: _no_action(parser))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def flow_run(args: argparse.Namespace) -> int:
    from kenning_hil.config.settings import HILSettings
    from kenning_hil.flows.flowrun import run_flow
    from kenning_hil.targets.catalog import TargetCatalog
    from kenning_hil.targets.target import Target

    if args.steps is not None and args.steps < 1:
        raise ConfigurationError(f"flow run: --steps must be a positive integer, got {args.steps}")
    settings = HILSettings.resolve(Path.cwd(), {dest: getattr(args, dest) for dest in
                                                FLOW_OPTIONS})
    settings.prepare_report_dir()
    catalog = TargetCatalog(settings.target_dirs)
    harness = settings.harness(holder="kenning-hil flow")
    try:
        # progress=None: the flow's own collectors (summary) report progress; a progress
        # display for every flow plugs in here (run_flow's `progress` callback)
        result = run_flow(args.flow, harness, lambda name: Target(catalog.get(name)),
                          steps=args.steps, target=args.target, progress=None)
    except BaseException as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            print(format_flow_summary(partial), file=sys.stderr)
        raise
    finally:
        harness.close()  # boards and servers of this run stop here
    print(format_flow_summary(result))
    return 0


def format_flow_summary(result: Any) -> str:
    from kenning_hil.judge.metrics import format_latency, format_seconds

    state = " (interrupted)" if result.interrupted else " (failed)" if result.error else ""
    lines = [f"flow: {result.name}{state}",
             f"steps: {result.steps} ({result.throughput:.1f}/s)"]
    for key, value in sorted(result.metrics.items()):
        lines.append(f"{key.replace('_', '-')}: {value:.4f}")
    end_to_end = result.end_to_end
    if end_to_end is not None:
        lines.append(f"step p50: {format_seconds(end_to_end.p50)}, "
                     f"p95: {format_seconds(end_to_end.p95)} (end to end)")
    latency = result.latency
    if latency is not None:
        lines.append(f"inference p50: {format_latency(latency.p50, latency.unit)}, "
                     f"p95: {format_latency(latency.p95, latency.unit)} (from {latency.source})")
    lines.append("per runner: " + ", ".join(
        f"{i} {name} {format_seconds(mean)}" for i, (name, mean) in
        enumerate(zip(result.runners, result.runner_mean_s))))
    for error in result.cleanup_errors:
        lines.append(f"cleanup failed: {error}")
    if result.path is not None:
        lines.append(f"results: {result.path}")
    return "\n".join(lines)

"""`kenning-hil run`: one scenario, from a JSON file or flags."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kenning_hil.blocks.registry import registered_names, resolve_class
from kenning_hil.core.errors import ConfigurationError, KenningHILError, one_line
from kenning_hil.core.measurements import COMPILED_MODEL_SIZE, to_jsonable

RESULTS_DIR = Path("results")

# flag form of `run`: (option, dest, registry kind)
BLOCK_OPTIONS = (
    ("--dataset", "dataset_type", "dataset"),
    ("--model-wrapper", "model_wrapper_type", "model_wrapper"),
    ("--runtime", "runtime_type", "runtime"),
    ("--protocol", "protocol_type", "protocol"),
)


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
    from kenning_hil.blocks.entries import load_scenario
    from kenning_hil.run.pipeline import build_pipeline

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
    result.save(output)
    print(format_summary(result.summary(), output))
    return 0


def format_summary(summary: dict, output: Path) -> str:
    lines = [f"scenario: {summary['name']}", f"samples: {summary['samples']}"]
    for key in ("accuracy", "top_3_accuracy"):
        if key in summary:
            lines.append(f"{key.replace('_', '-')}: {summary[key]:.4f}")
    latency = summary.get("latency")
    if latency:
        from kenning_hil.judge.metrics import format_latency

        unit = latency["unit"]
        lines.append(  # the units the pytest table and the reports use
            f"latency p50: {format_latency(latency['p50'], unit)}, "
            f"p95: {format_latency(latency['p95'], unit)} (from {latency['source']})"
        )
    if COMPILED_MODEL_SIZE in summary:
        lines.append(f"compiled model size: {summary[COMPILED_MODEL_SIZE]} bytes")
    lines.append(f"measurements: {output}")
    return "\n".join(lines)

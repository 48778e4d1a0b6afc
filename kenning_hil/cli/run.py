"""`kenning-hil run`: one scenario, from a file (JSON or YAML, ours or Kenning's spelling) or
flags. A Kenning `platform` naming a board we describe runs on that target through the
harness (`HILSettings.harness()`), as a test would; otherwise the pipeline runs here."""

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
        epilog="examples:\n"
        "  kenning-hil run scenarios/digits-onnxruntime.json\n"
        "  kenning-hil run --dataset digits --model-wrapper onnx \\\n"
        "      --model-path models/digits/digits-mlp.onnx --runtime onnxruntime --samples 100\n",
        help="run a scenario: dataset -> model -> optimizers -> runtime, print a summary",
        description=(
            "Run a scenario JSON file, or build one from flags (--dataset, --model-wrapper, "
            "--runtime and the options of the chosen classes). Relative paths resolve against "
            "the current directory."
        ),
    )
    parser.add_argument("scenario", nargs="?", type=Path,
                        help="scenario file: JSON or YAML, in kenning-hil's or Kenning's "
                        "spelling (docs/coming-from-kenning.md)")
    parser.add_argument("--models-path", type=Path, default=None, metavar="DIR",
                        help="where kenning:/// URIs resolve (default: the project's "
                        "hil_models_path, then ./models)")
    parser.add_argument(
        "--output",
        type=Path,
        help="measurements JSON to write (default: results/<scenario>-<timestamp>.json)",
    )
    parser.add_argument("--samples", type=int, help="run at most this many samples")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (compile, firmware build, model upload, samples; "
                        "where stderr is not a terminal, one line per finished phase)")
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
    from kenning_hil.run.pipeline import build_pipeline, local_platform

    if args.samples is not None and args.samples < 1:
        raise ConfigurationError(f"run: --samples must be a positive integer, got {args.samples}")
    report_path = None
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
        notes: list[str] = []
        scenario = load_scenario(args.scenario, _models_search(args), notes)
        for note in notes:
            print(f"kenning-hil: note: {note}", file=sys.stderr)
        name, source = args.scenario.stem, str(args.scenario)
        report_path = _report_output(scenario.get("report"), source)
    else:
        scenario, name = _scenario_from_flags(args)
        source = "command line"
    output = (args.output or report_path
              or RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    if not local_platform(scenario.get("platform")):
        return _run_on_target(scenario, name, source, args.samples, output,
                              progress=not args.no_progress)
    pipeline = build_pipeline(scenario, name, source)
    from kenning_hil.run.progress import Progress

    try:
        result = pipeline.run(args.samples, progress=Progress.for_stream(
            sys.stderr, enabled=not args.no_progress, leave=True))
    except KenningHILError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:  # a run that failed midway keeps its measurements
            partial.save(output)
            print(f"partial measurements: {output}", file=sys.stderr)
        raise
    result.save(output)
    print(format_summary(result.summary(), output))
    return 0


def _models_search(args: argparse.Namespace) -> list[Path]:
    """Where kenning:/// URIs resolve: --models-path, else the project's hil_models_path (as
    pytest resolves it, asked only when the scenario has such a URI), then ./models."""
    if args.models_path is not None:
        return [args.models_path]
    search = [Path("models")]
    try:
        text = args.scenario.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return search  # load_scenario says what is wrong with the file
    if "kenning://" in text:
        from kenning_hil.cli.pytest_process import project_settings

        try:
            search.insert(0, Path(project_settings([])["models_path"]))
        except KenningHILError:
            pass  # no project here: ./models only
    return search


def _report_output(report: Any, source: str) -> Path | None:
    """Kenning's `report` entry: its first `measurements` path is where the measurements
    file goes (as Kenning's CLI takes it)."""
    if not isinstance(report, dict):
        return None
    paths = (report.get("parameters") or {}).get("measurements")
    if isinstance(paths, str):
        paths = [paths]
    if isinstance(paths, list) and paths and isinstance(paths[0], str):
        return Path(paths[0])
    return None


def _run_on_target(scenario: dict, name: str, source: str, samples: int | None,
                   output: Path, progress: bool = True) -> int:
    """A scenario whose Kenning `platform` names a board: run on that target as `hil.run`
    would (compile cache, pool locks, the board's protocol and runtime), and write the
    measurements file."""
    from kenning_hil.config.settings import HILSettings
    from kenning_hil.core.measurements import measurements_file
    from kenning_hil.run.pipeline import platform_target
    from kenning_hil.run.request import RunRequest
    from kenning_hil.targets.catalog import TargetCatalog
    from kenning_hil.targets.target import Target

    settings = HILSettings.resolve(Path.cwd(), {})
    catalog = TargetCatalog(settings.target_dirs)
    target_name = platform_target(scenario["platform"], catalog, source)
    target = Target(catalog.get(target_name))
    _check_target_entries(scenario, target, source)
    available, reason = target.availability()
    if not available:
        raise ConfigurationError(f"{source}: target '{target_name}' cannot run here: {reason}")
    from kenning_hil.run.progress import Progress

    harness = settings.harness(holder="kenning-hil run", progress=Progress.for_stream(
        sys.stderr, enabled=progress and settings.progress, leave=True))
    request = RunRequest(model_wrapper=scenario["model_wrapper"], dataset=scenario["dataset"],
                         optimizers=scenario.get("optimizers", []), samples=samples, name=name)
    try:
        result = harness.run(target, request, test_id=f"{name}[{target_name}]")
    finally:
        harness.close()
    data = {**measurements_file(result.measurements.to_dict()), "scenario_name": name,
            "target": target_name, "build_cfg": scenario,
            "compiled_model_path": str(result.compiled_model_path)}
    from kenning_hil.core.measurements import save_json_file

    save_json_file(output, data, "measurements")
    summary = {"name": name, "samples": result.samples, **result.metrics}
    if result.latency is not None:
        summary["latency"] = result.latency.to_dict()
    if result.compiled_size is not None:
        summary[COMPILED_MODEL_SIZE] = result.compiled_size
    print(f"target: {target_name}")
    print(format_summary(summary, output))
    return 0


def _check_target_entries(scenario: dict, target: Any, source: str) -> None:
    """On a board the target says how it is reached and what runs the model: a scenario's
    `protocol` must be the target's kind of link, its `runtime` must take the format the
    board runs, and a `runtime_builder` is the board's firmware build."""
    from kenning_hil.blocks.registry import resolve_class_path

    description = target.description
    protocol = scenario.get("protocol")
    wanted = (description.protocol or {}).get("type")
    if protocol is not None and wanted is not None:
        given = resolve_class_path("protocol", protocol["type"])
        if given != resolve_class_path("protocol", wanted):
            raise ConfigurationError(
                f"{source}: protocol '{protocol['type']}' does not reach target "
                f"'{description.name}', which speaks '{wanted}'")
    runtime = scenario.get("runtime")
    formats = description.formats
    if runtime is not None and formats:
        cls = resolve_class("runtime", runtime["type"])
        if not set(getattr(cls, "input_formats", [])) & set(formats):
            raise ConfigurationError(
                f"{source}: runtime '{runtime['type']}' takes "
                f"{', '.join(cls.input_formats)} models; target '{description.name}' runs "
                f"{', '.join(formats)}")
    builder = scenario.get("runtime_builder")
    if builder is not None and description.kind not in ("qemu", "serial"):
        raise ConfigurationError(
            f"{source}: runtime_builder '{builder['type']}': target '{description.name}' has "
            "no firmware to build")


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

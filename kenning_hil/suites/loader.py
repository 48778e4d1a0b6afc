"""Suites: YAML test matrices of models × optimizer chains × targets, with thresholds.

A suite file::

    name: digits                      # default: the file name
    samples: 200                      # per test; --samples caps it
    targets: all                      # every --target given (default), or a list of names
    marks: [hil]                      # pytest marks on every test
    thresholds: {accuracy: 0.9}       # for every test (models and matrix rows add/override)
    tolerance: {latency: {rel: 10%}}  # baseline tolerances
    reference: host-litert-ref        # differential: outputs compared with this target's
    compare: {exact: true}            # or {max_lsb: N}, {atol: A, rtol: R}; per target:
                                      #   targets: {host-tflm: {max_lsb: 3}}
    datasets:
      digits: {type: digits}
    models:
      digits:
        model: models/digits/digits.onnx     # or model_wrapper: {type, parameters}
        dataset: digits                      # a name above, an entry, or "type:root"
        thresholds: {accuracy: 0.95}
    optimizers:                       # named chains of scenario entries
      fp32: []
      int8: [{type: onnxruntime-quant}]
    matrix:                           # optional; default: every model with every chain
      - {models: [digits], optimizers: [fp32, int8], thresholds: {latency.p95: 5ms}}

Each (model, chain, target) becomes one test named ``<model>-<chain>[<target>]``; with a
`reference`, a test on any other target also runs the reference and compares outputs
sample by sample (run/comparison.py). Relative
model paths resolve against the suite's directory, then the project root, then the models
path (external models). Expanding compiles nothing; `Suite.check_blocks` imports only the
block classes (once per distinct entry) to check types and parameters, so collecting a
large suite stays fast. Compatibility (format, memory) is decided when a test runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kenning_hil.blocks.entries import model_entry, normalize_entry, parse_dataset
from kenning_hil.core.errors import ConfigurationError, os_reason
from kenning_hil.judge.agreement import EXACT, OutputTolerance, parse_output_tolerance
from kenning_hil.judge.baselines import parse_tolerances
from kenning_hil.judge.thresholds import parse_thresholds
from kenning_hil.suites.model import Suite, SuiteBlock, SuiteCase
from kenning_hil.suites.schema import SUITE_SCHEMA
from kenning_hil.targets.description import validate


def suite_model_entry(
    name: str, spec: dict, search: Sequence[Path], source: str
) -> dict:
    """The model wrapper entry of `models.<name>`: its 'model' file or its 'model_wrapper'."""
    where = f"models.{name}"
    if ("model" in spec) == ("model_wrapper" in spec):
        raise ConfigurationError(
            f"{source}: key '{where}' needs exactly one of 'model' (a file) or 'model_wrapper'"
        )
    key = "model" if "model" in spec else "model_wrapper"
    return model_entry(spec[key], search, f"{source}: key '{where}.{key}'", "use model_wrapper")


def parse_compare(spec: Any, source: str, key: str) -> tuple[OutputTolerance | None, dict]:
    """The `compare` mapping at suite key `key`: (its tolerance, None when it gives only
    per-target ones; the per-target tolerances of its `targets` key)."""
    if spec is None:
        return None, {}
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{source}: key '{key}': must be a mapping, not {spec!r}")
    spec = dict(spec)
    per_target = spec.pop("targets", None) or {}
    if not isinstance(per_target, dict):
        raise ConfigurationError(
            f"{source}: key '{key}.targets': must map target names to tolerances")
    tolerance = parse_output_tolerance(spec, f"{source}: key '{key}'") if spec else None
    return tolerance, {
        name: parse_output_tolerance(value, f"{source}: key '{key}.targets.{name}'")
        for name, value in per_target.items()}


def parse_suite(
    data: Any, source: str, default_name: str, search: Sequence[Path] = ()
) -> Suite:
    """Validates a parsed suite document and builds its cases."""
    validate(data, SUITE_SCHEMA, source)
    name = data.get("name", default_name)
    named_datasets = data.get("datasets", {})
    chains = {
        chain: [normalize_entry(e, f"{source}: key 'optimizers.{chain}.{i}'")
                for i, e in enumerate(chain_entries)]
        for chain, chain_entries in (data.get("optimizers") or {"none": []}).items()
    }
    models = data["models"]
    base_thresholds = data.get("thresholds") or {}
    suite_targets = data.get("targets", "all")
    suite_targets = None if suite_targets == "all" else list(suite_targets)
    rows = data.get("matrix") or [{"models": list(models), "optimizers": list(chains)}]
    entries = {m: suite_model_entry(m, spec, search, source) for m, spec in models.items()}
    blocks = [
        SuiteBlock("model_wrapper", f"models.{m}.{'model' if 'model' in spec else 'model_wrapper'}",
                   entries[m])
        for m, spec in models.items()
    ]
    blocks += [
        SuiteBlock("optimizer", f"optimizers.{chain}.{i}", entry)
        for chain, entries_of_chain in chains.items()
        for i, entry in enumerate(entries_of_chain)
    ]
    datasets = {}
    dataset_keys = {}
    for model_name, spec in models.items():
        dataset_spec = spec.get("dataset", data.get("dataset"))
        if dataset_spec is None:
            raise ConfigurationError(
                f"{source}: key 'models.{model_name}' has no dataset (set 'dataset' there or "
                f"at the top of the suite)"
            )
        datasets[model_name] = parse_dataset(
            dataset_spec, named_datasets, source, f"models.{model_name}.dataset"
        )
        dataset_key = (f"datasets.{dataset_spec}" if isinstance(dataset_spec, str)
                       and dataset_spec in named_datasets
                       else f"models.{model_name}.dataset" if "dataset" in spec else "dataset")
        shorthand = isinstance(dataset_spec, str) and dataset_spec not in named_datasets
        dataset_keys[model_name] = dataset_key
        blocks.append(SuiteBlock("dataset", dataset_key, datasets[model_name], shorthand))
    suite_compare = parse_compare(data.get("compare"), source, "compare")
    if data.get("compare") is not None and data.get("reference") is None and not any(
            "reference" in spec for spec in models.values()):
        raise ConfigurationError(f"{source}: key 'compare' needs a 'reference' target")
    cases: list[SuiteCase] = []
    seen: set[tuple[str, str]] = set()
    for index, row in enumerate(rows):
        for model_name in row.get("models", list(models)):
            if model_name not in models:
                raise ConfigurationError(
                    f"{source}: key 'matrix.{index}.models': unknown model '{model_name}' "
                    f"(models: {', '.join(models)})"
                )
            model_spec = models[model_name]
            for chain in row.get("optimizers", list(chains)):
                if chain not in chains:
                    raise ConfigurationError(
                        f"{source}: key 'matrix.{index}.optimizers': unknown chain '{chain}' "
                        f"(optimizers: {', '.join(chains)})"
                    )
                if (model_name, chain) in seen:
                    raise ConfigurationError(
                        f"{source}: key 'matrix.{index}': {model_name}-{chain} appears twice"
                    )
                seen.add((model_name, chain))
                thresholds = {
                    **base_thresholds,
                    **(model_spec.get("thresholds") or {}),
                    **(row.get("thresholds") or {}),
                }
                # where each threshold was given (the last of suite, model, matrix row wins)
                threshold_keys = {
                    metric: f"{where}.{metric}"
                    for where, given in (("thresholds", base_thresholds),
                                         (f"models.{model_name}.thresholds",
                                          model_spec.get("thresholds") or {}),
                                         (f"matrix.{index}.thresholds",
                                          row.get("thresholds") or {}))
                    for metric in given
                }
                tolerance = {**(data.get("tolerance") or {}), **(model_spec.get("tolerance") or {})}
                reference = model_spec.get("reference", data.get("reference"))
                model_compare = parse_compare(model_spec.get("compare"), source,
                                              f"models.{model_name}.compare")
                if model_spec.get("compare") is not None and reference is None:
                    raise ConfigurationError(
                        f"{source}: key 'models.{model_name}.compare' needs a 'reference' "
                        f"target")
                targets = row.get("targets", model_spec.get("targets", suite_targets))
                targets_key = (f"matrix.{index}.targets" if "targets" in row else
                               f"models.{model_name}.targets" if "targets" in model_spec
                               else "targets")
                cases.append(
                    SuiteCase(
                        suite=name,
                        source=source,
                        model=model_name,
                        chain=chain,
                        model_wrapper=entries[model_name],
                        optimizers=list(chains[chain]),
                        dataset=datasets[model_name],
                        samples=row.get("samples", model_spec.get("samples", data.get("samples"))),
                        thresholds=parse_thresholds(thresholds, f"{source}: {model_name}-{chain}"),
                        tolerances=parse_tolerances(tolerance, f"{source}: {model_name}-{chain}"),
                        marks=[*data.get("marks", []), *model_spec.get("marks", []),
                               *row.get("marks", [])],
                        targets=None if targets is None else list(targets),
                        targets_key=targets_key,
                        threshold_keys=threshold_keys,
                        dataset_key=dataset_keys[model_name],
                        reference=reference,
                        compare=model_compare[0] or suite_compare[0] or EXACT,
                        compare_targets={**suite_compare[1], **model_compare[1]},
                        reference_key=(f"models.{model_name}.reference"
                                       if "reference" in model_spec else "reference"),
                    )
                )
    return Suite(name, source, cases, blocks, [Path(d) for d in search])


def display_path(path: Path, rootdir: Path) -> str:
    """`path` relative to the rootdir when inside it (how messages name a suite file)."""
    try:
        return str(Path(path).relative_to(rootdir))
    except ValueError:
        return str(path)


def load_suite(path: Path, search: Sequence[Path] = (), source: str | None = None) -> Suite:
    """Reads a suite YAML file; model paths are searched in its directory, then `search`.
    `source` is how messages name the file (default: `path`)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read suite: {os_reason(exc)}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigurationError(f"{path}: not valid YAML{where}") from exc
    return parse_suite(data, source or str(path), path.stem, [path.parent, *search])


def is_suite_document(path: Path) -> bool:
    """Cheap sniff: a YAML file with a top-level 'models:' key (not a target or CI file)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = f.read(65536)
    except OSError:
        return False
    return any(line.startswith("models:") for line in head.splitlines())


def suite_files(path: Path) -> list[Path]:
    """A suite file, or the suite documents under a directory (sorted, as pytest would
    collect them from `pytest DIR`); a missing path is an error."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for pattern in ("*.yaml", "*.yml") for p in path.rglob(pattern)
                       if is_suite_document(p))
        if not found:
            raise ConfigurationError(f"{path}: no suite files (YAML with a 'models:' key) in it")
        return found
    raise ConfigurationError(f"no such suite file or directory: {path}")

"""Suites: YAML test matrices of models × optimizer chains × targets, with thresholds.

A suite file::

    name: digits                      # default: the file name
    samples: 200                      # per test; --samples caps it
    targets: all                      # every --target given (default), or a list of names
    marks: [hil]                      # pytest marks on every test
    thresholds: {accuracy: 0.9}       # for every test (models and matrix rows add/override)
    tolerance: {latency: {rel: 10%}}  # baseline tolerances
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

Each (model, chain, target) becomes one test named ``<model>-<chain>[<target>]``. Relative
model paths resolve against the suite's directory, then the project root, then the models
path (external models). Expanding compiles nothing; `Suite.check_blocks` imports only the
block classes (once per distinct entry) to check types and parameters, so collecting a
large suite stays fast. Compatibility (format, memory) is decided when a test runs.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.baseline import Threshold, Tolerance, parse_thresholds, parse_tolerances
from kenning_hil.core.errors import ConfigurationError
from kenning_hil.targets.description import NAME_PATTERN, validate

MODEL_WRAPPER_BY_SUFFIX = {".onnx": "onnx", ".tflite": "tflite"}

_ENTRY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {"type": {"type": "string"}, "parameters": {"type": "object"}},
}
_DATASET = {
    "description": "a dataset name, 'type' or 'type:root', or {type, parameters}",
    "anyOf": [{"type": "string"}, _ENTRY],
}
_NAMES = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_MARKS = {"type": "array", "items": {"type": "string"}}
_MODEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "description": "a model file (.onnx, .tflite)"},
        "model_wrapper": _ENTRY,
        "dataset": _DATASET,
        "samples": {"type": "integer", "minimum": 1},
        "thresholds": {"type": "object"},
        "tolerance": {"type": "object"},
        "marks": _MARKS,
        "targets": _NAMES,
    },
}
SUITE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["models"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "description": {"type": "string"},
        "samples": {"type": "integer", "minimum": 1},
        "targets": {
            "description": "'all' (every --target) or a list of target names",
            "anyOf": [{"enum": ["all"]}, _NAMES],
        },
        "marks": _MARKS,
        "thresholds": {"type": "object"},
        "tolerance": {"type": "object"},
        "dataset": _DATASET,
        "datasets": {"type": "object", "additionalProperties": _ENTRY},
        "models": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _MODEL,
        },
        "optimizers": {
            "type": "object",
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": {"type": "array", "items": _ENTRY},
        },
        "matrix": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "models": _NAMES,
                    "optimizers": _NAMES,
                    "targets": _NAMES,
                    "samples": {"type": "integer", "minimum": 1},
                    "thresholds": {"type": "object"},
                    "marks": _MARKS,
                },
            },
        },
    },
}


@dataclass
class SuiteCase:
    """One (model, optimizer chain) of a suite, to run on each of its targets."""

    suite: str
    source: str
    model: str
    chain: str
    model_wrapper: dict
    optimizers: list[dict]
    dataset: dict
    samples: int | None
    thresholds: list[Threshold]
    tolerances: dict[str, Tolerance]
    marks: list[str] = field(default_factory=list)
    targets: list[str] | None = None  # None: every target given by --target
    targets_key: str = "targets"  # the suite key the pin came from, for error messages

    @property
    def name(self) -> str:
        return f"{self.model}-{self.chain}"

    def test_name(self, target: str) -> str:
        return f"{self.name}[{target}]"

    def targets_for(self, given: Sequence[str]) -> tuple[list[str], str | None]:
        """(the targets this case runs on, a skip reason): every target given, or those of
        its pinned ones that were given; pinned ones none of which was given are listed
        with the reason they are skipped."""
        if self.targets is None:
            return list(given), None
        chosen = [t for t in given if t in self.targets]
        if chosen:
            return chosen, None
        return list(self.targets), (f"suite pins target {', '.join(self.targets)}, not "
                                    f"selected (run with --target {self.targets[0]})")


@dataclass(frozen=True)
class SuiteBlock:
    """One scenario entry a suite declares, and the suite key it came from."""

    kind: str  # a registry kind: model_wrapper, dataset, optimizer
    key: str  # e.g. 'models.kws.model', 'datasets.digits', 'optimizers.int8.0'
    entry: dict
    shorthand: bool = False  # given as a string ('digits', 'type:root'), not {type, parameters}

    def subkey(self, name: str) -> str:
        """The key of the entry's `type` or `parameters` (the key itself for a shorthand)."""
        return self.key if self.shorthand else f"{self.key}.{name}"


# Parameters the harness fills in when it builds a block, so a suite need not give them.
_FILLED_AT_RUN = {
    "optimizer": {"compiled_model_path"},
    "dataset": {"io_specification", "io_spec_path"},
}


@dataclass
class Suite:
    name: str
    source: str
    cases: list[SuiteCase]
    blocks: list[SuiteBlock] = field(default_factory=list)
    search: list[Path] = field(default_factory=list)  # where relative model paths were sought

    def expand(self, given_targets: Sequence[str]) -> list[tuple[SuiteCase, str]]:
        """(case, target) pairs: a case's own targets, else every target given."""
        return [
            (case, target)
            for case in self.cases
            for target in (case.targets if case.targets is not None else given_targets)
        ]

    def check_blocks(self) -> None:
        """Checks what can be known before running, so a mistake is one collection error
        naming the file and key rather than a failure in every test: model files exist,
        block types are registered (or importable dotted paths), and parameters fit each
        class's `arguments_structure` schema. Imports the block classes (not frameworks: those
        load lazily); a class whose optional framework is missing is left to skip at run."""
        checked: set[str] = set()
        for block in self.blocks:
            identity = json.dumps([block.kind, block.entry], sort_keys=True, default=str)
            if identity in checked:
                continue
            checked.add(identity)
            self._check_model_file(block)
            self._check_block_class(block)

    def _check_model_file(self, block: SuiteBlock) -> None:
        path = (block.entry.get("parameters") or {}).get("model_path")
        if block.kind != "model_wrapper" or not isinstance(path, str):
            return
        if not Path(path).is_file():
            searched = ", ".join(str(d) for d in self.search) or "nowhere"
            where = "" if Path(path).is_absolute() else f" (searched {searched})"
            raise ConfigurationError(
                f"{self.source}: key '{block.key}': file {path} does not exist{where}"
            )

    def _check_block_class(self, block: SuiteBlock) -> None:
        from kenning_hil.core.errors import MissingDependencyError
        from kenning_hil.registry import resolve_class

        try:
            cls = resolve_class(block.kind, block.entry["type"])
        except MissingDependencyError:
            return  # the test skips with the reason when it runs
        except ConfigurationError as exc:
            if _missing_dependency(exc, block.entry["type"]):
                return
            raise ConfigurationError(
                f"{self.source}: key '{block.subkey('type')}': {exc}"
            ) from None
        parse = getattr(cls, "parse_json_parameters", None)
        if parse is None:
            return
        from kenning_hil.core.args import get_arguments_structure

        parameters = dict(block.entry.get("parameters") or {})
        structure = get_arguments_structure(cls)
        for name in _FILLED_AT_RUN.get(block.kind, set()) & set(structure):
            if structure[name].get("required"):
                parameters.setdefault(name, "filled-at-run")
        try:
            parse(parameters)
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"{self.source}: key '{block.subkey('parameters')}': {exc}"
            ) from None

    def check_targets(self, known: Collection[str]) -> None:
        """Raises for a pinned target name that no target description defines (a typo would
        otherwise skip its tests as "not selected")."""
        for case in self.cases:
            for target in case.targets or ():
                if target not in known:
                    raise ConfigurationError(
                        f"{self.source}: key '{case.targets_key}': unknown target '{target}' "
                        f"(known targets: {', '.join(sorted(known)) or 'none'})"
                    )


def _missing_dependency(error: ConfigurationError, class_path: str) -> bool:
    """Whether importing a block's module failed on a module other than the block's own
    (an optional framework it imports at the top), rather than on a wrong path."""
    cause = error.__cause__
    if not isinstance(cause, ModuleNotFoundError) or not cause.name:
        return False
    return not class_path.startswith(cause.name) and not cause.name.startswith("kenning_hil")


def parse_dataset(spec: Any, named: dict[str, dict], source: str, where: str) -> dict:
    """A scenario dataset entry from a name, 'type', 'type:root', or an entry."""
    if isinstance(spec, dict):
        return spec
    if spec in named:
        return named[spec]
    dataset_type, sep, root = str(spec).partition(":")
    if not dataset_type:
        raise ConfigurationError(f"{source}: {where}: empty dataset {spec!r}")
    return {"type": dataset_type, "parameters": {"root": root} if sep else {}}


def resolve_model_path(path: str, search: Sequence[Path], source: str, where: str) -> str:
    """An absolute path for `path`, searched in order; unresolved paths are kept as given
    (the test then fails or skips naming the file, and collection still succeeds)."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    for directory in search:
        if (Path(directory) / candidate).exists():
            return str((Path(directory) / candidate).resolve())
    return path


def model_entry(
    name: str, spec: dict, search: Sequence[Path], source: str
) -> dict:
    where = f"models.{name}"
    if ("model" in spec) == ("model_wrapper" in spec):
        raise ConfigurationError(
            f"{source}: key '{where}' needs exactly one of 'model' (a file) or 'model_wrapper'"
        )
    if "model" in spec:
        path = spec["model"]
        suffix = Path(path).suffix.lower()
        if suffix not in MODEL_WRAPPER_BY_SUFFIX:
            raise ConfigurationError(
                f"{source}: key '{where}.model': cannot tell the model type of {path!r} "
                f"(known suffixes: {', '.join(MODEL_WRAPPER_BY_SUFFIX)}); use model_wrapper"
            )
        entry = {"type": MODEL_WRAPPER_BY_SUFFIX[suffix], "parameters": {"model_path": path}}
    else:
        entry = {"type": spec["model_wrapper"]["type"],
                 "parameters": dict(spec["model_wrapper"].get("parameters") or {})}
    params = entry["parameters"]
    if isinstance(params.get("model_path"), str):
        params["model_path"] = resolve_model_path(params["model_path"], search, source, where)
    return entry


def parse_suite(
    data: Any, source: str, default_name: str, search: Sequence[Path] = ()
) -> Suite:
    """Validates a parsed suite document and builds its cases."""
    validate(data, SUITE_SCHEMA, source)
    name = data.get("name", default_name)
    named_datasets = data.get("datasets", {})
    chains = data.get("optimizers") or {"none": []}
    models = data["models"]
    base_thresholds = data.get("thresholds") or {}
    suite_targets = data.get("targets", "all")
    suite_targets = None if suite_targets == "all" else list(suite_targets)
    rows = data.get("matrix") or [{"models": list(models), "optimizers": list(chains)}]
    entries = {m: model_entry(m, spec, search, source) for m, spec in models.items()}
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
        blocks.append(SuiteBlock("dataset", dataset_key, datasets[model_name], shorthand))
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
                tolerance = {**(data.get("tolerance") or {}), **(model_spec.get("tolerance") or {})}
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
        raise ConfigurationError(f"{path}: cannot read suite: {exc.strerror}") from exc
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

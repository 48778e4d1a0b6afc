"""A parsed suite: its cases (model × optimizer chain) and the blocks they use."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.judge.agreement import EXACT, OutputTolerance
from kenning_hil.judge.baselines import Tolerance
from kenning_hil.judge.thresholds import Threshold

_FILLED_AT_RUN = {
    "optimizer": {"compiled_model_path"},
    "dataset": {"io_specification", "io_spec_path"},
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
    threshold_keys: dict[str, str] = field(default_factory=dict)  # metric -> its suite key
    dataset_key: str = "dataset"  # the suite key of the case's dataset
    # differential: every other target's outputs compared with this target's (None: none)
    reference: str | None = None
    compare: OutputTolerance = EXACT
    compare_targets: dict[str, OutputTolerance] = field(default_factory=dict)
    reference_key: str = "reference"  # the suite key the reference came from

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
        from kenning_hil.blocks.registry import resolve_class
        from kenning_hil.core.errors import MissingDependencyError

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
        from kenning_hil.blocks.entries import translate_entry_parameters
        from kenning_hil.core.args import get_arguments_structure

        # Kenning's parameter names as the block will be built (blocks.entries.build_block)
        parameters, problems = translate_entry_parameters(cls, block.entry.get("parameters")
                                                          or {})
        if problems:
            name, message = problems[0]
            raise ConfigurationError(
                f"{self.source}: key '{block.subkey('parameters')}.{name}': "
                f"{cls.__name__}: {message}")
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

    def check_cases(self) -> None:
        """What each (model, chain) declares that cannot work, before anything runs: an
        optimizer chain whose formats do not connect (each block's declared input and output
        formats), a dataset whose size and split give a run no sample, and a threshold on a
        quality metric the dataset declares it cannot report (random inputs, synthetic
        labels). Errors name the file and the suite key. Blocks whose class cannot be
        imported here are left to the run (they skip with the reason)."""
        from kenning_hil.blocks.entries import translate_entry_parameters
        from kenning_hil.judge.metrics import metric_class

        for case in self.cases:
            self._check_chain(case)
            dataset_cls = _block_class("dataset", case.dataset)
            if dataset_cls is None:
                continue
            parameters, _ = translate_entry_parameters(
                dataset_cls, case.dataset.get("parameters") or {})
            empty = dataset_cls.declared_empty_reason(parameters)
            if empty:
                raise ConfigurationError(
                    f"{self.source}: key '{case.dataset_key}': {case.name}: {empty}")
            declared, why = dataset_cls.declared_quality_metrics(
                dict(case.dataset.get("parameters") or {}))
            if declared is None:
                continue
            for threshold in case.thresholds:
                metric = threshold.metric
                if metric_class(metric) == "quality" and metric not in declared:
                    key = case.threshold_keys.get(metric, "thresholds")
                    can = (f"it reports only {', '.join(sorted(declared))}" if declared
                           else "it reports no quality metric")
                    raise ConfigurationError(
                        f"{self.source}: key '{key}': {case.name} has a threshold on "
                        f"'{metric}', which its dataset ('{case.dataset_key}', "
                        f"{case.dataset['type']}) cannot produce: {why}, so {can}")

    def _check_chain(self, case: SuiteCase) -> None:
        previous = _block_class("model_wrapper", case.model_wrapper)
        if previous is None:
            return
        for i, entry in enumerate(case.optimizers):
            block = _block_class("optimizer", entry)
            if block is None:
                return
            offered = list(getattr(previous, "output_formats", []) or [])
            accepted = list(getattr(block, "input_formats", []) or [])
            if offered and accepted and not set(offered) & set(accepted):
                raise ConfigurationError(
                    f"{self.source}: key 'optimizers.{case.chain}.{i}': chain '{case.chain}' "
                    f"of model '{case.model}': {block.__name__} cannot take the model from "
                    f"{previous.__name__}: {previous.__name__} outputs {offered}, "
                    f"{block.__name__} accepts {accepted} (need a common format)")
            previous = block

    def check_targets(self, known: Collection[str]) -> None:
        """Raises for a pinned target name, reference or compare.targets name that no target
        description defines (a typo would otherwise skip its tests as "not selected")."""
        for case in self.cases:
            named = [(case.targets_key, t) for t in case.targets or ()]
            if case.reference is not None:
                named.append((case.reference_key, case.reference))
            named += [("compare.targets", t) for t in case.compare_targets]
            for key, target in named:
                if target not in known:
                    raise ConfigurationError(
                        f"{self.source}: key '{key}': unknown target '{target}' "
                        f"(known targets: {', '.join(sorted(known)) or 'none'})"
                    )


def _block_class(kind: str, entry: dict) -> type | None:
    """The class of a scenario entry, None when it cannot be imported here (`check_blocks`
    has already reported a wrong type)."""
    from kenning_hil.blocks.registry import resolve_class
    from kenning_hil.core.errors import KenningHILError

    try:
        return resolve_class(kind, entry["type"])
    except KenningHILError:
        return None


def _missing_dependency(error: ConfigurationError, class_path: str) -> bool:
    """Whether importing a block's module failed on a module other than the block's own
    (an optional framework it imports at the top), rather than on a wrong path."""
    cause = error.__cause__
    if not isinstance(cause, ModuleNotFoundError) or not cause.name:
        return False
    return not class_path.startswith(cause.name) and not cause.name.startswith("kenning_hil")

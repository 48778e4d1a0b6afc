"""The HIL harness: run one model × optimizer chain × dataset on a target and judge the result.

This is the library under the pytest plugin's ``hil`` fixture and suite tests (and usable
without pytest). It reuses the pipeline's building blocks (`kenning_hil.run.pipeline`): objects
are built from scenario entries, the optimizer chain is `Pipeline.compile` (run through the
compile cache), and the run is `Runtime.run_client` over the session's protocol. What it
adds: the compile cache, board sessions and pool locks, the model upload cache, format and
memory compatibility, results written to disk first, thresholds and baselines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import KenningHILError
from kenning_hil.core.measurements import (
    PEAK_ALLOCATED,
    Latency,
    Measurements,
    inferences_measured,
    save_json_file,
)
from kenning_hil.judge.baselines import (
    DEFAULT_TOLERANCES,
    HASH_SEPARATOR,
    BaselineStore,
    Tolerance,
    baseline_file_name,
    baseline_record,
    compare_to_baseline,
)
from kenning_hil.judge.margins import baseline_records, threshold_records
from kenning_hil.judge.metrics import TIMING_METRIC_PREFIXES
from kenning_hil.judge.thresholds import Threshold, check_thresholds
from kenning_hil.protocols.session import SessionProtocol
from kenning_hil.run.compile_cache import (
    CompileCache,
    file_digest,
    framework_versions,
    path_digest,
)
from kenning_hil.run.outcome import Incompatible, NothingMeasured, infrastructure_category
from kenning_hil.run.progress import OFF, OFF_PROGRESS, LazyPhase, Progress
from kenning_hil.run.request import (
    RunRequest,
    dataset_entry,
    hil_model_entry,
    optimizer_entries,
)
from kenning_hil.run.results import CapturedOutputs, Result, scalar_metrics
from kenning_hil.targets.sessions import SessionManager
from kenning_hil.targets.target import Target

# ------------------------------------------------------------------------------- harness


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    baseline_path: Path | None = None
    baseline_updated: bool = False
    # what happened to the baseline: written, compared, regressed, missing ("" without one)
    baseline_status: str = ""
    # each threshold and baseline comparison with its margin, for the report (judge/margins)
    checks: list[dict] = field(default_factory=list)


class Harness:
    """Runs requests on targets and judges results; one per test process."""

    def __init__(
        self,
        sessions: SessionManager,
        cache: CompileCache,
        results_dir: Path,
        search: Sequence[Path] = (),
        baselines: BaselineStore | None = None,
        update_baseline: bool = False,
        progress: Progress | None = None,
    ):
        self.sessions = sessions
        self.cache = cache
        self.results_dir = Path(results_dir)
        self.search = [Path(p) for p in search]
        self.baselines = baselines
        self.update_baseline = update_baseline
        self.progress = progress or OFF_PROGRESS  # compile, upload and run phases
        self.uploads = 0  # models actually sent to a target
        # set by a face while it reruns a test after an infrastructure error: {"attempt": 2,
        # "earlier": [{"category": ..., "error": ...}]}, recorded in every result written
        self.retry: dict | None = None

    # -- building ----------------------------------------------------------------------

    def request(
        self,
        model: Any,
        dataset: Any,
        optimizer: Any = None,
        samples: int | None = None,
        name: str = "",
        search: Sequence[Path] = (),
        require_dataset: bool = True,
    ) -> RunRequest:
        return RunRequest(
            model_wrapper=hil_model_entry(model, [*search, *self.search]),
            dataset=dataset_entry(dataset) if dataset is not None or require_dataset else None,
            optimizers=optimizer_entries(optimizer),
            samples=samples,
            name=name,
        )

    def build_blocks(self, request: RunRequest) -> tuple:
        """(dataset, model wrapper, optimizers) of `request`, built as a run builds them
        (a flow's model runner: kenning_hil/flows/), to pass to `compile`."""
        return self._blocks(request, None)

    def run_blocks(self, request: RunRequest) -> tuple:
        """The blocks of `request` for a run: its dataset limited to the request's samples
        and checked to give the run some (`Dataset.check_not_empty`: an error before
        anything compiles or a target is touched, never a run that passes on none)."""
        blocks = self._blocks(request, None)
        dataset = blocks[0]
        if dataset is not None:
            if request.samples is not None:
                dataset.set_sample_limit(request.samples)
            dataset.check_not_empty()
        return blocks

    def _blocks(self, request: RunRequest, workdir: Path | None):
        from kenning_hil.blocks.entries import build_block
        from kenning_hil.core.dataset import Dataset
        from kenning_hil.core.model import ModelWrapper
        from kenning_hil.core.optimizer import Optimizer

        wrapper = build_block(
            "model_wrapper", request.model_wrapper, ModelWrapper, "model_wrapper", dataset=None
        )
        dataset = None
        if request.dataset is not None:
            entry = with_model_io_spec(request.dataset, wrapper)
            dataset = build_block("dataset", entry, Dataset, "dataset")
            wrapper.dataset = dataset
        optimizers = []
        for i, entry in enumerate(request.optimizers):
            params = dict(entry.get("parameters") or {})
            # the cache decides where compiled models live
            params["compiled_model_path"] = str(
                (workdir or Path(".")) / f"step{i}-{entry['type'].rsplit('.', 1)[-1]}.model"
            )
            optimizers.append(
                build_block(
                    "optimizer", {"type": entry["type"], "parameters": params}, Optimizer,
                    f"optimizers[{i}]", dataset=dataset,
                )
            )
        return dataset, wrapper, optimizers

    def _output_formats(self, wrapper: Any, optimizers: list) -> list[str]:
        last = optimizers[-1] if optimizers else wrapper
        return list(last.get_output_formats())

    def compile_material(
        self, request: RunRequest, wrapper: Any, optimizers: list, dataset: Any = None
    ) -> dict:
        """Everything that decides the compiled model, for the compile cache key."""
        import kenning_hil

        model_path = Path(wrapper.get_path())
        spec_path = Path(str(model_path) + ".json")
        chain = []
        for entry, optimizer in zip(request.optimizers, optimizers):
            params = {k: v for k, v in (entry.get("parameters") or {}).items()
                      if k != "compiled_model_path"}
            framework, version = optimizer.get_framework_and_version()
            chain.append({
                "type": class_path(type(optimizer)),
                "parameters": params,
                "framework": framework,
                "version": version,
            })
        # the model file is digested above; where it lies does not change what it compiles to
        wrapper_params = {k: v for k, v in (request.model_wrapper.get("parameters") or {}).items()
                          if k != "model_path"}
        return {
            "model": file_digest(model_path),
            "model_format": model_path.suffix,
            "io_spec": file_digest(spec_path) if spec_path.is_file() else None,
            # the wrapper exports the model the chain starts from (a torch wrapper's opset)
            "model_wrapper": {"type": class_path(type(wrapper)), "parameters": wrapper_params},
            "chain": chain,
            # calibration data shapes the output of quantising optimizers
            "dataset": request.dataset,
            "data_files": data_file_digests(request, wrapper, optimizers, dataset),
            "frameworks": framework_versions(),
            "kenning_hil": kenning_hil.__version__,
        }

    def compile(
        self, request: RunRequest, blocks: tuple | None = None
    ) -> tuple[Path, bool]:
        """(compiled model path, whether it came from the cache). Without optimizers the
        model file itself is what the target gets."""
        from kenning_hil.run.pipeline import Pipeline, check_chain_formats

        dataset, wrapper, optimizers = blocks or self._blocks(request, None)
        if not optimizers:
            return Path(wrapper.get_path()), False
        # before the cache key, which asks each optimizer its framework's version (importing
        # TensorFlow takes seconds): a chain that cannot connect fails at once
        check_chain_formats(wrapper, optimizers)
        material = self.compile_material(request, wrapper, optimizers, dataset)

        def build(workdir: Path) -> Path:
            _, build_wrapper, build_optimizers = self._blocks(request, workdir)
            for optimizer in build_optimizers:
                optimizer.dataset = dataset
            pipeline = Pipeline(dataset, build_wrapper, _NoRuntime(), build_optimizers)
            return pipeline.compile()

        entry = self.cache.get_or_build(material, build)
        return entry.model_path, entry.hit

    # -- running -----------------------------------------------------------------------

    def check_compatible(self, target: Target, formats: list[str]) -> None:
        accepted = target.accepted_formats()
        if accepted is not None and not set(formats) & set(accepted):
            raise Incompatible(
                f"target '{target.name}' runs {', '.join(accepted)} models; this model is "
                f"{', '.join(formats) or 'of unknown format'}"
            )

    def check_model(self, target: Target, model: Path) -> None:
        """The board's own refusal of the compiled model (operators, tensor types, arena),
        found on the host by the target's kind before anything is uploaded (#23)."""
        reason = target.model_refusal(model)
        if reason is not None:
            raise Incompatible(
                f"target '{target.name}' cannot run {Path(model).name}: {reason} (checked on "
                f"the host; nothing uploaded)", check="model"
            )

    def check_fits(self, target: Target, size: int) -> None:
        # the model is uploaded into RAM at run time (MODEL message), so RAM bounds it
        ram = target.description.ram
        if ram is not None and size > ram:
            raise Incompatible(
                f"model of {size} B is larger than target '{target.name}' RAM ({ram} B)",
                check="memory",
            )

    def not_applicable(self, target: Target, request: RunRequest) -> Incompatible | None:
        """Why `request` can never run on `target`, known without compiling (the chain's
        output format against what the target accepts: `check_compatible`, as `run` checks
        it; without optimizers the model file is what is uploaded, so the board's own refusal
        of it too: `check_model`), or None. Collection leaves such combinations out instead
        of skipping them. Blocks that cannot be built here are left to the run, which reports
        them."""
        try:
            _, wrapper, optimizers = self._blocks(
                RunRequest(request.model_wrapper, None, request.optimizers), None)
            self.check_compatible(target, self._output_formats(wrapper, optimizers))
            if not optimizers:
                self.check_model(target, Path(wrapper.get_path()))
        except Incompatible as exc:
            return exc
        except KenningHILError:
            return None
        return None

    def run(self, target: Target, request: RunRequest, test_id: str, index: int = 0,
            capture: CapturedOutputs | None = None, write: bool = True) -> Result:
        """Compiles (cached), runs on a free instance of `target`, writes the results.
        `capture` keeps the run's outputs (differential tests: run/comparison.py);
        `write=False` leaves the writing of a finished run to the caller."""
        from kenning_hil.core.runtime import Runtime

        blocks = self.run_blocks(request)
        dataset, wrapper, optimizers = blocks
        self.check_compatible(target, self._output_formats(wrapper, optimizers))
        chain = " + ".join(entry["type"] for entry in request.optimizers)
        with self.progress.phase(f"compile {request.model_name} ({chain})"
                                 if chain else f"prepare {request.model_name}"):
            compiled, cached = self.compile(request, blocks)
        size = compiled.stat().st_size
        self.check_fits(target, size)
        self.check_model(target, compiled)
        model_key = file_digest(compiled)
        spec = Path(str(compiled) + ".json")
        if spec.is_file():
            model_key += file_digest(spec)
        start = time.time()
        try:
            with self.sessions.use(target, holder=test_id) as session:
                protocol = SessionProtocol(session, model_key)
                runtime = client_runtime(target, protocol, Runtime)
                if capture is not None:
                    runtime.output_sink = capture
                try:
                    with self._progress_of(session, runtime, request, target, dataset):
                        measurements = runtime.run_client(dataset, wrapper, compiled)
                except KeyboardInterrupt as exc:
                    # Ctrl-C: the samples measured so far are written, marked interrupted,
                    # before the interruption goes on (pytest then ends the session)
                    partial = getattr(exc, "measurements", None)
                    if partial is not None:
                        self._write_interrupted(
                            test_id, index, target, request, dataset, partial, compiled, size,
                            cached, start, session.instance.name)
                    raise
                self.uploads += int(protocol.uploaded)
                if capture is not None:
                    capture.entries = runtime.output_spec
                instance = session.instance.name
                session_info = {
                    "instance": instance,
                    "model_uploaded": protocol.uploaded,  # False: the board already had it
                    "boots_in_this_process": self.sessions.boots,
                    **{k: v for k, v in session.info.items() if k != "stats_seen"},
                }
        except KenningHILError as exc:
            # what was measured before the failure is kept; an infrastructure error (no
            # board, lost connection, ...) is recorded with its category even when nothing was
            self._write_error(test_id, index, target, request, exc)
            raise
        measurements = measurements if isinstance(measurements, Measurements) else Measurements(
            dict(measurements)
        )
        result = _result(test_id, target, request, dataset, measurements, compiled, size, cached)
        result.record = _record(result, session_info, start)
        if write:
            result.path = self.write(test_id, index, result.record)
        if not result.samples:
            # the dataset said it had samples, yet none was measured: never a pass
            raise NothingMeasured(
                f"{request.model_name} on {target.name} measured no sample (dataset "
                f"{type(dataset).__name__} gave {len(dataset) if dataset is not None else 0})"
                + (f"; results: {result.path}" if result.path else ""))
        return result

    def _write_error(self, test_id: str, index: int, target: Target, request: RunRequest,
                     exc: KenningHILError) -> None:
        """Writes a failed run's record when it has something to say: the measurements taken
        before the failure, or the infrastructure category (run/outcome.py) of the error."""
        partial = getattr(exc, "measurements", None)
        category = infrastructure_category(exc)
        if partial is None and category is None:
            return
        record: dict[str, Any] = {"error": str(exc), "target": target.name,
                                  "model": request.model_name}
        if category is not None:
            record["infrastructure"] = category
        if partial is not None:
            record["measurements"] = partial
        try:
            self.write(test_id, index, record)
        except KenningHILError as unwritten:
            raise KenningHILError(f"{exc} (and {unwritten})") from exc

    @contextmanager
    def _progress_of(self, session: Any, runtime: Any, request: RunRequest, target: Target,
                     dataset: Any) -> Iterator[None]:
        """Phases of a run on a board: the model upload (bytes the target has read, when the
        session's protocol can tell: `RuntimeProtocol.upload_progress`) and the samples."""
        if self.progress.mode == OFF:
            yield
            return
        upload = LazyPhase(self.progress, f"upload {request.model_name} to {target.name}")
        protocol = session.protocol
        protocol.upload_progress = upload
        try:
            total = len(dataset) if dataset is not None else None
        except (TypeError, KenningHILError):
            total = None
        samples = LazyPhase(self.progress, f"run {request.model_name} on {target.name}",
                            "sample")

        def sample_done(count: int) -> None:
            upload.close()  # the first answer: the model is in place
            samples(samples.done + count, total)

        runtime.progress = sample_done
        failed = True
        try:
            yield
            failed = False
        finally:
            protocol.upload_progress = None  # the session outlives this run
            runtime.progress = None
            upload.close(failed)
            samples.close(failed)

    def _write_interrupted(
        self, test_id: str, index: int, target: Target, request: RunRequest, dataset: Any,
        measurements: Measurements, compiled: Path, size: int, cached: bool, start: float,
        instance: str,
    ) -> Path | None:
        """Writes the partial result of an interrupted run, marked ``interrupted`` with the
        samples done and asked; a failure to write is a warning (the interruption wins)."""
        import warnings

        asked = len(dataset) if dataset is not None else None
        result = _result(test_id, target, request, dataset, measurements, compiled, size, cached)
        try:
            return self.write(test_id, index, _record(
                result, {"instance": instance},
                start, interrupted={"samples": result.samples, "asked": asked}))
        except KenningHILError as exc:
            warnings.warn(f"interrupted run of {test_id}: {exc}", stacklevel=2)
            return None

    def result_path(self, test_id: str, index: int = 0) -> Path:
        """<results>/tests/<name>.json, named as baselines are (one file per test id); a
        test's later runs get '~<index>' (a '-<index>' could be another test's own name)."""
        name = baseline_file_name(test_id)
        if index:
            name = name[: -len(".json")] + f"{HASH_SEPARATOR}{index}.json"
        return self.results_dir / "tests" / name

    def write(self, test_id: str, index: int, record: dict) -> Path:
        """Writes a test's results atomically (before anything judges them)."""
        if self.retry is not None:  # this test is being rerun after an infrastructure error
            record = {**record, "retried": self.retry}
        return save_json_file(self.result_path(test_id, index), {"test": test_id, **record},
                              f"the results of {test_id}")

    def write_measurements(self, test_id: str, data: dict) -> Path:
        """Writes the Measurements a test collected itself (the `measurements` fixture)."""
        path = self.result_path(test_id)
        return save_json_file(path.with_name(path.stem + "-measurements.json"), data,
                              f"the measurements of {test_id}")

    # -- judging -----------------------------------------------------------------------

    def judge(self, result: Result, *args: Any, **kwargs: Any) -> Verdict:
        """Threshold misses and baseline regressions as messages (empty: passed), see
        `_judge`; the checks, with their margins, go into the run's result file too."""
        verdict = self._judge(result, *args, **kwargs)
        if verdict.checks and result.path is not None:
            self._record_checks(result.path, verdict.checks)
        return verdict

    def _record_checks(self, path: Path, checks: list[dict]) -> None:
        import json

        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # the file is gone or half-written: the verdict still stands
        if isinstance(record, dict):
            save_json_file(path, {**record, "checks": checks},
                           f"the checks of {record.get('test')}")

    def _judge(
        self,
        result: Result,
        thresholds: Sequence[Threshold] = (),
        tolerances: Mapping[str, Tolerance] = DEFAULT_TOLERANCES,
        baseline_id: str | None = None,
        use_baseline: bool = True,
        where: str = "thresholds",
    ) -> Verdict:
        """`where` names the thresholds' origin (a suite file, hil.run) in an
        unknown-metric message."""
        unknown, thresholds = unknown_threshold_metrics(result.values(), thresholds, where,
                                                        result.no_metrics_reason)
        applicable, skipped = split_timing_thresholds(result, thresholds)
        verdict = Verdict(
            failures=[*unknown, *check_thresholds(result.values(), applicable)], notes=skipped,
            checks=threshold_records(result.values(), applicable),
        )
        if self.baselines is None or not use_baseline:
            return verdict
        baseline_id = baseline_id or result.test_id
        verdict.baseline_path = self.baselines.path_for(baseline_id)
        timed = result.latency is not None and result.latency.unit == "s"
        samples = list(result.latency.samples) if timed else None  # seconds only
        if self.update_baseline:
            self.baselines.save(
                baseline_id,
                baseline_record(
                    result.values(), result.target, result.samples,
                    result.latency.source if result.latency else None,
                    latency_samples=samples,
                ),
            )
            verdict.baseline_updated = True
            verdict.baseline_status = "written"
            return verdict
        stored = self.baselines.load(baseline_id)
        if stored is None:
            verdict.baseline_status = "missing"
            verdict.notes.append(
                f"no baseline for {baseline_id} in {self.baselines.directory} "
                f"(run with --update-baseline to record one)"
            )
            return verdict
        compared = compare_to_baseline(
            stored, result.values(), samples, tolerances,
            samples=result.samples,
            latency_source=result.latency.source if result.latency else None,
            label=str(verdict.baseline_path),
        )
        verdict.notes.extend(compared.notes)
        verdict.checks += baseline_records(compared.comparisons)
        verdict.baseline_status = "regressed" if compared.regressions else "compared"
        for comparison in compared.regressions:
            verdict.failures.append(
                f"baseline regression: {comparison.message()} (baseline file "
                f"{verdict.baseline_path}; --update-baseline accepts the new values)"
            )
        return verdict

    def close(self) -> None:
        self.sessions.close_all()


def split_timing_thresholds(
    result: Result, thresholds: Sequence[Threshold]
) -> tuple[list[Threshold], list[str]]:
    """(thresholds to check, notes). A latency threshold in a unit the target does not
    measure does not apply to it: seconds on a QEMU board that counts instructions, or
    instructions on a host. One suite can so bound both, each where it makes sense; a note
    says so only when no timing bound is left for the target at all."""
    if result.latency is None:
        return list(thresholds), []
    measured = result.latency.metric_prefix
    applicable, skipped = [], []
    for threshold in thresholds:
        family = threshold.metric.split(".", 1)[0]
        if family in TIMING_METRIC_PREFIXES and family != measured:
            skipped.append(threshold)
        else:
            applicable.append(threshold)
    if any(t.metric.split(".", 1)[0] == measured for t in applicable):
        return applicable, []  # the suite bounds this target in its own unit
    notes = [
        f"threshold '{threshold.describe()}' not checked: target '{result.target}' measures "
        f"latency in {result.latency.unit} ({result.latency.source})"
        for threshold in skipped
    ]
    return applicable, notes



def with_model_io_spec(entry: dict, wrapper: Any) -> dict:
    """A `random` dataset without an io spec gets the model's: synthetic inputs that fit."""
    from kenning_hil.blocks.registry import resolve_class_path

    params = entry.get("parameters") or {}
    path = resolve_class_path("dataset", entry["type"])
    if not path.endswith(".RandomDataset") or "io_spec_path" in params or (
        "io_specification" in params
    ):
        return entry
    return {"type": entry["type"],
            "parameters": {**params, "io_specification": wrapper.get_io_specification()}}


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def data_file_digests(
    request: RunRequest, wrapper: Any, optimizers: list, dataset: Any
) -> dict[str, str | None]:
    """Content digests of the files and directories the blocks' Path parameters name
    (calibration sets, io specs, dataset roots), by '<block>.<parameter>': a file changed in
    place changes the compiled model without changing any parameter."""
    from kenning_hil.core.args import get_arguments_structure

    blocks = [("model_wrapper", wrapper, request.model_wrapper)]
    blocks += [(f"optimizers[{i}]", o, e) for i, (e, o) in
               enumerate(zip(request.optimizers, optimizers))]
    if dataset is not None and request.dataset is not None:
        blocks.append(("dataset", dataset, request.dataset))
    from kenning_hil.blocks.entries import translate_entry_parameters

    digests: dict[str, str | None] = {}
    for where, block, entry in blocks:
        structure = get_arguments_structure(type(block))
        # by our names, as the block was built (Kenning's dataset_root is root)
        parameters, _ = translate_entry_parameters(type(block), entry.get("parameters") or {})
        for name, value in parameters.items():
            spec = structure.get(name, {})
            if spec.get("type") is not Path or value is None:
                continue
            if name in ("model_path", "compiled_model_path"):  # digested above / the output
                continue
            values = value if spec.get("is_list") and isinstance(value, list) else [value]
            for i, item in enumerate(values):
                label = f"{where}.{name}" + (f"[{i}]" if len(values) > 1 else "")
                digests[label] = path_digest(Path(item))
    return digests


def unknown_threshold_metrics(
    measured: Mapping[str, float], thresholds: Sequence[Threshold], where: str,
    no_metrics_reason: str = "",
) -> tuple[list[str], list[Threshold]]:
    """(messages, the other thresholds). Quality metrics come from the dataset, so a quality
    threshold the run did not produce names a metric that does not exist (a typo such as
    'acuracy'), not one that went unmeasured: say so, with the close names and all the run's
    metrics (or, from a dataset that reports none, why). Size and timing metrics a target may
    not report keep the judge's message."""
    import difflib

    from kenning_hil.judge.metrics import metric_class

    messages, kept = [], []
    for threshold in thresholds:
        if threshold.metric in measured or metric_class(threshold.metric) != "quality":
            kept.append(threshold)
            continue
        close = difflib.get_close_matches(threshold.metric, list(measured), n=2)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        quality = [m for m in measured if metric_class(m) == "quality"]
        if not quality and no_metrics_reason:
            messages.append(f"{where}: no metric '{threshold.metric}': this run has no quality "
                            f"metrics ({no_metrics_reason})")
            continue
        messages.append(
            f"{where}: unknown metric '{threshold.metric}'{hint}; this run's metrics: "
            f"{', '.join(sorted(measured)) or 'none'}"
        )
    return messages, kept


class _NoRuntime:
    """Pipeline.compile ends by asking the runtime to accept the chain's output; the target
    decides that here (check_compatible), so this stand-in accepts any format."""

    def consult_model_type(self, previous_block: Any, force_onnx: bool = False) -> str:
        formats = previous_block.get_output_formats()
        return formats[0] if formats else ""


def client_runtime(target: Target, protocol: Any, base: type) -> Any:
    """The host-side Runtime that drives the target through `protocol`: the target's own
    runtime class when its kind says it is one, else `base`."""
    cls = target.runtime_class() or base
    # the runtime's own parameters configure the target side (the server), not the client
    return cls.from_json({}, protocol=protocol)


def _result(
    test_id: str, target: Target, request: RunRequest, dataset: Any,
    measurements: Measurements, compiled: Path, size: int, cached: bool,
) -> Result:
    """The Result of a run (finished or interrupted) from its measurements: run_client has
    evaluated the dataset, so the quality metrics are among them."""
    ram = measurements.get(PEAK_ALLOCATED)
    if isinstance(ram, list):
        ram = max(ram) if ram else None
    return Result(
        test_id=test_id,
        target=target.name,
        model=request.model_name,
        optimizers=request.optimizers,
        samples=inferences_measured(measurements),
        metrics=scalar_metrics(measurements.to_dict()),
        latency=Latency.from_measurements(measurements),
        compiled_size=size,
        measurements=measurements,
        compiled_model_path=compiled,
        compile_cached=cached,
        ram=int(ram) if isinstance(ram, (int, float)) else None,
        no_metrics_reason=dataset.no_quality_metrics_reason() if dataset is not None else "",
    )


def _record(result: Result, session_info: dict, start: float, **extra: Any) -> dict:
    """A run's results file: the summary, `extra` (an interrupted run's ``interrupted``),
    the board session, when it ran, the compiled model and every measurement."""
    return {
        **result.summary(),
        **extra,
        "session": session_info,
        "started": start,
        "finished": time.time(),
        "compiled_model_path": str(result.compiled_model_path),
        "measurements": result.measurements.to_dict(),
    }

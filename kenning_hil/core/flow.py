"""KenningFlow: a graph of Runners defined in JSON and run in a loop (seed:
`kenning.core.flow.KenningFlow`).

A flow file is a JSON list of runners, run in file order each step::

    [
      {"type": "dataset-provider", "parameters": {...}, "outputs": {"data": "x", "label": "y"}},
      {"type": "model-runtime-runner", "parameters": {...},
       "inputs": {"input": "x"}, "outputs": {"model_output": "scores"}},
      {"type": "jsonlines", "parameters": {...}, "inputs": {"model_output": "scores", "label": "y"}}
    ]

``inputs`` and ``outputs`` map the class's local names to global names. Global output names
are unique; every input must be produced by an earlier runner. Everything is checked before
anything runs, each problem a one-line error naming the runner (index and type) and the field:
the entry's shape, the type, the parameters (the class's JSON schema), local and global names,
cycles, and the io specs of connected runners (shape and dtype).

`run` loops until a data provider is exhausted (its `fetch_input` raises StopIteration), a
step limit is reached, or the user presses Ctrl-C: the first SIGINT lets the current step
finish and then stops (so no output is torn), a second one interrupts at once. Every runner's
`cleanup` runs in all cases. What the flow measured (time per step, per runner and end to end)
comes back as Measurements; an interrupted run raises KeyboardInterrupt, a failed one its
KenningHILError, carrying them in its `measurements` attribute.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kenning_hil.core.args import load_class
from kenning_hil.core.errors import ConfigurationError, KenningHILError, one_line
from kenning_hil.core.measurements import TIMESTAMP_SUFFIX, Measurements
from kenning_hil.core.runner import Runner

ENTRY_KEYS = ("type", "parameters", "inputs", "outputs")
FLOW_STEP = "flow_step"
"""ns per flow step, end to end (every runner, the bookkeeping between them)."""
FLOW_STEPS = "flow_steps"
FLOW_SECONDS = "flow_seconds"
"""Wall time of the steps (not of prepare or cleanup): throughput is steps / seconds."""
FLOW_RUNNERS = "flow_runners"


def runner_step_key(index: int) -> str:
    """ns per step of runner `index` (its `run` call)."""
    return f"flow_runner{index}_step"


Progress = Callable[[int, "KenningFlow"], None]
"""Called after every step with the number of steps done (progress output, live views)."""


class KenningFlow:
    """Creates and runs flows of runners (data providers, model runners, collectors)."""

    def __init__(self, runners: list[Runner], names: Sequence[str] | None = None):
        """`names` label the runners in messages (default: their class names)."""
        self.runners = list(runners)
        self.names = list(names) if names is not None else [type(r).__name__ for r in runners]
        self.should_close = False
        self.interrupted = False
        self.steps_done = 0
        self.cleanup_errors: list[str] = []
        self._cleaned = self._cleaning = False
        self._plan = _plan(self.runners, self.names)
        # per step, the clock (perf_counter_ns) before the first runner and after each one:
        # one read ends a runner's time and starts the next one's
        self._marks: list[int] = []
        self._loop: Callable[..., bool] | None = None
        self._seconds = 0.0

    # --- building ---------------------------------------------------------------------------

    @classmethod
    def form_parameterschema(cls) -> dict:
        """The JSON schema of a flow file."""
        names = {"type": "object", "additionalProperties": {"type": "string"}}
        return {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": cls.__name__,
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": names,
                    "outputs": names,
                },
            },
        }

    @classmethod
    def from_json(
        cls,
        runners_specifications: list[dict[str, Any]],
        resolve: Callable[[str], type] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> KenningFlow:
        """Checks the flow (shape, types, parameters, names, cycles, io specs), then builds
        the runners in order. `resolve` turns a ``type`` into a class (default: dotted class
        paths only); `context` holds what runners take besides their parameters (a runner
        gets the keys its class lists in `context_keys`)."""
        resolve = resolve or load_class
        context = dict(context or {})
        entries = _check_entries(runners_specifications)
        classes, kwargs = [], []
        for i, entry in enumerate(entries):
            where = f"flow runner {i} ({entry['type']})"
            try:
                runner_cls = resolve(entry["type"])
            except KenningHILError as exc:
                raise ConfigurationError(f"{where}: {one_line(exc)}") from None
            if not (isinstance(runner_cls, type) and issubclass(runner_cls, Runner)):
                raise ConfigurationError(f"{where}: type '{entry['type']}' is not a Runner")
            try:
                kwargs.append(runner_cls.parse_json_parameters(entry["parameters"]))
            except KenningHILError as exc:
                raise ConfigurationError(f"{where}: field 'parameters': {one_line(exc)}") from None
            _check_local_names(runner_cls, entry, where)
            classes.append(runner_cls)
        names = [entry["type"] for entry in entries]
        sources = _check_graph(entries, names)
        runners: list[Runner] = []
        for i, (entry, runner_cls) in enumerate(zip(entries, classes)):
            where = f"flow runner {i} ({names[i]})"
            specs = {}
            for local, (producer, global_name) in sources[i].items():
                produced = _output_spec(runners[producer], entries[producer], global_name)
                specs[local] = produced
            own = {k: context[k] for k in runner_cls.context_keys if k in context}
            try:
                runner = runner_cls(
                    inputs_sources=sources[i], inputs_specs=specs, outputs=entry["outputs"],
                    **kwargs[i], **own,
                )
            except KenningHILError as exc:
                _release(runners)
                # the error keeps its class: a model the target cannot run, or a missing
                # framework, stays a skip in a test
                exc.args = (f"{where}: field 'parameters': {one_line(exc)}",)
                raise exc from None
            runners.append(runner)
            mismatch = _check_input_specs(runner, specs, entry, sources[i], names)
            if mismatch:
                _release(runners)
                raise ConfigurationError(f"{where}: {mismatch}")
        return cls(runners, names)

    # --- running ----------------------------------------------------------------------------

    def run_single_step(self) -> bool:
        """Runs every runner once; False (and nothing stored) when a provider is exhausted."""
        return self._steps(self.steps_done + 1, None)

    def _steps(self, limit: int, progress: Progress | None) -> bool:
        """Runs steps until `limit` steps are done, a provider is exhausted (False) or
        `should_close` is set (Ctrl-C)."""
        if self._loop is None:
            # bound after prepare: a runner may pick its per-step callable there
            self._loop = _compile_loop(self._plan)
        return self._loop(self, limit, progress, time.perf_counter_ns, self._marks,
                          *(runner.run for runner in self.runners))

    def run(self, steps: int | None = None, progress: Progress | None = None) -> Measurements:
        """Prepares every runner, runs steps until a provider is exhausted, `steps` are done
        or Ctrl-C, cleans up; returns the measurements. Ctrl-C raises KeyboardInterrupt after
        the cleanup, with the measurements in its `measurements` attribute."""
        if steps is not None and steps < 1:
            raise ConfigurationError(f"steps must be a positive integer, got {steps}")
        restore = self._catch_sigint()
        started = time.perf_counter()
        try:
            try:
                for runner in self.runners:
                    runner.prepare()
                started = time.perf_counter()
                self._steps(sys.maxsize if steps is None else steps, progress)
            finally:
                self._seconds = time.perf_counter() - started
                self.cleanup()
        except KeyboardInterrupt as exc:
            self.interrupted = True
            exc.measurements = self.measurements()
            raise
        except KenningHILError as exc:
            exc.measurements = self.measurements()  # what was measured is never lost
            raise
        finally:
            restore()
        if self.interrupted:
            interruption = KeyboardInterrupt()
            interruption.measurements = self.measurements()
            raise interruption
        return self.measurements()

    def _catch_sigint(self) -> Callable[[], None]:
        """First SIGINT: stop after the current step; second: KeyboardInterrupt at once.
        Only the main thread can handle signals; elsewhere Ctrl-C keeps its default."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            return lambda: None  # someone else (a test runner, an embedding app) owns it

        def stop(signum: int, frame: Any) -> None:
            if self.interrupted and not self._cleaning:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now (cleanup still runs)
            self.interrupted = self.should_close = True

        signal.signal(signal.SIGINT, stop)
        return lambda: signal.signal(signal.SIGINT, previous)

    def measurements(self) -> Measurements:
        """Per-step times (ns) end to end and per runner, the step count, the seconds the
        steps took, and what each runner measured (`Runner.measurements`; a key an earlier
        runner already gave is stored as ``flow_runner<i>_<key>``)."""
        measurements = Measurements()
        for i, runner in enumerate(self.runners):
            for key, value in runner.measurements().items():
                # a second runner measuring the same thing (two models, two collectors'
                # accuracy) keeps its own values under its index
                own = key if key not in measurements else f"flow_runner{i}_{key}"
                measurements.update_measurements({own: value})
        measurements.initialize_measurement(FLOW_STEPS, self.steps_done)
        measurements.initialize_measurement(FLOW_SECONDS, self._seconds)
        measurements.initialize_measurement(FLOW_RUNNERS, list(self.names))
        stride = len(self.runners) + 1
        marks = self._marks[: self.steps_done * stride]  # whole steps only
        starts = marks[::stride]
        measurements.add_measurements_list(
            FLOW_STEP, [end - start for start, end in zip(starts, marks[stride - 1 :: stride])])
        measurements.add_measurements_list(FLOW_STEP + TIMESTAMP_SUFFIX, starts)
        for i in range(len(self.runners)):
            measurements.add_measurements_list(runner_step_key(i), [
                end - start for start, end in zip(marks[i::stride], marks[i + 1 :: stride])])
        return measurements

    def cleanup(self) -> None:
        """Cleans every runner up, last first; a failing cleanup does not stop the others
        (its error is kept in `cleanup_errors`). Runs once."""
        if self._cleaned:
            return
        self._cleaned = self._cleaning = True  # Ctrl-C now waits for the cleanup
        for i in reversed(range(len(self.runners))):
            try:
                self.runners[i].cleanup()
            except Exception as exc:  # noqa: BLE001 - the other runners still need theirs
                self.cleanup_errors.append(f"flow runner {i} ({self.names[i]}): {one_line(exc)}")


def _release(runners: list[Runner]) -> None:
    """Cleans up the runners built before a check failed; the check's error is what the user
    needs, so a failing cleanup here is not raised."""
    for runner in reversed(runners):
        try:
            runner.cleanup()
        except Exception:  # noqa: BLE001, S110 - the check's error is the one to report
            pass


# --- checks -----------------------------------------------------------------------------------


def _check_entries(specifications: Any) -> list[dict]:
    if not isinstance(specifications, list) or not specifications:
        raise ConfigurationError(
            "a flow must be a non-empty JSON list of runners ({type, parameters, inputs, "
            f"outputs}}), got {type(specifications).__name__}"
        )
    entries = []
    for i, value in enumerate(specifications):
        kind = value.get("type") if isinstance(value, Mapping) else None
        where = f"flow runner {i} ({kind if isinstance(kind, str) else '?'})"
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"{where}: must be an object with 'type', 'parameters', 'inputs', 'outputs', "
                f"got {type(value).__name__}")
        unknown = sorted(set(value) - set(ENTRY_KEYS), key=str)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown field '{unknown[0]}' (allowed: {', '.join(ENTRY_KEYS)})")
        if not isinstance(kind, str) or not kind:
            raise ConfigurationError(f"{where}: field 'type' must be a class name, got {kind!r}")
        parameters = value.get("parameters", {})
        if not isinstance(parameters, Mapping):
            raise ConfigurationError(
                f"{where}: field 'parameters' must be an object, got {type(parameters).__name__}")
        entry = {"type": kind, "parameters": dict(parameters)}
        for field in ("inputs", "outputs"):
            names = value.get(field, {})
            if not isinstance(names, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in names.items()
            ):
                raise ConfigurationError(
                    f"{where}: field '{field}' must map local names to global names (strings), "
                    f"got {names!r}")
            entry[field] = dict(names)
        entries.append(entry)
    return entries


def _check_local_names(runner_cls: type, entry: dict, where: str) -> None:
    for field, known in (("inputs", runner_cls.input_names), ("outputs", runner_cls.output_names)):
        for local in entry[field]:
            if local not in known:
                raise ConfigurationError(
                    f"{where}: field '{field}': unknown local name '{local}' "
                    f"({runner_cls.__name__} has: {', '.join(known) or 'none'})")
    for local in runner_cls.required_inputs:
        if local not in entry["inputs"]:
            raise ConfigurationError(
                f"{where}: field 'inputs': local input '{local}' is not connected "
                f"(give \"inputs\": {{\"{local}\": GLOBAL_NAME}})")


def _check_graph(entries: list[dict], names: list[str]) -> list[dict[str, tuple[int, str]]]:
    """Unique global output names, no cycle, every input produced by an earlier runner;
    returns each runner's inputs_sources (local -> (producer index, global name))."""
    producer: dict[str, int] = {}
    for i, entry in enumerate(entries):
        for local, global_name in entry["outputs"].items():
            if global_name in producer:
                j = producer[global_name]
                raise ConfigurationError(
                    f"flow runner {i} ({names[i]}): field 'outputs': global name "
                    f"'{global_name}' (output '{local}') is already produced by flow runner "
                    f"{j} ({names[j]}); global names must be unique")
            producer[global_name] = i
    for i, entry in enumerate(entries):
        for global_name in entry["inputs"].values():
            if global_name in producer and producer[global_name] == i:
                raise ConfigurationError(
                    f"flow runner {i} ({names[i]}): field 'inputs': '{global_name}' is its own "
                    f"output (a cycle)")
    cycle = _find_cycle(
        [{producer[g] for g in e["inputs"].values() if g in producer} for e in entries])
    if cycle:
        path = " -> ".join(f"{j} ({names[j]})" for j in cycle)
        first = cycle[0]
        raise ConfigurationError(
            f"flow runner {first} ({names[first]}): field 'inputs': the runners form a cycle: "
            f"{path}")
    sources = []
    for i, entry in enumerate(entries):
        own = {}
        for local, global_name in entry["inputs"].items():
            where = f"flow runner {i} ({names[i]}): field 'inputs': input '{local}'"
            if global_name not in producer:
                known = ", ".join(sorted(producer)) or "none"
                raise ConfigurationError(
                    f"{where} reads '{global_name}', which no runner produces "
                    f"(global names: {known})")
            j = producer[global_name]
            if j > i:
                raise ConfigurationError(
                    f"{where} reads '{global_name}', produced by the later flow runner {j} "
                    f"({names[j]}); runners run in file order, so move it before runner {i}")
            own[local] = (j, global_name)
        sources.append(own)
    return sources


def _find_cycle(depends: list[set[int]]) -> list[int]:
    """A cycle in the 'reads from' graph as runner indices (first repeated at the end), or
    an empty list."""
    state = [0] * len(depends)  # 0 new, 1 on the path, 2 done
    path: list[int] = []

    def visit(node: int) -> list[int]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(depends[node]):
            if state[nxt] == 1:
                return path[path.index(nxt):] + [nxt]
            if state[nxt] == 0:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in range(len(depends)):
        if state[node] == 0:
            found = visit(node)
            if found:
                return found[::-1]
    return []


def _output_spec(runner: Runner, entry: dict, global_name: str) -> Any:
    local = next(k for k, v in entry["outputs"].items() if v == global_name)
    return runner.get_io_specification().get("output", {}).get(local)


def _check_input_specs(
    runner: Runner, specs: dict[str, Any], entry: dict, sources: dict, names: list[str]
) -> str:
    """'' when every connected input gets what the runner expects, else the mismatch."""
    expected = runner.get_io_specification().get("input", {})
    for local, produced in specs.items():
        wanted = expected.get(local)
        if wanted is None or produced is None:
            continue
        problem = spec_mismatch(produced, wanted)
        if problem:
            j, global_name = sources[local]
            return (f"field 'inputs': input '{local}' ('{global_name}' from flow runner {j} "
                    f"({names[j]})): {problem}")
    return ""


def describe_spec(spec: list[dict]) -> str:
    return ", ".join(f"{t.get('dtype', '?')} {list(t.get('shape') or [])}" for t in spec)


def spec_mismatch(produced: list[dict], wanted: list[dict]) -> str:
    """Why tensors of `produced` specs do not fit `wanted` ('' when they do): count, dtype,
    rank, and every dimension both sides fix (-1 or None: any)."""
    what = f"gets {describe_spec(produced)}, expects {describe_spec(wanted)}"
    if len(produced) != len(wanted):
        return f"{len(produced)} tensors where {len(wanted)} are expected ({what})"
    for got, want in zip(produced, wanted):
        if got.get("dtype") and want.get("dtype") and got["dtype"] != want["dtype"]:
            return f"dtype differs ({what})"
        got_shape, want_shape = got.get("shape"), want.get("shape")
        if got_shape is None or want_shape is None:
            continue
        if len(got_shape) != len(want_shape) or any(
            a not in (-1, None) and b not in (-1, None) and a != b
            for a, b in zip(got_shape, want_shape)
        ):
            return f"shape differs ({what})"
    return ""


def _compile_loop(plan: list[tuple]) -> Callable[..., bool]:
    """The flow's step loop, generated for its graph: values pass in local variables (no
    dict of global names), each runner's inputs are one dict display, only outputs a later
    runner reads are stored, and each clock read ends one runner's time and starts the
    next one's. This loop is the flow's whole per-step cost (benchmarks/bench_flow.py).

    The generated function takes (flow, limit, progress, clock, marks, run0, run1, ...)
    and returns False when a runner raised StopIteration (a provider is exhausted)."""
    variables: dict[str, str] = {}  # global name -> the local variable holding it
    read = {name for _, sources, _ in plan for _, name in sources}
    runs = [f"run{i}" for i in range(len(plan))]
    body = []
    for i, (_, sources, outputs) in enumerate(plan):
        given = ", ".join(f"{local!r}: {variables[name]}" for local, name in sources)
        stored = [(local, name) for local, name in outputs if name in read]
        call = f"run{i}({{{given}}})"
        if stored:
            body.append(f"out = {call}")
            for local, name in stored:
                variables[name] = f"v{len(variables)}"
                # an output the runner did not give is None
                body.append(f"{variables[name]} = out.get({local!r})")
        else:
            body.append(call)
        body.append(f"t{i + 1} = clock()")
    marks = ", ".join(f"t{i}" for i in range(len(plan) + 1))
    source = "\n".join([
        f"def loop(flow, limit, progress, clock, marks, {', '.join(runs)}):",
        "    done = flow.steps_done",
        "    while done < limit and not flow.should_close:",
        "        t0 = clock()",
        "        try:",
        *(f"            {line}" for line in body),
        "        except StopIteration:",
        "            flow.should_close = True",
        "            return False",
        f"        marks += ({marks},)",  # one extend: a step's marks are all there or none
        "        done += 1",
        "        flow.steps_done = done",
        "        if progress is not None:",
        "            progress(done, flow)",
        "    return True",
    ])
    namespace: dict[str, Any] = {}
    exec(compile(source, "<kenning-hil flow loop>", "exec"), namespace)  # noqa: S102
    return namespace["loop"]


def _plan(runners: list[Runner], names: list[str]) -> list[tuple]:
    """Per runner: (runner, ((local, global) inputs), ((local, global) outputs)), checked
    for a flow built directly from Runner objects as from JSON."""
    produced: set[str] = set()
    plan = []
    for i, runner in enumerate(runners):
        names_given = [*runner.inputs_sources, *runner.outputs, *runner.outputs.values(),
                       *(name for _, name in runner.inputs_sources.values())]
        bad = next((n for n in names_given if not isinstance(n, str)), None)
        if bad is not None:  # the step loop is generated with these names as literals
            raise ConfigurationError(
                f"flow runner {i} ({names[i]}): input and output names must be strings, "
                f"got {bad!r}")
        sources = []
        for local, (_, global_name) in runner.inputs_sources.items():
            if global_name not in produced:
                raise ConfigurationError(
                    f"flow runner {i} ({names[i]}): input '{local}' reads '{global_name}', "
                    f"which no earlier runner produces")
            sources.append((local, global_name))
        outputs = tuple(runner.outputs.items())
        produced.update(name for _, name in outputs)
        plan.append((runner, tuple(sources), outputs))
    return plan

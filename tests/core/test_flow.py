"""KenningFlow on its own (core only): runners built in Python as the seed allows, a custom
runner type by dotted path, the step loop, the step limit and progress callback, cleanup
order and failures, and what a run measures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kenning_hil.core.args import load_class
from kenning_hil.core.dataprovider import DataProvider, Sample
from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.core.flow import FLOW_STEP, FLOW_STEPS, KenningFlow, runner_step_key
from kenning_hil.core.outputcollector import OutputCollector
from kenning_hil.core.runner import Runner

CLEANED: list[str] = []


class Counter(DataProvider):
    arguments_structure = {"count": {"type": int, "default": 3}}

    def __init__(self, inputs_sources=None, inputs_specs=None, outputs=None, count=3):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.count, self.next = count, 0

    def get_io_specification(self) -> dict:
        return {"input": {}, "output": {"data": [{"shape": [1, 2], "dtype": "float32"}]}}

    def fetch_input(self) -> Any:
        if self.next >= self.count:
            raise StopIteration
        self.next += 1
        return Sample([np.full((1, 2), self.next, np.float32)], np.array([self.next % 2]))

    def detach_from_source(self) -> None:
        CLEANED.append("provider")


class Double(Runner):
    input_names = required_inputs = ("x",)
    output_names = ("y",)

    def get_io_specification(self) -> dict:
        return {"input": {"x": [{"shape": [-1, 2], "dtype": "float32"}]}, "output": {}}

    def run(self, inputs: dict) -> dict:
        (x,) = inputs["x"]
        return {"y": [x * 2]}

    def cleanup(self) -> None:
        CLEANED.append("double")
        raise RuntimeError("disk full")


class Keep(OutputCollector):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list = []

    def process_output(self, input_data, output_data) -> None:
        self.seen.append(float(output_data[0][0, 0]))

    def detach_from_output(self) -> None:
        CLEANED.append("keep")


HERE = __name__  # the dotted path pytest imported this module under


def specs(double_input: str = "data") -> list[dict]:
    here = HERE
    return [
        {"type": f"{here}.Counter", "parameters": {"count": 4},
         "outputs": {"data": "data", "label": "label"}},
        {"type": f"{here}.Double", "inputs": {"x": double_input}, "outputs": {"y": "doubled"}},
        {"type": f"{here}.Keep", "inputs": {"model_output": "doubled", "label": "label"}},
    ]


def test_runs_until_the_provider_ends_then_cleans_up_last_first():
    CLEANED.clear()
    flow = KenningFlow.from_json(specs())
    done = []
    measured = flow.run(progress=lambda steps, _: done.append(steps))
    assert flow.runners[2].seen == [2.0, 4.0, 6.0, 8.0]
    assert done == [1, 2, 3, 4] and measured[FLOW_STEPS] == 4
    assert CLEANED == ["keep", "double", "provider"]
    assert flow.cleanup_errors == [f"flow runner 1 ({HERE}.Double): disk full"]
    assert len(measured[FLOW_STEP]) == 4
    for i in range(3):
        assert len(measured[runner_step_key(i)]) == 4
    # each step spans its runners
    assert all(step >= sum(parts) for step, parts in zip(
        measured[FLOW_STEP], zip(*(measured[runner_step_key(i)] for i in range(3)))))
    # labels 1, 0, 1, 0 and the scores' single column: class 0 every time
    assert measured["accuracy"] == 0.5


def test_step_limit_and_runners_built_in_python():
    provider = Counter(outputs={"data": "data"}, count=10)
    double = Double(inputs_sources={"x": (0, "data")}, outputs={"y": "doubled"})
    keep = Keep(inputs_sources={"model_output": (1, "doubled")})
    flow = KenningFlow([provider, double, keep])
    measured = flow.run(steps=3)
    assert keep.seen == [2.0, 4.0, 6.0] and measured[FLOW_STEPS] == 3 and provider.next == 3
    with pytest.raises(ConfigurationError, match="steps must be a positive integer, got 0"):
        KenningFlow([Counter(outputs={"data": "data"})]).run(steps=0)
    with pytest.raises(ConfigurationError, match=r"flow runner 1 \(Double\): input 'x' reads "
                       "'nothing', which no earlier runner produces"):
        KenningFlow([provider, Double(inputs_sources={"x": (0, "nothing")})])


def test_a_failing_step_cleans_up_and_keeps_the_measurements():
    class Broken(Keep):
        def process_output(self, input_data, output_data) -> None:
            if len(self.seen) == 2:
                raise KenningHILError("the display went away")
            super().process_output(input_data, output_data)

    CLEANED.clear()
    flow = KenningFlow.from_json(specs()[:2], context={})
    flow = KenningFlow([*flow.runners, Broken(inputs_sources={"model_output": (1, "doubled")})])
    with pytest.raises(KenningHILError, match="the display went away") as caught:
        flow.run()
    assert caught.value.measurements[FLOW_STEPS] == 2
    assert CLEANED == ["keep", "double", "provider"]


def test_io_spec_checked_between_connected_runners():
    class Triple(Double):
        def get_io_specification(self) -> dict:
            return {"input": {"x": [{"shape": [-1, 3], "dtype": "float32"}]}, "output": {}}

    flow = specs()
    flow[1]["type"] = "Triple"
    with pytest.raises(ConfigurationError) as caught:
        KenningFlow.from_json(
            flow, resolve=lambda name: Triple if name == "Triple" else load_class(name))
    assert str(caught.value) == (
        "flow runner 1 (Triple): field 'inputs': input 'x' ('data' from flow runner 0 "
        f"({HERE}.Counter)): shape differs (gets float32 [1, 2], expects float32 [-1, 3])")
    # a value without a spec (the label) is not checked
    KenningFlow.from_json(specs("label")).cleanup()


def test_parameter_schema_and_entry_shape():
    schema = KenningFlow.form_parameterschema()
    assert schema["type"] == "array" and schema["items"]["required"] == ["type"]
    flow = specs()
    flow[0]["parameters"] = {"count": "many"}
    with pytest.raises(ConfigurationError) as caught:
        KenningFlow.from_json(flow)
    assert str(caught.value) == (
        f"flow runner 0 ({HERE}.Counter): field 'parameters': Counter: parameter 'count' must "
        "be an integer, got 'many' (string)")
    with pytest.raises(ConfigurationError, match=r"flow runner 0 \(\?\): must be an object"):
        KenningFlow.from_json(["Counter"])


class Partial(Runner):
    output_names = ("a", "b")

    def run(self, inputs: dict) -> dict:
        return {"a": 1}  # 'b' is not given


class Record(Runner):
    input_names = ("a", "b")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.got: list[dict] = []

    def run(self, inputs: dict) -> dict:
        self.got.append(dict(inputs))
        return {}


def test_single_steps_share_the_loop_of_run():
    """run_single_step runs one step of the same generated loop as run: an output a runner
    does not give reaches the next runner as None, one clock read ends a runner's time and
    starts the next one's (so a step is exactly the sum of its runners), and False comes
    back, with nothing stored, once a provider is exhausted."""
    record = Record(inputs_sources={"a": (0, "a"), "b": (0, "b")})
    flow = KenningFlow([Partial(outputs={"a": "a", "b": "b"}), record])
    assert flow.run_single_step() and flow.run_single_step()
    assert record.got == [{"a": 1, "b": None}] * 2
    measured = flow.measurements()
    assert measured[FLOW_STEPS] == 2 and len(measured[FLOW_STEP]) == 2
    assert list(measured[FLOW_STEP]) == [
        a + b for a, b in zip(measured[runner_step_key(0)], measured[runner_step_key(1)])]

    counted = KenningFlow([Counter(outputs={"data": "data"}, count=1)])
    assert counted.run_single_step() is True
    assert counted.run_single_step() is False and counted.should_close
    assert counted.steps_done == 1 and len(counted.measurements()[runner_step_key(0)]) == 1


def test_names_must_be_strings():
    with pytest.raises(ConfigurationError,
                       match=r"flow runner 0 \(Partial\): input and output names must be "
                             r"strings, got 3"):
        KenningFlow([Partial(outputs={"a": 3})])


def test_collector_classes_when_the_output_changes_shape_or_type():
    """The collector's shortcut for a score row like the previous one never changes what
    top1_class picks: a batch of two is classed by its first row, a non-numeric output is
    no class, a one-element integer array label and an int label count alike."""
    keep = Keep(inputs_sources={"model_output": (1, "s"), "label": (0, "y")})
    row = np.array([[0.1, 0.9, 0.0]], np.float32)
    two_rows = np.array([[0.8, 0.1, 0.1], [0.0, 0.0, 9.0]], np.float32)
    steps = [([row], 1), ([row * 2], np.array([1])), ([two_rows], 0),
             ([row.astype(bool)], 1), ([row], 0)]
    classes = []
    for output, label in steps:
        keep.run({"model_output": output, "label": label})
        classes.append(keep.last_class)
    assert classes == [1, 1, 0, None, 1]
    assert (keep.labelled, keep.correct, keep.processed) == (4, 3, 5)

"""OutputCollector: the runner that uses a flow's results (seed:
`kenning.core.outputcollector`): writes them, shows them, sends them on.

Local inputs: ``model_output`` (the model's outputs, a list of arrays), ``input`` (the
data the model got, e.g. to draw on the image) and ``label`` (the true class, when the
provider knows it). For classifiers the base class keeps the running top-1 accuracy over
the labelled samples (`accuracy`), which every collector reports as its measurement.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from kenning_hil.core.runner import Runner

ACCURACY = "accuracy"
_NOTHING: dict[str, Any] = {}  # what a collector's step returns (never changed)
_ndarray = np.ndarray  # one global lookup in the per-step checks instead of two


def top1_class(model_output: Any) -> int | None:
    """The class a classifier's output picks (argmax of the first tensor's first row), or
    None when the output is not a score vector."""
    if type(model_output) is list:  # the usual flow step (this runs every step)
        scores = model_output[0]
    else:
        scores = model_output[0] if isinstance(model_output, tuple) else model_output
    if type(scores) is _ndarray and scores.ndim == 2 and len(scores) == 1:
        # a batch of one: no conversion
        return int(scores.argmax()) if scores.dtype.kind in "fiu" else None
    array = np.asarray(scores)
    if array.ndim == 0 or array.size == 0 or array.dtype.kind not in "fiu":
        return None
    return int(array.reshape(-1, array.shape[-1])[0].argmax())


def label_class(label: Any) -> int | None:
    """The class id of a label as providers give it (an int or a one-element array)."""
    if type(label) is int or label is None:  # a class id as providers give it
        return label
    if type(label) is np.ndarray and label.size == 1 and label.dtype.kind in "iu":
        return int(label.item())  # the usual step: a batch of one (no conversion)
    array = np.asarray(label).reshape(-1)
    if array.size != 1 or array.dtype.kind not in "iu":
        return None
    return int(array[0])


class OutputCollector(Runner):
    """Receives and processes inference results."""

    input_names = ("model_output", "input", "label")
    required_inputs = ("model_output",)

    def __init__(
        self,
        inputs_sources: dict[str, tuple[int, str]] | None = None,
        inputs_specs: dict[str, Any] | None = None,
        outputs: dict[str, str] | None = None,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.processed = 0
        self.labelled = 0
        self.correct = 0
        self.last_class: int | None = None
        self.last_label: int | None = None
        self._score_row: tuple = ((), None)  # (shape, dtype) of a one-row score array

    @abstractmethod
    def process_output(self, input_data: Any, output_data: Any) -> None:
        """Returns the inferred data back to its place (a file, a screen, a connection)."""

    @abstractmethod
    def detach_from_output(self) -> None:
        """Detaches from the output during shutdown (closes files, connections)."""

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy over the labelled samples so far (None before the first)."""
        return self.correct / self.labelled if self.labelled else None

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        output = inputs.get("model_output")
        scores = output[0] if type(output) is list else None
        row = self._score_row
        if type(scores) is _ndarray and scores.dtype is row[1] and scores.shape == row[0]:
            # a score row like the last one top1_class accepted: its class without the call
            # and its checks (numpy attribute reads cost more than they look after a model)
            predicted = int(scores.argmax())
        else:
            predicted = top1_class(output)
            if (predicted is not None and type(scores) is _ndarray and scores.ndim == 2
                    and len(scores) == 1):
                self._score_row = (scores.shape, scores.dtype)
        self.last_class = predicted
        label = inputs.get("label")
        if label is not None:
            self.last_label = truth = label if type(label) is int else label_class(label)
            if truth is not None and predicted is not None:
                self.labelled += 1
                if predicted == truth:
                    self.correct += 1
        self.process_output(inputs.get("input"), output)
        self.processed += 1
        return _NOTHING

    def measurements(self) -> dict[str, Any]:
        return {} if self.accuracy is None else {ACCURACY: self.accuracy}

    def cleanup(self) -> None:
        self.detach_from_output()

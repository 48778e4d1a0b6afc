"""DatasetProvider: the samples of any of our Datasets, one per flow step, with labels."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from kenning_hil.blocks.entries import normalize_entry
from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.dataprovider import DataProvider, Sample
from kenning_hil.core.dataset import Dataset
from kenning_hil.core.errors import ConfigurationError
from kenning_hil.dataproviders.common import tensors_spec


class DatasetProvider(DataProvider):
    """Feeds a flow from a Dataset (a scenario `dataset` entry): each step one sample, its
    inputs with a batch axis of 1 and its label."""

    arguments_structure = {
        "dataset": {
            "description": "The dataset, as a scenario entry: {\"type\": \"digits\", "
            "\"parameters\": {...}}",
            "type": dict,
            "required": True,
        },
        "samples": {
            "description": "Provide at most this many samples (none: the whole subset)",
            "type": int,
            "nullable": True,
            "default": None,
        },
        "loop": {
            "description": "Start again from the first sample when the last was provided "
            "(a demo that runs until Ctrl-C)",
            "type": bool,
            "default": False,
        },
    }

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        dataset: dict | None = None,
        samples: int | None = None,
        loop: bool = False,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        if samples is not None and samples < 1:
            raise ConfigurationError(f"parameter 'samples' must be positive, got {samples}")
        entry = normalize_entry(dataset, "parameter 'dataset'")
        try:
            cls = resolve_class("dataset", entry["type"], Dataset)
            self.dataset = cls.from_json(entry["parameters"])
        except ConfigurationError as exc:
            raise ConfigurationError(f"parameter 'dataset': {exc}") from None
        self.dataset.set_sample_limit(samples)
        self.loop = loop
        try:
            self.dataset.check_not_empty()  # its size and split, in the runs' own words
        except ConfigurationError as exc:
            raise ConfigurationError(f"parameter 'dataset': {exc}") from None
        xs, ys = self.dataset.get_data_unloaded()
        self._spec = tensors_spec(self.dataset.prepare_input_samples(xs[:1]))
        self._samples: Iterator[Sample] | None = None

    def get_io_specification(self) -> dict:
        return {"input": {}, "output": {"data": self._spec, "label": None}}

    def prepare(self) -> None:
        # per sample a C-level step (chain over the chunks' lists); Python runs per chunk
        self._samples = itertools.chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            for inputs, truth in self.dataset.iter_chunks():
                labels = truth[0] if isinstance(truth, (list, tuple)) and truth else None
                yield _cut(inputs, labels)
            if not self.loop:
                return

    def fetch_input(self) -> Any:
        if self._samples is None:
            self.prepare()
        sample = next(self._samples)  # StopIteration when the subset is done: the flow ends
        return Sample(sample["data"], sample["label"])

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        # the samples are cut as this step's outputs already (this runs every step)
        if self._samples is None:
            self.prepare()
        return next(self._samples)

    def detach_from_source(self) -> None:
        self._samples = None


def _cut(inputs: list, labels: Any) -> list[dict[str, Any]]:
    """A prepared chunk as the outputs of one step each ({"data", "label"}), cut in one
    comprehension per chunk rather than per step. Class ids (a 1-D integer array) become
    ints, the class id as the other providers give it; other labels stay arrays of one."""
    count = len(inputs[0]) if inputs else 0
    if labels is None:
        labels = [None] * count
    elif (type(labels) is np.ndarray and labels.ndim == 1 and labels.dtype.kind in "iu"
          and len(labels) == count):
        labels = labels.tolist()
    else:
        labels = [labels[i : i + 1] for i in range(count)]
    if len(inputs) == 1:
        (tensor,) = inputs
        return [{"data": [tensor[i : i + 1]], "label": labels[i]} for i in range(count)]
    return [{"data": [a[i : i + 1] for a in inputs], "label": labels[i]} for i in range(count)]

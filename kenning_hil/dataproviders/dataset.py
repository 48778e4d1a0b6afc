"""DatasetProvider: the samples of any of our Datasets, one per flow step, with labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
        xs, ys = self.dataset.get_data_unloaded()
        if not xs:
            raise ConfigurationError("parameter 'dataset': the dataset has no samples")
        self._spec = tensors_spec(self.dataset.prepare_input_samples(xs[:1]))
        self._samples: Iterator[Sample] | None = None

    def get_io_specification(self) -> dict:
        return {"input": {}, "output": {"data": self._spec, "label": None}}

    def prepare(self) -> None:
        self._samples = self._generate()

    def _generate(self) -> Iterator[Sample]:
        while True:
            for inputs, truth in self.dataset.iter_chunks():
                labels = truth[0] if isinstance(truth, (list, tuple)) and truth else None
                yield from _cut(inputs, labels)
            if not self.loop:
                return

    def fetch_input(self) -> Any:
        if self._samples is None:
            self.prepare()
        return next(self._samples)  # StopIteration when the subset is done: the flow ends

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        # DataProvider.run without its generic Sample check (this runs every step)
        data, label = self.fetch_input()
        return {"data": data, "label": label}

    def detach_from_source(self) -> None:
        self._samples = None


def _cut(inputs: list, labels: Any) -> list[Sample]:
    """A prepared chunk as samples of one, cut in one comprehension (cheaper per flow step
    than a generator cutting each: benchmarks/bench_flow.py)."""
    if len(inputs) == 1:
        (tensor,) = inputs
        if labels is None:
            return [Sample([tensor[i : i + 1]]) for i in range(len(tensor))]
        return [Sample([tensor[i : i + 1]], labels[i : i + 1]) for i in range(len(tensor))]
    return [Sample([a[i : i + 1] for a in inputs],
                   None if labels is None else labels[i : i + 1])
            for i in range(len(inputs[0]))]

"""DataProvider: the runner that feeds a flow (seed: `kenning.core.dataprovider`).

`fetch_input` returns the next sample's data (or a `Sample` with its label, when the source
knows it) and raises StopIteration when the source is exhausted: the flow then ends after
the steps done so far. `detach_from_source` runs at cleanup.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, NamedTuple

from kenning_hil.core.runner import Runner


class Sample(NamedTuple):
    """A sample whose label the source knows (a dataset, a folder per class)."""

    data: Any
    label: Any = None


class DataProvider(Runner):
    """Provides data for inference (a dataset, files, a TCP stream, a camera)."""

    output_names = ("data", "label")

    def __init__(
        self,
        inputs_sources: dict[str, tuple[int, str]] | None = None,
        inputs_specs: dict[str, Any] | None = None,
        outputs: dict[str, str] | None = None,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)

    def prepare(self) -> None:
        """Prepares the source for data gathering (opens files, connects, loads a dataset)."""

    @abstractmethod
    def fetch_input(self) -> Any:
        """The next sample's data (model inputs: a list of arrays with a batch axis), or a
        `Sample` (data and label); raises StopIteration when there is none left."""

    @abstractmethod
    def detach_from_source(self) -> None:
        """Detaches from the source during shutdown."""

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        sample = self.fetch_input()
        if type(sample) is Sample:
            return {"data": sample[0], "label": sample[1]}  # by index: cheaper per step
        return {"data": sample}

    def cleanup(self) -> None:
        self.detach_from_source()

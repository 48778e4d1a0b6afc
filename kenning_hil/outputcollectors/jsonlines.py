"""JSONLinesCollector: one JSON object per processed sample, one line each.

Each line is written whole with one write call and flushed, so an interrupted flow leaves a
file that ends with the last processed sample, never with a torn line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError, os_reason
from kenning_hil.core.outputcollector import OutputCollector


class JSONLinesCollector(OutputCollector):
    """Writes every sample's result as a JSON line: its index, the predicted class (for
    classifiers), the label when known and, with `write_outputs`, the model's outputs."""

    arguments_structure = {
        "path": {"description": "The JSON-lines file to write (replaced)", "type": Path,
                 "required": True},
        "write_outputs": {"description": "Also write the model's output values",
                          "type": bool, "default": False},
    }

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        path: Path | None = None,
        write_outputs: bool = False,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.path = Path(path)
        self.write_outputs = write_outputs
        self._file: IO[str] | None = None

    def prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed at cleanup
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the JSON-lines file {self.path}: {os_reason(exc)}") from None

    def process_output(self, input_data: Any, output_data: Any) -> None:
        record: dict[str, Any] = {"sample": self.processed}
        if self.last_class is not None:
            record["class"] = self.last_class
        if self.last_label is not None:
            record["label"] = self.last_label
        if self.write_outputs and output_data is not None:
            record["outputs"] = [np.asarray(o).tolist() for o in output_data]
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def detach_from_output(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

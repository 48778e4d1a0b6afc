"""ModelWrapper: a model in its source framework: loading, io specification, model-specific
pre/postprocessing, conversion of tensors to and from bytes, and inference on the host
(Kenning's ModelWrapper API).
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from pathlib import Path

import numpy as np

from kenning_hil.core.args import ArgumentsHandler
from kenning_hil.core.dataset import Dataset
from kenning_hil.core.errors import ConfigurationError, InputSizeError, ModelLoadError
from kenning_hil.core.iospec import (
    io_spec_path,
    load_io_specification,
    save_io_specification,
    tensor_shape,
    validate_io_specification,
)
from kenning_hil.core.measurements import TIMESTAMP_SUFFIX, WRAPPER_STEP, Measurements


def wire_dtype(entry: dict) -> np.dtype:
    """The dtype a tensor travels in between a wrapper and a runtime: the float dtype before
    quantisation when the runtime quantises it, else its own dtype."""
    return np.dtype(entry.get("prequantized_dtype", entry["dtype"]))


def per_sample_shape(entry: dict) -> tuple[int, ...]:
    """The shape of one sample of a tensor: its io spec shape without the batch dimension."""
    return tensor_shape(entry, batch=1)[1:]


def split_tensors_from_bytes(data: bytes, entries: list[dict], owner: str) -> list[np.ndarray]:
    """Cuts `data` into one array per entry (in `entries` order), each in its wire dtype.

    The batch size is what the byte count implies; a size that no whole number of samples
    matches raises InputSizeError naming the expected bytes per sample.
    """
    sizes = [math.prod(per_sample_shape(e)) * wire_dtype(e).itemsize for e in entries]
    per_batch_item = sum(sizes)
    if per_batch_item == 0 or len(data) % per_batch_item or not data:
        raise InputSizeError(
            f"{owner}: got {len(data)} bytes, expected a positive multiple of {per_batch_item} "
            f"bytes per sample ({', '.join(_describe(e) for e in entries)})"
        )
    batch = len(data) // per_batch_item
    arrays, offset = [], 0
    for entry, size in zip(entries, sizes):
        fixed_batch = entry["shape"][0] if entry["shape"] else 1
        if fixed_batch != -1 and fixed_batch != batch:
            raise InputSizeError(
                f"{owner}: tensor '{entry['name']}' has a fixed batch of {fixed_batch}, "
                f"got data for {batch} samples ({len(data)} bytes)"
            )
        dtype = wire_dtype(entry)
        count = size * batch // dtype.itemsize
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        arrays.append(array.reshape((batch, *per_sample_shape(entry))))
        offset += size * batch
    return arrays


def _describe(entry: dict) -> str:
    return f"'{entry['name']}' {list(entry['shape'])} {wire_dtype(entry).name}"


def check_tensors(arrays: list, entries: list[dict], owner: str) -> None:
    """Raises InputSizeError unless `arrays` match `entries` in count and per-sample shape."""
    if len(arrays) != len(entries):
        raise InputSizeError(
            f"{owner}: got {len(arrays)} tensors, the model has {len(entries)} "
            f"({', '.join(_describe(e) for e in entries)})"
        )
    for array, entry in zip(arrays, entries):
        expected = per_sample_shape(entry)
        shape = tuple(np.shape(array))
        if shape[1:] != expected:
            raise InputSizeError(
                f"{owner}: tensor '{entry['name']}' expects samples of shape {list(expected)} "
                f"(io spec shape {list(entry['shape'])}), got samples of shape {list(shape[1:])}"
            )


def split_batches(arrays: list[np.ndarray], batch_size: int) -> list[list[np.ndarray]]:
    """Cuts per-tensor arrays of a chunk into batches (views, no copies)."""
    count = len(arrays[0]) if arrays else 0
    return [[a[i : i + batch_size] for a in arrays] for i in range(0, count, batch_size)]


def concatenate_batches(batches: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Joins per-batch outputs back into one array per output tensor."""
    if len(batches) == 1:
        return list(batches[0])
    if len(batches[0]) == 1:
        return [np.concatenate([outputs[0] for outputs in batches])]
    return [np.concatenate(parts) for parts in zip(*batches)]


class ModelWrapper(ArgumentsHandler):
    """Wraps a model of one framework (subclasses implement the framework part)."""

    arguments_structure = {
        "model_path": {
            "argparse_name": "--model-path",
            "description": "Path to the model file",
            "type": Path,
            "required": True,
        },
        "model_name": {
            "description": "Name of the model in reports (default: the file name without suffix)",
            "type": str,
            "nullable": True,
            "default": None,
        },
    }

    output_formats: list[str] = []
    """Model formats this wrapper can hand to the next block (e.g. "onnx"), preferred first."""

    native_format: str | None = None
    """The format of the file at `model_path`; any other of `output_formats` is exported
    (`save_to_onnx`) before the next block gets it. None: the first of `output_formats`."""

    def __init__(
        self,
        model_path: Path,
        dataset: Dataset | None = None,
        from_file: bool = True,
        model_name: str | None = None,
    ):
        self.model_path = Path(model_path)
        self.dataset = dataset
        self.from_file = from_file
        self.model_name = model_name or self.model_path.name.split(".")[0]
        self.model_prepared = False
        self.io_specification: dict | None = None
        if from_file and not self.model_path.is_file():
            # a relative path starts in the current directory: say which, it is often the cause
            where = "" if self.model_path.is_absolute() else f" (in {Path.cwd()})"
            raise ModelLoadError(
                f"{type(self).__name__}: model file {self.model_path} does not exist{where}"
            )

    # --- model life cycle ------------------------------------------------------------------

    @abstractmethod
    def prepare_model(self) -> None:
        """Loads the model (once); sets `model_prepared`."""

    def load_model(self, model_path: Path) -> None:
        """Loads the model from `model_path`."""
        raise ConfigurationError(f"{type(self).__name__} cannot load models from files")

    def save_model(self, model_path: Path) -> None:
        """Saves the model to `model_path`."""
        raise ConfigurationError(f"{type(self).__name__} cannot save models")

    def save_to_onnx(self, model_path: Path) -> None:
        """Saves the model in the ONNX format to `model_path`."""
        raise ConfigurationError(f"{type(self).__name__} cannot export models to ONNX")

    def train_model(self, batch_size: int, learning_rate: float, epochs: int, logdir: Path):
        """Trains the model on the dataset (wrappers that support training override this)."""
        raise ConfigurationError(f"{type(self).__name__} does not support training")

    def get_path(self) -> Path:
        return self.model_path

    @abstractmethod
    def get_framework_and_version(self) -> tuple[str, str]:
        """(framework name, framework version)."""

    def get_output_formats(self) -> list[str]:
        """Formats in which this wrapper can hand the model to an optimizer or runtime."""
        return list(self.output_formats)

    def get_native_format(self) -> str | None:
        """The format of the model file itself (see `native_format`)."""
        if self.native_format is not None:
            return self.native_format
        formats = self.get_output_formats()
        return formats[0] if formats else None

    # --- io specification ------------------------------------------------------------------

    def get_io_specification(self) -> dict[str, list[dict]]:
        """The io spec: from `<model>.json` when present, else read from the model; cached."""
        if self.io_specification is None:
            spec = load_io_specification(io_spec_path(self.model_path))
            if spec is None:
                spec = self.get_io_specification_from_model()
            self.io_specification = validate_io_specification(
                spec, source=f"io specification of {self.model_path}"
            )
        return self.io_specification

    @abstractmethod
    def get_io_specification_from_model(self) -> dict[str, list[dict]]:
        """A new io spec read from the model itself."""

    def save_io_specification(self, model_path: Path | None = None) -> Path:
        """Writes the io spec next to `model_path` (default: the wrapped model)."""
        target = self.model_path if model_path is None else Path(model_path)
        return save_io_specification(io_spec_path(target), self.get_io_specification())

    @classmethod
    def parse_io_specification_from_json(cls, json_dict: dict) -> dict[str, list[dict]]:
        """The io spec of the model a JSON parameter dict describes, without building a wrapper:
        the model's `.json` io spec when present, else `derive_io_spec_from_json_params`."""
        params = cls.parse_json_parameters(json_dict)
        model_path = params.get("model_path")
        if model_path is not None:
            spec = load_io_specification(io_spec_path(model_path))
            if spec is not None:
                return spec
        return cls.derive_io_spec_from_json_params(params)

    @classmethod
    def derive_io_spec_from_json_params(cls, params: dict) -> dict[str, list[dict]]:
        """Derives an io spec from validated parameters (unknown dimensions are -1)."""
        raise ConfigurationError(
            f"{cls.__name__}: cannot derive an io specification without an io spec file"
        )

    # --- data ------------------------------------------------------------------------------

    def preprocess_input(self, X: list) -> list:
        """Model-specific input preprocessing of a batch; none by default."""
        return X

    def postprocess_outputs(self, y: list) -> list:
        """Model-specific output postprocessing of a batch; none by default."""
        return y

    def convert_input_to_bytes(self, inputdata: list) -> bytes:
        """Serialises preprocessed inputs: each tensor's raw bytes, in io spec order."""
        entries = self.get_io_specification()["input"]
        check_tensors(inputdata, entries, f"{type(self).__name__} input")
        return b"".join(
            np.ascontiguousarray(x, dtype=wire_dtype(e)).tobytes()
            for x, e in zip(inputdata, entries)
        )

    def convert_output_from_bytes(self, outputdata: bytes) -> list[np.ndarray]:
        """Parses raw output bytes (tensors concatenated in io spec order) into arrays."""
        entries = self.get_io_specification()["output"]
        return [
            np.array(a)  # own the memory: the bytes object may be a reused buffer
            for a in split_tensors_from_bytes(outputdata, entries, f"{type(self).__name__} output")
        ]

    # --- inference on the host --------------------------------------------------------------

    @abstractmethod
    def run_inference(self, X: list) -> list:
        """Runs the model on one preprocessed batch; returns one array per output."""

    def test_inference(self) -> Measurements:
        """Runs the dataset through the model on the host.

        Returns Measurements with the dataset's quality metrics, `inference_step` (ns per
        batch) and `inference_step_timestamp` (ns, batch start).
        """
        if self.dataset is None:
            raise ConfigurationError(f"{type(self).__name__}: test_inference needs a dataset")
        self.prepare_model()
        dataset = self.dataset
        entries = self.get_io_specification()["input"]
        measurements = Measurements()
        durations: list[int] = []
        starts: list[int] = []
        clock = time.perf_counter_ns
        for inputs, truth in dataset.iter_chunks():
            prepared = self.preprocess_input(inputs)
            check_tensors(prepared, entries, f"{type(self).__name__} input")
            outputs = []
            for batch in split_batches(prepared, dataset.batch_size):
                start = clock()
                outputs.append(self.run_inference(batch))
                durations.append(clock() - start)
                starts.append(start)
            predictions = self.postprocess_outputs(concatenate_batches(outputs))
            dataset.merge_evaluation(measurements, dataset.evaluate(predictions, truth))
        for key, value in dataset.compute_quality_metrics(measurements).items():
            measurements.initialize_measurement(key, value)
        measurements.add_measurements_list(WRAPPER_STEP, durations)
        measurements.add_measurements_list(WRAPPER_STEP + TIMESTAMP_SUFFIX, starts)
        return measurements

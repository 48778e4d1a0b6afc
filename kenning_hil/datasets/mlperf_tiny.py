"""MLPerf Tiny datasets in the EEMBC runner's format: a folder of raw `.bin` tensors and a
`y_labels.csv` whose lines are `file,num_classes,class` (the format the EEMBC energy/
performance runner reads and sends to a board byte for byte).

A `.bin` file holds one input tensor, row-major, no header; its element type and shape are
dataset parameters (the runner itself does not record them). For models whose real data are not
at hand, `write_synthetic_eembc_dataset` writes random tensors in the same format — agreement
between runtimes needs no real labels.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kenning_hil.core.errors import ConfigurationError, InputSizeError
from kenning_hil.core.measurements import SAMPLES_TOTAL
from kenning_hil.datasets.classification import ClassificationDataset
from kenning_hil.datasets.random import spread_steps

LABELS_FILE_NAME = "y_labels.csv"
MODELS_PATH_ENV = "KENNING_HIL_MODELS"
DEFAULT_MODELS_DIR = "models"  # as config.options.DEFAULT_MODELS_PATH


@dataclass(frozen=True)
class MLPerfTinyModel:
    """One MLPerf Tiny reference model: file name under `mlperf_tiny/` and what it takes."""

    name: str
    file_name: str
    task: str
    input_shape: tuple[int, ...]
    num_classes: int


MLPERF_TINY_MODELS = (
    MLPerfTinyModel("kws", "kws_ref_model.tflite", "keyword spotting", (1, 49, 10, 1), 12),
    MLPerfTinyModel("vww", "vww_96_int8.tflite", "visual wake words", (1, 96, 96, 3), 2),
    MLPerfTinyModel("ic", "pretrainedResnet_quant.tflite", "image classification",
                    (1, 32, 32, 3), 10),
    MLPerfTinyModel("ad", "ad01_int8.tflite", "anomaly detection", (1, 640), 2),
)


def models_root() -> Path:
    """Where external models live outside a pytest run: $KENNING_HIL_MODELS, else `models/`
    of the current directory (pytest runs resolve --models-path / hil_models_path instead,
    whose default is `models/` under the rootdir)."""
    configured = os.environ.get(MODELS_PATH_ENV)
    if configured:
        return Path(configured)
    return Path.cwd() / DEFAULT_MODELS_DIR


def mlperf_tiny_model_path(model: MLPerfTinyModel, root: Path | None = None) -> Path:
    """Path of an MLPerf Tiny model under the models root (it may not exist)."""
    return (models_root() if root is None else Path(root)) / "mlperf_tiny" / model.file_name


def read_eembc_labels(root: Path) -> list[tuple[str, int, int]]:
    """Parses `root/y_labels.csv` into (file name, number of classes, class id) rows."""
    path = root / LABELS_FILE_NAME
    if not path.is_file():
        raise ConfigurationError(f"EEMBC dataset {root}: missing {LABELS_FILE_NAME}")
    rows = []
    with open(path, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 3:
                raise ConfigurationError(
                    f"{path}:{line_number}: expected 'file,num_classes,class', "
                    f"got {','.join(row)!r}"
                )
            name, num_classes, label = (cell.strip() for cell in row)
            try:
                num_classes_value, label_value = int(num_classes), int(label)
            except ValueError:
                raise ConfigurationError(
                    f"{path}:{line_number}: num_classes and class must be integers, "
                    f"got {num_classes!r} and {label!r}"
                ) from None
            if not 0 <= label_value < num_classes_value:
                raise ConfigurationError(
                    f"{path}:{line_number}: class {label_value} outside 0..{num_classes_value - 1}"
                )
            rows.append((name, num_classes_value, label_value))
    if not rows:
        raise ConfigurationError(f"{path}: no samples listed")
    counts = {row[1] for row in rows}
    if len(counts) != 1:
        raise ConfigurationError(f"{path}: inconsistent num_classes values {sorted(counts)}")
    return rows


# written next to synthetic samples: their labels are random, so no quality metric means anything
SYNTHETIC_MARKER = "SYNTHETIC.txt"
# in the marker of samples drawn around the zero point (#23)
SPREAD_DRAW = "draw: spread around the zero point"
# the marker's line of the parameters the samples were written with: a folder written with
# others (another count, seed, shape, ...; or before this line existed) is written again, so
# the samples always follow the dataset's parameters, never what an earlier run left there
PARAMETERS_LINE = "parameters: "


def synthetic_parameters(shape: list[int], dtype: str, count: int, num_classes: int,
                         seed: int, zero_point: int | None) -> str:
    """The marker line recording what `write_synthetic_eembc_dataset` was given."""
    return PARAMETERS_LINE + json.dumps(
        {"count": count, "classes": num_classes, "seed": seed, "shape": list(shape),
         "dtype": np.dtype(dtype).name, "zero_point": zero_point}, sort_keys=True)


def _replace_file(path: Path, data: bytes) -> None:
    """Writes `path` whole or not at all (a reader or a crash never sees half a file)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_synthetic_eembc_dataset(
    root: Path,
    shape: list[int],
    dtype: str,
    count: int,
    num_classes: int,
    seed: int = 0,
    zero_point: int | None = None,
) -> None:
    """Writes `count` random tensors and random labels in the EEMBC format. Integer tensors
    with a known `zero_point` are drawn around it (`datasets.random.spread_steps`: uniform
    noise drives saturating models to a few outputs, #23), else uniformly. Samples of an
    earlier synthetic set that this one does not list are removed; the labels and the
    marker are replaced last, so an interrupted write is written again next time."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stale = set()
    if (root / SYNTHETIC_MARKER).is_file() and (root / LABELS_FILE_NAME).is_file():
        stale = {name for name, _, _ in read_eembc_labels(root)}
    rng = np.random.default_rng(seed)
    np_dtype = np.dtype(dtype)
    lines = []
    for index in range(count):
        if np_dtype.kind in "iu" and zero_point is not None:
            info = np.iinfo(np_dtype)
            sample = list(shape[1:]) if len(shape) > 1 and shape[0] == 1 else list(shape)
            steps = spread_steps(tuple(sample), info.min, info.max, float(zero_point), rng)
            tensor = steps.astype(np_dtype).reshape(shape)
        elif np_dtype.kind in "iu":
            info = np.iinfo(np_dtype)
            tensor = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=np_dtype)
        else:
            tensor = rng.standard_normal(size=shape).astype(np_dtype)
        name = f"sample_{index:05d}.bin"
        _replace_file(root / name, tensor.tobytes())
        stale.discard(name)
        lines.append(f"{name},{num_classes},{int(rng.integers(num_classes))}\n")
    _replace_file(root / LABELS_FILE_NAME, "".join(lines).encode())
    for name in stale:
        (root / name).unlink(missing_ok=True)
    draw = f"{SPREAD_DRAW} {zero_point}" if zero_point is not None else "draw: uniform"
    _replace_file(root / SYNTHETIC_MARKER, (
        "Random tensors with random labels (kenning-hil write_synthetic_eembc_dataset): "
        "for latency, size and runtime agreement only; no quality metrics are reported.\n"
        f"{draw}\n"
        f"{synthetic_parameters(shape, dtype, count, num_classes, seed, zero_point)}\n"
    ).encode())


def _writes_synthetic(root: Path, parameters: str) -> bool:
    """Whether a dataset asking for synthetic samples of `parameters` (the marker line)
    writes them into `root`: no samples there, or synthetic ones of other parameters."""
    if not (root / LABELS_FILE_NAME).is_file():
        return True
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        return False
    return parameters not in marker.read_text().splitlines()


def _synthetic_reason(root: Path) -> str:
    return f"the samples in {root} are synthetic, with random labels"


class EEMBCDataset(ClassificationDataset):
    """Raw `.bin` tensors listed in `y_labels.csv` (MLPerf Tiny / EEMBC runner format)."""

    arguments_structure = {
        "input_shape": {
            "description": "Shape of one sample tensor, batch dimension included (e.g. 1 49 10 1)",
            "type": int,
            "is_list": True,
            "required": True,
        },
        "input_dtype": {
            "description": "Element type of the .bin files (numpy name: int8, uint8, float32)",
            "type": str,
            "default": "int8",
        },
        "input_scale": {
            "description": "The .bin files hold quantised values: samples are dequantised with "
            "this scale (and input_zero_point), so that the host path re-quantises them exactly",
            "type": float,
            "nullable": True,
            "default": None,
        },
        "input_zero_point": {
            "description": "Zero point that goes with input_scale",
            "type": int,
            "default": 0,
        },
        "synthetic_samples": {
            "description": "When root has no y_labels.csv, write this many random samples there",
            "type": int,
            "default": 0,
        },
        "synthetic_classes": {
            "description": "Number of classes of the synthetic labels",
            "type": int,
            "default": 2,
        },
        "synthetic_seed": {
            "description": "Seed of the synthetic samples",
            "type": int,
            "default": 0,
        },
        # The runner's folders are read as they are: no checksum file is written into them.
        "download_dataset": {"default": False},
    }

    def __init__(
        self,
        *args,
        input_shape: list[int],
        input_dtype: str = "int8",
        input_scale: float | None = None,
        input_zero_point: int = 0,
        synthetic_samples: int = 0,
        synthetic_classes: int = 2,
        synthetic_seed: int = 0,
        **kwargs,
    ):
        try:
            self.input_dtype = np.dtype(input_dtype)
        except TypeError:
            raise ConfigurationError(
                f"EEMBCDataset: input_dtype must be a numpy dtype name, got {input_dtype!r}"
            ) from None
        if not input_shape or any(int(d) < 1 for d in input_shape):
            raise ConfigurationError(
                f"EEMBCDataset: input_shape must be positive integers, got {input_shape!r}"
            )
        self.input_shape = [int(d) for d in input_shape]
        if input_scale is not None and not input_scale > 0:
            raise ConfigurationError(
                f"EEMBCDataset: input_scale must be positive, got {input_scale!r}"
            )
        self.input_scale = input_scale
        self.input_zero_point = input_zero_point
        self.synthetic_samples = synthetic_samples
        self.synthetic_classes = synthetic_classes
        self.synthetic_seed = synthetic_seed
        kwargs.setdefault("download_dataset", False)
        super().__init__(*args, **kwargs)

    def _write_synthetic(self) -> bool:
        """Whether synthetic samples are to be written: none there yet, or synthetic ones
        written with other parameters (real data is never touched)."""
        return _writes_synthetic(self.root, self._synthetic_parameters())

    def _synthetic_parameters(self) -> str:
        return synthetic_parameters(self.input_shape, self.input_dtype.name,
                                    self.synthetic_samples, self.synthetic_classes,
                                    self.synthetic_seed, self._known_zero_point())

    def _known_zero_point(self) -> int | None:
        """The input zero point when the samples are declared quantised (`input_scale`)."""
        return None if self.input_scale is None else int(self.input_zero_point)

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.input_shape)) * self.input_dtype.itemsize

    def prepare(self) -> None:
        if self.root is None:
            raise ConfigurationError("EEMBCDataset: 'root' (the dataset folder) is required")
        if self.synthetic_samples > 0 and self._write_synthetic():
            write_synthetic_eembc_dataset(
                self.root, self.input_shape, self.input_dtype.name, self.synthetic_samples,
                self.synthetic_classes, self.synthetic_seed, self._known_zero_point(),
            )
        rows = read_eembc_labels(self.root)
        self.labels_random = (self.root / SYNTHETIC_MARKER).is_file()
        self.num_classes = rows[0][1]
        self.dataX = [self.root / name for name, _, _ in rows]
        self.dataY = [label for _, _, label in rows]
        for path in self.dataX:
            if not path.is_file():
                raise ConfigurationError(
                    f"EEMBC dataset {self.root}: listed file {path.name} missing"
                )

    def get_class_names(self) -> list[str]:
        return [str(index) for index in range(self.num_classes)]

    @classmethod
    def declared_quality_metrics(cls, parameters) -> tuple[frozenset[str] | None, str]:
        """None of them when the samples are (or will be written) synthetic: a root holding
        SYNTHETIC.txt, or no y_labels.csv and `synthetic_samples` set."""
        root = parameters.get("root")
        if root is None:
            return None, ""
        root = Path(root).expanduser()
        synthetic = (root / SYNTHETIC_MARKER).is_file() or (
            not (root / LABELS_FILE_NAME).is_file()
            and int(parameters.get("synthetic_samples") or 0) > 0)
        if synthetic:
            return frozenset(), _synthetic_reason(root)
        return None, ""

    def no_quality_metrics_reason(self) -> str:
        return _synthetic_reason(self.root) if getattr(self, "labels_random", False) else ""

    @classmethod
    def declared_sample_count(cls, parameters) -> int | None:
        """`synthetic_samples` when they are (or will be) written, else the lines of the
        folder's y_labels.csv; None without a root or labels (building it says why)."""
        root = parameters.get("root")
        if root is None:
            return None
        root = Path(root).expanduser()
        labels = root / LABELS_FILE_NAME
        synthetic = parameters.get("synthetic_samples") or 0
        if not isinstance(synthetic, int) or synthetic < 0:
            return None
        if synthetic > 0 and (not labels.is_file() or (root / SYNTHETIC_MARKER).is_file()):
            return synthetic
        try:
            return sum(1 for line in labels.read_text().splitlines() if line.strip())
        except OSError:
            return None

    def compute_quality_metrics(self, measurements) -> dict:
        metrics = super().compute_quality_metrics(measurements)
        if getattr(self, "labels_random", False):
            # an accuracy against random labels would read as a (bad) result: count only
            return {key: value for key, value in metrics.items() if key == SAMPLES_TOTAL}
        return metrics

    def load_sample(self, path: Path) -> np.ndarray:
        """Reads one `.bin` tensor, checking its size against input_shape and input_dtype."""
        data = Path(path).read_bytes()
        if len(data) != self.sample_bytes:
            raise InputSizeError(
                f"{path}: {len(data)} bytes, expected {self.sample_bytes} "
                f"({'x'.join(map(str, self.input_shape))} {self.input_dtype.name})"
            )
        return np.frombuffer(data, dtype=self.input_dtype).reshape(self.input_shape)

    def prepare_input_samples(self, samples: list) -> list[np.ndarray]:
        if not samples:
            dtype = np.float32 if self.input_scale is not None else self.input_dtype
            return [np.zeros((0, *self.input_shape[1:]), dtype=dtype)]
        # A file holds one sample; a leading batch dimension of 1 in input_shape is dropped
        # so that samples stack along the batch axis.
        shape = self.input_shape[1:] if self.input_shape[0] == 1 else self.input_shape
        batch = np.stack([self.load_sample(path).reshape(shape) for path in samples])
        if self.input_scale is not None:
            from kenning_hil.core.iospec import dequantize

            batch = dequantize(batch, self.input_scale, self.input_zero_point)
        return [batch]

    def prepare_output_samples(self, samples: list) -> list[np.ndarray]:
        return [np.asarray(samples, dtype=np.int64).reshape(-1)]

"""FilesProvider: samples from a file or a folder of files, one per flow step.

Formats, by suffix: ``.npy`` (a NumPy array), ``.bin`` (a raw tensor, as EEMBC's runner for
MLPerf Tiny stores them: row-major, no header, its dtype and shape given as parameters),
``.png`` / ``.jpg`` / ``.jpeg`` (an image, read with Pillow: grayscale or RGB, optionally
resized, pixel values 0..255 times `scale`). Each sample gets a batch axis of 1.

Labels: ``parent`` takes the class id from the name of the file's folder (``3/img.png`` is a
3), ``eembc`` from the folder's ``y_labels.csv`` (lines ``file,num_classes,class``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.dataprovider import DataProvider, Sample
from kenning_hil.core.errors import ConfigurationError, InputSizeError, import_optional, os_reason
from kenning_hil.dataproviders.common import sample_dtype, tensors_spec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SUFFIXES = (".npy", ".bin", *IMAGE_SUFFIXES)
LABEL_SOURCES = ("none", "parent", "eembc")
EEMBC_LABELS = "y_labels.csv"


class FilesProvider(DataProvider):
    """Feeds a flow from files: `path` is one file or a folder (searched recursively)."""

    arguments_structure = {
        "path": {"description": "A sample file or a folder of them", "type": Path,
                 "required": True},
        "pattern": {"description": "File name pattern in the folder", "type": str,
                    "default": "*"},
        "dtype": {"description": "Element type the samples are delivered in (and of .bin "
                  "files)", "type": str, "default": "float32"},
        "shape": {"description": "Shape of one sample without the batch axis (needed for "
                  ".bin files; reshapes the others)", "type": int, "is_list": True,
                  "nullable": True, "default": None},
        "scale": {"description": "Factor applied to image pixel values (0..255)",
                  "type": float, "default": 1.0},
        "color": {"description": "Image mode: L (grayscale) or RGB", "type": str,
                  "enum": ["L", "RGB"], "default": "L"},
        "size": {"description": "Resize images to [width, height]", "type": int,
                 "is_list": True, "nullable": True, "default": None},
        "labels": {"description": "Where labels come from: none, parent (the folder's name "
                   "is the class id) or eembc (the folder's y_labels.csv)", "type": str,
                   "enum": list(LABEL_SOURCES), "default": "none"},
        "loop": {"description": "Start again from the first file after the last",
                 "type": bool, "default": False},
    }

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        path: Path | None = None,
        pattern: str = "*",
        dtype: str = "float32",
        shape: list[int] | None = None,
        scale: float = 1.0,
        color: str = "L",
        size: list[int] | None = None,
        labels: str = "none",
        loop: bool = False,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.dtype = sample_dtype(dtype)
        if size is not None and len(size) != 2:
            raise ConfigurationError(f"parameter 'size' must be [width, height], got {size}")
        self.shape = tuple(shape) if shape is not None else None
        self.scale, self.color, self.size = scale, color, size
        self.labels, self.loop = labels, loop
        self.files = self._find(Path(path), pattern)
        if any(f.suffix.lower() == ".bin" for f in self.files) and self.shape is None:
            raise ConfigurationError("parameter 'shape' is needed to read .bin files")
        self._eembc: dict[Path, dict[str, int]] = {}
        first = self.load(self.files[0])
        self._spec = tensors_spec([first])
        self._samples: Iterator[Sample] | None = None

    @staticmethod
    def _find(path: Path, pattern: str) -> list[Path]:
        if path.is_file():
            files = [path]
        elif path.is_dir():
            files = sorted(p for p in path.rglob(pattern)
                           if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            raise ConfigurationError(f"parameter 'path': {path} does not exist")
        if not files:
            raise ConfigurationError(
                f"parameter 'path': no {', '.join(SUFFIXES)} files matching '{pattern}' in {path}")
        for file in files:
            if file.suffix.lower() not in SUFFIXES:
                raise ConfigurationError(
                    f"parameter 'path': {file} is not a sample file ({', '.join(SUFFIXES)})")
        return files

    def get_io_specification(self) -> dict:
        return {"input": {}, "output": {"data": [self._spec[0]], "label": None}}

    # --- reading ------------------------------------------------------------------------------

    def load(self, file: Path) -> np.ndarray:
        """One sample with a batch axis of 1, in `dtype`."""
        suffix = file.suffix.lower()
        try:
            if suffix == ".npy":
                array = np.load(file, allow_pickle=False)
            elif suffix == ".bin":
                data = file.read_bytes()
                expected = int(np.prod(self.shape)) * self.dtype.itemsize
                if len(data) != expected:
                    raise InputSizeError(
                        f"{file}: {len(data)} bytes, a {'x'.join(map(str, self.shape))} "
                        f"{self.dtype.name} sample has {expected}")
                array = np.frombuffer(data, dtype=self.dtype)
            else:
                array = self._image(file)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {file}: {os_reason(exc)}") from None
        except ValueError as exc:
            raise ConfigurationError(f"cannot read {file}: {exc}") from None
        array = array.astype(self.dtype, copy=False)
        if self.shape is not None:
            if array.size != int(np.prod(self.shape)):
                raise ConfigurationError(
                    f"{file}: {array.size} values do not make a sample of shape "
                    f"{list(self.shape)}")
            return array.reshape((1, *self.shape))
        return array.reshape((1, *array.shape))

    def _image(self, file: Path) -> np.ndarray:
        image_module = import_optional("PIL.Image", "images", "reading image samples")
        with image_module.open(file) as image:
            image = image.convert(self.color)
            if self.size is not None:
                image = image.resize(tuple(self.size))
            pixels = np.asarray(image, dtype=np.float32)
        return pixels * np.float32(self.scale)

    def label(self, file: Path) -> int | None:
        if self.labels == "parent":
            try:
                return int(file.parent.name)
            except ValueError:
                raise ConfigurationError(
                    f"{file}: labels 'parent' needs class-id folder names, got "
                    f"'{file.parent.name}'") from None
        if self.labels == "eembc":
            table = self._eembc.get(file.parent)
            if table is None:
                table = self._eembc[file.parent] = _read_eembc_labels(file.parent / EEMBC_LABELS)
            if file.name not in table:
                raise ConfigurationError(f"{file}: not listed in {file.parent / EEMBC_LABELS}")
            return table[file.name]
        return None

    # --- providing ----------------------------------------------------------------------------

    def prepare(self) -> None:
        self._samples = self._generate()

    def _generate(self) -> Iterator[Sample]:
        while True:
            for file in self.files:
                label = self.label(file)
                yield Sample([self.load(file)],
                             None if label is None else np.array([label], dtype=np.int64))
            if not self.loop:
                return

    def fetch_input(self) -> Any:
        if self._samples is None:
            self.prepare()
        return next(self._samples)

    def detach_from_source(self) -> None:
        self._samples = None


def _read_eembc_labels(path: Path) -> dict[str, int]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.reader(handle) if r]
    except OSError as exc:
        raise ConfigurationError(f"labels 'eembc': cannot read {path}: {os_reason(exc)}") from None
    table = {}
    for number, row in enumerate(rows, 1):
        try:
            table[row[0].strip()] = int(row[2])
        except (IndexError, ValueError):
            raise ConfigurationError(
                f"{path}:{number}: expected 'file,num_classes,class', got {','.join(row)!r}"
            ) from None
    return table

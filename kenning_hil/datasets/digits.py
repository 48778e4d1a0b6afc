"""Handwritten digits (8×8, 1797 samples, 10 classes): scikit-learn's bundled copy of the UCI
optical digits test set, the one real labelled dataset available offline.

Inputs are pixel intensities 0..16 scaled to [0, 1] as float32, shaped [N, 64] ("flat") or
[N, 8, 8, 1] ("nhwc"); labels are class ids 0..9.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from kenning_hil.datasets.classification import ClassificationDataset

DIGITS_FILE_NAME = "digits.npz"
PIXEL_MAX = 16.0
LAYOUTS = ("flat", "nhwc")


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Returns (pixels uint8 [1797, 64], labels int64 [1797]).

    Reads scikit-learn's bundled CSV without importing scikit-learn (its import alone costs a
    second); falls back to `sklearn.datasets.load_digits` if the file layout ever changes.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
            return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # a base dependency of kenning-hil

    bunch = load_digits()
    return bunch.data.astype(np.uint8), bunch.target.astype(np.int64)


class DigitsDataset(ClassificationDataset):
    """scikit-learn's 8×8 handwritten digits, evaluated on a held-out stratified split."""

    arguments_structure = {
        "image_layout": {
            "description": "Input tensor layout: flat [N, 64] or nhwc [N, 8, 8, 1]",
            "type": str,
            "enum": list(LAYOUTS),
            "default": "flat",
        },
    }

    def __init__(self, *args, image_layout: str = "flat", **kwargs):
        self.image_layout = image_layout
        super().__init__(*args, **kwargs)

    def download_dataset_fun(self) -> None:
        """Stores the digits in `root` so that checksums and offline copies work as for any
        downloaded dataset."""
        pixels, labels = load_digits_arrays()
        np.savez(self.root / DIGITS_FILE_NAME, pixels=pixels, labels=labels)

    def prepare(self) -> None:
        stored = self.root / DIGITS_FILE_NAME if self.root is not None else None
        if stored is not None and stored.is_file():
            with np.load(stored) as archive:
                pixels, labels = archive["pixels"], archive["labels"]
        else:
            pixels, labels = load_digits_arrays()
        self._pixels = pixels
        # representations are row indices: a chunk is then one fancy-indexing copy
        self.dataX = list(range(len(pixels)))
        self.dataY = [int(label) for label in labels]

    def get_class_names(self) -> list[str]:
        return [str(digit) for digit in range(10)]

    def prepare_input_samples(self, samples: list) -> list[np.ndarray]:
        """Sample indices (or .npy files of 64 pixels, e.g. external calibration samples) ->
        [float32 batch of pixels / 16]."""
        if not samples or isinstance(samples[0], (int, np.integer)):
            rows = self._pixels[np.asarray(samples, dtype=np.int64).reshape(-1)]
        else:
            rows = np.stack(
                [np.load(s) if isinstance(s, (str, Path)) else self._pixels[s] for s in samples]
            )
        # x * (1/16) equals x / 16 exactly (power of two), and is cheaper
        batch = rows.reshape(len(samples), 64).astype(np.float32)
        batch *= np.float32(1.0 / PIXEL_MAX)
        if self.image_layout == "nhwc":
            batch = batch.reshape(-1, 8, 8, 1)
        return [batch]

    def prepare_output_samples(self, samples: list) -> list[np.ndarray]:
        return [np.asarray(samples, dtype=np.int64).reshape(-1)]

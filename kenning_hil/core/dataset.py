"""Dataset: samples and labels for evaluation, calibration and training (Kenning's Dataset API).

A dataset keeps *representations* of all its samples in `dataX` (inputs) and `dataY` (labels):
whatever is cheap to hold (file paths, raw arrays, indices). `prepare_input_samples` and
`prepare_output_samples` turn a slice of representations into model-ready batches: a list with
one array per model input (or output), batch dimension first.

Deviation from the seed, documented: the `subset` parameter selects which part of a seeded,
stratified train/test split the dataset iterates over, evaluates on and returns from
`get_data` ("test" by default, "train", or "all"), so evaluation never runs on training samples
by accident.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import abstractmethod
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.args import ArgumentsHandler
from kenning_hil.core.errors import ConfigurationError

CHECKSUM_FILE_NAME = "DATASET_CHECKSUM"
SUBSETS = ("test", "train", "all")
CHUNK_BYTES = 16 << 20
"""Prepared input bytes held at once by `iter_chunks` (bounded memory for large samples)."""
MAX_CHUNK_SAMPLES = 4096


class Dataset(ArgumentsHandler):
    """Wraps a dataset for evaluation, calibration and training."""

    arguments_structure = {
        "root": {
            "description": "Directory with the dataset files (downloaded there when needed)",
            "type": Path,
            "nullable": True,
            "default": None,
        },
        "batch_size": {"description": "Samples per inference batch", "type": int, "default": 1},
        "download_dataset": {
            "description": "Download the dataset into root when its checksum does not match",
            "type": bool,
            "default": True,
        },
        "force_download_dataset": {
            "description": "Download the dataset even when its checksum matches",
            "type": bool,
            "default": False,
        },
        "external_calibration_dataset": {
            "description": "Directory with samples used for calibration instead of the train split",
            "type": Path,
            "nullable": True,
            "default": None,
        },
        "split_fraction_test": {
            "description": "Fraction of samples held out for testing",
            "type": float,
            "default": 0.2,
        },
        "split_fraction_val": {
            "description": "Fraction of samples held out for validation (none when unset)",
            "type": float,
            "nullable": True,
            "default": None,
        },
        "split_seed": {"description": "Seed of the train/test split", "type": int, "default": 1234},
        "subset": {
            "description": "Part of the split to iterate over and evaluate on",
            "type": str,
            "enum": list(SUBSETS),
            "default": "test",
        },
    }

    def __init__(
        self,
        root: Path | None = None,
        batch_size: int = 1,
        download_dataset: bool = True,
        force_download_dataset: bool = False,
        external_calibration_dataset: Path | None = None,
        split_fraction_test: float = 0.2,
        split_fraction_val: float | None = None,
        split_seed: int = 1234,
        subset: str = "test",
    ):
        if subset not in SUBSETS:
            raise ConfigurationError(
                f"{type(self).__name__}: subset must be one of {', '.join(SUBSETS)}, got {subset!r}"
            )
        self.root = Path(root) if root is not None else None
        self.set_batch_size(batch_size)
        self.download_dataset = download_dataset
        self.force_download_dataset = force_download_dataset
        self.external_calibration_dataset = (
            Path(external_calibration_dataset) if external_calibration_dataset else None
        )
        self.split_fraction_test = split_fraction_test
        self.split_fraction_val = split_fraction_val
        self.split_seed = split_seed
        self.subset = subset
        self.dataX: list[Any] = []
        self.dataY: list[Any] = []
        self._sample_limit: int | None = None
        self._dataindex = 0

        # only a dataset that downloads writes into root (its files and their checksum): a
        # user's own data folder is read, never written (download_dataset defaults to true)
        if self.root is not None and self.fetches_data() and (
            force_download_dataset or (download_dataset and not self.verify_dataset_checksum())
        ):
            self.root.mkdir(parents=True, exist_ok=True)
            self.download_dataset_fun()
            self.save_dataset_checksum()
        self.prepare()
        self._select_subset()

    # --- preparation -----------------------------------------------------------------------

    @abstractmethod
    def prepare(self) -> None:
        """Fills `dataX` and `dataY` with the representations of all samples."""

    def download_dataset_fun(self) -> None:
        """Downloads the dataset into `root`; datasets without files do nothing."""

    @classmethod
    def fetches_data(cls) -> bool:
        """Whether the class fetches its data (overrides `download_dataset_fun`)."""
        return cls.download_dataset_fun is not Dataset.download_dataset_fun

    def _select_subset(self) -> None:
        if self.subset == "all":
            self._subsetX, self._subsetY = list(self.dataX), list(self.dataY)
        else:
            split = self.train_test_split_representations()
            if self.subset == "train":
                self._subsetX, self._subsetY = split[0], split[2]
            else:
                self._subsetX, self._subsetY = split[1], split[3]

    def set_batch_size(self, batch_size: int) -> None:
        """Sets the number of samples in each batch the iterator yields."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigurationError(
                f"{type(self).__name__}: batch_size must be a positive integer, got {batch_size!r}"
            )
        self.batch_size = batch_size

    def set_sample_limit(self, limit: int | None) -> None:
        """Limits the iterated subset to its first `limit` samples (None: no limit)."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ConfigurationError(
                f"{type(self).__name__}: sample limit must be a positive integer, got {limit!r}"
            )
        self._sample_limit = limit

    # --- samples ---------------------------------------------------------------------------

    def prepare_input_samples(self, samples: list) -> list:
        """Turns input representations into model inputs; by default returns them as is."""
        return samples

    def prepare_output_samples(self, samples: list) -> list:
        """Turns label representations into expected outputs; by default returns them as is."""
        return samples

    def get_data_unloaded(self) -> tuple[list, list]:
        """Returns the input and label representations of the selected subset."""
        limit = self._sample_limit
        return list(self._subsetX[:limit]), list(self._subsetY[:limit])

    def get_data(self) -> tuple[list, list]:
        """Returns all prepared inputs and outputs of the selected subset (loads all of it)."""
        xs, ys = self.get_data_unloaded()
        return self.prepare_input_samples(xs), self.prepare_output_samples(ys)

    def get_class_names(self) -> list[str]:
        """Returns the class names in the order of their ids (empty if not a classifier)."""
        return []

    def __len__(self) -> int:
        return len(self.get_data_unloaded()[0])

    def __iter__(self) -> Iterator[tuple[list, list]]:
        xs, ys = self.get_data_unloaded()
        for start in range(0, len(xs), self.batch_size):
            end = start + self.batch_size
            yield (
                self.prepare_input_samples(xs[start:end]),
                self.prepare_output_samples(ys[start:end]),
            )

    def iter_chunks(
        self, chunk_size: int | None = None, max_chunk_bytes: int = CHUNK_BYTES
    ) -> Iterator[tuple[list, list]]:
        """Yields the subset prepared in chunks: (inputs, outputs) as `__iter__` does, but many
        samples per chunk, a multiple of `batch_size`.

        Lets a runner prepare many samples in one vectorised call and cut batches from them,
        instead of paying Python overhead per batch. Without `chunk_size`, chunks hold as many
        samples as fit in `max_chunk_bytes` of prepared inputs (measured on one sample).
        """
        xs, ys = self.get_data_unloaded()
        size = chunk_size
        if size is None and xs:
            # size chunks from one prepared sample's bytes
            probe = self.prepare_input_samples(xs[:1])
            per_sample = max(1, sum(getattr(a, "nbytes", 0) for a in probe))
            batches = max_chunk_bytes // per_sample // self.batch_size
            batches = min(batches, MAX_CHUNK_SAMPLES // self.batch_size)
            size = max(1, batches) * self.batch_size
        for start in range(0, len(xs), size or 1):
            end = start + size
            yield self.prepare_input_samples(xs[start:end]), self.prepare_output_samples(
                ys[start:end]
            )

    # --- evaluation ------------------------------------------------------------------------

    @abstractmethod
    def evaluate(self, predictions: list, truth: list):
        """Compares a batch of predictions with the truth; returns accumulable Measurements.

        `merge_evaluation` combines the results of several batches; `compute_quality_metrics`
        turns the merged values into the final metrics.
        """

    def merge_evaluation(self, total, part) -> None:
        """Merges one batch's `evaluate` result into `total` (both Measurements).

        By default lists are appended and other values replaced (`update_measurements`);
        datasets that accumulate counts override this.
        """
        total.update_measurements(part)

    def compute_quality_metrics(self, measurements) -> dict[str, Any]:
        """Derives final quality metrics (e.g. accuracy) from merged `evaluate` results."""
        return {}

    @classmethod
    def declared_quality_metrics(
        cls, parameters: Mapping[str, Any]
    ) -> tuple[frozenset[str] | None, str]:
        """The quality metrics a dataset of these (scenario) parameters can report, known
        without building or running it, and why that is all: ``(names, reason)``; names None
        when only a run tells. Lets a threshold on a metric the dataset cannot produce be an
        error before anything runs."""
        return None, ""

    def no_quality_metrics_reason(self) -> str:
        """Why this dataset reports no quality metrics ("" when it reports some)."""
        return ""

    # --- what a run takes --------------------------------------------------------------------

    @classmethod
    def declared_sample_count(cls, parameters: Mapping[str, Any]) -> int | None:
        """How many samples a dataset of these (scenario) parameters holds before its split,
        known without building it (None when only building it tells)."""
        return None

    @classmethod
    def declared_empty_reason(cls, parameters: Mapping[str, Any]) -> str:
        """Why a dataset of these parameters would give a run no sample (its size and split,
        known without building it: `declared_sample_count`), "" when it gives some or only
        building it tells. Lets a suite's empty run be a collection error."""
        count = cls.declared_sample_count(parameters)
        if count is None:
            return ""
        from kenning_hil.core.args import get_arguments_structure

        structure = get_arguments_structure(cls)

        def given(name: str) -> Any:
            value = parameters.get(name)
            return structure.get(name, {}).get("default") if value is None else value

        subset, test_fraction = given("subset"), given("split_fraction_test")
        val_fraction = given("split_fraction_val")
        numbers = isinstance(test_fraction, (int, float)) and isinstance(
            val_fraction, (int, float, type(None)))
        if subset not in SUBSETS or not numbers or not 0.0 < test_fraction < 1.0:
            return ""  # the parameters' own checks say what is wrong
        if subset == "all":
            selected = count
        else:
            train, test, _ = split_sizes(count, test_fraction, val_fraction or None)
            selected = test if subset == "test" else train
        if selected:
            return ""
        return empty_reason(cls.__name__, parameters.get("root"), count, subset,
                            test_fraction)

    def check_not_empty(self) -> None:
        """Raises ConfigurationError when the run would take no sample (an empty dataset or
        split): a run that measured nothing must never pass, and nothing is touched yet."""
        if len(self) == 0:
            raise ConfigurationError(empty_reason(
                type(self).__name__, self.root, len(self.dataX), self.subset,
                self.split_fraction_test))

    # --- splits ----------------------------------------------------------------------------

    def _stratification_keys(self) -> list | None:
        """One hashable class key per sample, or None when the labels are not classes."""
        keys = []
        for label in self.dataY:
            if isinstance(label, (int, np.integer, str)):
                keys.append(label)
                continue
            array = np.asarray(label)
            if array.size == 1:
                keys.append(array.item())
            elif array.ndim == 1:  # one-hot or score vector
                keys.append(int(np.argmax(array)))
            else:
                return None
        return keys

    def train_test_split_representations(
        self,
        test_fraction: float | None = None,
        val_fraction: float | None = None,
        seed: int | None = None,
        stratify: bool = True,
    ) -> tuple[list, ...]:
        """Splits the representations into (trainX, testX, trainY, testY[, valX, valY]).

        Seeded and, when labels are classes, stratified: every class keeps its proportion in
        each part. The parts' sizes follow `split_sizes` (the count and fractions alone, not
        the labels); each class gets its share rounded, the rounding settled by the largest
        remainders. The same arguments always give the same split.
        """
        test_fraction = self.split_fraction_test if test_fraction is None else test_fraction
        val_fraction = self.split_fraction_val if val_fraction is None else val_fraction
        seed = self.split_seed if seed is None else seed
        if not 0.0 < test_fraction < 1.0:
            raise ConfigurationError(
                f"{type(self).__name__}: test fraction must be in (0, 1), got {test_fraction}"
            )
        if val_fraction is not None and not (
            0.0 < val_fraction and test_fraction + val_fraction < 1.0
        ):
            raise ConfigurationError(
                f"{type(self).__name__}: validation fraction must be > 0 with test + validation"
                f" < 1, got test {test_fraction}, validation {val_fraction}"
            )
        rng = np.random.default_rng(seed)
        count = len(self.dataX)
        keys = self._stratification_keys() if stratify else None
        if keys is None:
            groups = [np.arange(count)]
        else:
            by_key: dict[Any, list[int]] = {}
            for index, key in enumerate(keys):
                by_key.setdefault(key, []).append(index)
            groups = [np.array(by_key[key]) for key in sorted(by_key, key=repr)]
        _, n_test, n_val = split_sizes(count, test_fraction, val_fraction)
        sizes = [len(group) for group in groups]
        # ties between classes are broken by the seed, apart from the permutations' stream
        ties = np.random.default_rng([seed, 1]).permutation(len(groups)).tolist()
        tests = _apportion([n * test_fraction for n in sizes], sizes, n_test, ties)
        vals = _apportion([n * (val_fraction or 0.0) for n in sizes],
                          [n - t for n, t in zip(sizes, tests)], n_val, ties)
        train, test, val = [], [], []
        for group, g_test, g_val in zip(groups, tests, vals):
            group = rng.permutation(group)
            test.extend(group[:g_test])
            val.extend(group[g_test : g_test + g_val])
            train.extend(group[g_test + g_val :])
        # shuffle across classes so that any prefix of a part is a fair sample of it
        parts = [rng.permutation(np.array(part, dtype=np.int64)) for part in (train, test, val)]

        def pick(indices: np.ndarray, data: list) -> list:
            return [data[i] for i in indices]

        result = (
            pick(parts[0], self.dataX),
            pick(parts[1], self.dataX),
            pick(parts[0], self.dataY),
            pick(parts[1], self.dataY),
        )
        if val_fraction:
            result += (pick(parts[2], self.dataX), pick(parts[2], self.dataY))
        return result

    # --- statistics and calibration -----------------------------------------------------------

    def get_input_mean_std(self) -> tuple[Any, Any]:
        """Returns (mean, std) of the first model input over the train split.

        Both are arrays over the last axis (channels or features), computed on prepared inputs.
        """
        return self.compute_input_mean_std()

    def compute_input_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        if self.subset == "all":
            xs = self.dataX
        else:
            xs = self.train_test_split_representations()[0]
        if not xs:
            raise ConfigurationError(f"{type(self).__name__}: no samples to compute mean and std")
        total = total_sq = None
        count = 0
        for start in range(0, len(xs), 1024):
            first = np.asarray(self.prepare_input_samples(xs[start : start + 1024])[0])
            flat = first.reshape(-1, first.shape[-1]).astype(np.float64)
            total = flat.sum(axis=0) if total is None else total + flat.sum(axis=0)
            sq = (flat * flat).sum(axis=0)
            total_sq = sq if total_sq is None else total_sq + sq
            count += flat.shape[0]
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
        return mean, std

    def prepare_external_calibration_dataset(
        self, percentage: float = 0.25, seed: int = 12345
    ) -> list[Path]:
        """Returns a seeded random `percentage` of the files in `external_calibration_dataset`."""
        directory = self.external_calibration_dataset
        if directory is None or not directory.is_dir():
            raise ConfigurationError(
                f"{type(self).__name__}: external calibration dataset {directory} "
                "is not a directory"
            )
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        if not files:
            raise ConfigurationError(
                f"{type(self).__name__}: external calibration dataset {directory} has no files"
            )
        count = max(1, int(round(len(files) * percentage)))
        rng = np.random.default_rng(seed)
        return [files[i] for i in sorted(rng.choice(len(files), size=count, replace=False))]

    def calibration_dataset_generator(
        self, percentage: float = 0.25, seed: int = 12345
    ) -> Generator[list[Any], None, None]:
        """Yields prepared single-sample inputs for quantisation calibration.

        Samples come from the train split (never the held-out test samples), a seeded,
        stratified `percentage` of it; or from `external_calibration_dataset` when set.
        """
        if not 0.0 < percentage <= 1.0:
            raise ConfigurationError(
                f"{type(self).__name__}: calibration percentage must be in (0, 1], got {percentage}"
            )
        if self.external_calibration_dataset is not None:
            samples = self.prepare_external_calibration_dataset(percentage, seed)
        else:
            train = self.train_test_split_representations()[0]
            samples = train
            if percentage < 1.0:
                rng = np.random.default_rng(seed)
                count = max(1, int(round(len(train) * percentage)))
                samples = [train[i] for i in sorted(rng.choice(len(train), count, replace=False))]
        for sample in samples:
            yield self.prepare_input_samples([sample])

    # --- checksums -------------------------------------------------------------------------

    def compute_dataset_checksum(self) -> str:
        """SHA-256 over the relative paths and contents of every file under `root`."""
        if self.root is None:
            raise ConfigurationError(f"{type(self).__name__}: dataset has no root directory")
        digest = hashlib.sha256()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            if path.name == CHECKSUM_FILE_NAME:
                continue
            digest.update(path.relative_to(self.root).as_posix().encode())
            digest.update(b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def save_dataset_checksum(self) -> None:
        """Writes the checksum of the files under `root` to `root/DATASET_CHECKSUM`."""
        checksum = self.compute_dataset_checksum()
        record = {"timestamp": time.time(), "checksum": checksum}
        (self.root / CHECKSUM_FILE_NAME).write_text(json.dumps(record) + "\n")

    def verify_dataset_checksum(self) -> bool:
        """True when `root` holds files whose checksum matches the saved one."""
        if self.root is None:
            return False
        path = self.root / CHECKSUM_FILE_NAME
        if not path.is_file():
            return False
        try:
            saved = json.loads(path.read_text())["checksum"]
        except (ValueError, KeyError, TypeError):
            return False
        return saved == self.compute_dataset_checksum()


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def split_sizes(count: int, test_fraction: float,
                val_fraction: float | None = None) -> tuple[int, int, int]:
    """(train, test, validation) sizes of a split of `count` samples: the test part is
    round(count x test_fraction) (halves up), the validation part round(count x
    val_fraction); with two samples or more the test and train parts hold at least one each
    (with three or more, a validation part asked for holds at least one too). They depend
    on the count and fractions alone: 4 samples at 0.2 -> 3 train, 1 test, whatever their
    labels (a per-class rounding gave 0 when no class had 3 samples)."""
    n_test = min(_round_half_up(count * test_fraction), count)
    if count >= 2:
        n_test = min(max(n_test, 1), count - 1)
    n_val = 0
    if val_fraction:
        room = count - n_test - (1 if count >= 2 else 0)  # the train part keeps one
        n_val = min(max(_round_half_up(count * val_fraction), 1 if count >= 3 else 0), room)
        n_val = max(n_val, 0)
    return count - n_test - n_val, n_test, n_val


def _apportion(quotas: list[float], room: list[int], total: int, ties: list[int]) -> list[int]:
    """Whole counts near `quotas` (each within its `room`) summing to `total`: quotas rounded
    down, then one more to the largest remainders (equal ones in the order of `ties`), or one
    less from the smallest when the floors overshoot. Per-class rounding alone missed the
    total (and gave an empty test split for small datasets)."""
    counts = [min(int(np.floor(q)), r) for q, r in zip(quotas, room)]
    order = sorted(range(len(quotas)),
                   key=lambda i: (-(quotas[i] - np.floor(quotas[i])), ties[i]))
    total = min(total, sum(room))
    while sum(counts) < total:
        for i in order:
            if sum(counts) < total and counts[i] < room[i]:
                counts[i] += 1
    while sum(counts) > total:
        for i in reversed(order):
            if sum(counts) > total and counts[i] > 0:
                counts[i] -= 1
    return counts


def empty_reason(name: str, root: Any, count: int, subset: str, test_fraction: float) -> str:
    """One line on a dataset that gives a run no sample: which dataset, its size, its split
    and what to change."""
    where = f"{name} (root {root})" if root is not None else name
    if count == 0 or subset == "all":
        return (f"dataset {where} holds no samples: a run would measure nothing (give it "
                f"samples)")
    train, test, _ = split_sizes(count, test_fraction)
    return (f"dataset {where} holds {count} sample{'s' if count != 1 else ''} and its "
            f"{subset} split (split_fraction_test {test_fraction}: {test} test, {train} "
            f"train) holds none: a run would measure nothing (give it more samples, or "
            f"subset: all)")

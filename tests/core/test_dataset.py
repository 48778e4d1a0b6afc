"""Dataset base class: batching, subsets, seeded stratified splits, chunks, statistics,
calibration samples, checksums and construction from JSON/argparse."""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import pytest

from kenning_hil.core.dataset import CHECKSUM_FILE_NAME, Dataset, split_sizes
from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.measurements import Measurements


class LabelledArrays(Dataset):
    """A small real labelled dataset: sample i is the vector [i, i, i] (float32), label i % 3.

    With a root, 'downloading' writes the arrays to root/data.npy (counted)."""

    downloads = 0

    def __init__(self, *args, count: int = 30, **kwargs):
        self.count = count
        super().__init__(*args, **kwargs)

    def download_dataset_fun(self) -> None:
        type(self).downloads += 1
        np.save(self.root / "data.npy", np.arange(self.count))

    def prepare(self) -> None:
        self.dataX = list(range(self.count))
        self.dataY = [i % 3 for i in range(self.count)]

    def prepare_input_samples(self, samples):
        return [np.repeat(np.asarray(samples, dtype=np.float32)[:, None], 3, axis=1)]

    def prepare_output_samples(self, samples):
        return [np.asarray(samples, dtype=np.int64)]

    def evaluate(self, predictions, truth):
        measurements = Measurements()
        measurements.add_measurements_list("seen", list(truth[0]))
        return measurements


def test_iteration_yields_batches_of_batch_size():
    dataset = LabelledArrays(count=10, subset="all", batch_size=4)
    batches = list(dataset)
    assert [len(x[0]) for x, _ in batches] == [4, 4, 2]
    assert np.concatenate([x[0] for x, _ in batches])[:, 0].tolist() == list(range(10))
    assert np.concatenate([y[0] for _, y in batches]).tolist() == [i % 3 for i in range(10)]
    dataset.set_batch_size(3)
    assert [len(x[0]) for x, _ in dataset] == [3, 3, 3, 1]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_set_batch_size_rejects_non_positive_integers(bad):
    with pytest.raises(ConfigurationError, match="batch_size must be a positive integer"):
        LabelledArrays(batch_size=bad)


def test_subsets_partition_the_data():
    test = LabelledArrays(count=30)  # default subset: test
    train = LabelledArrays(count=30, subset="train")
    everything = LabelledArrays(count=30, subset="all")
    test_ids = set(test.get_data_unloaded()[0])
    train_ids = set(train.get_data_unloaded()[0])
    assert len(test) == 6 and len(train) == 24 and len(everything) == 30
    assert not test_ids & train_ids
    assert test_ids | train_ids == set(range(30))


def test_unknown_subset_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="subset must be one of"):
        LabelledArrays(subset="validation")


def test_split_is_seeded_and_stratified():
    dataset = LabelledArrays(count=300, subset="all")
    first = dataset.train_test_split_representations(test_fraction=0.2, seed=7)
    again = dataset.train_test_split_representations(test_fraction=0.2, seed=7)
    other = dataset.train_test_split_representations(test_fraction=0.2, seed=8)
    assert first == again
    assert first[1] != other[1]
    train_x, test_x, train_y, test_y = first
    assert len(test_x) == 60 and len(train_x) == 240
    assert Counter(test_y) == {0: 20, 1: 20, 2: 20}
    # labels travel with their samples
    assert all(x % 3 == y for x, y in zip(test_x + train_x, test_y + train_y))
    # parts are shuffled across classes, so a prefix is a fair sample
    assert len(set(test_y[:6])) > 1


def test_split_defaults_come_from_constructor_parameters():
    dataset = LabelledArrays(count=100, split_fraction_test=0.3, split_seed=99, subset="all")
    assert dataset.train_test_split_representations() == dataset.train_test_split_representations(
        test_fraction=0.3, seed=99
    )
    test = LabelledArrays(count=100, split_fraction_test=0.3, split_seed=99)
    assert test.get_data_unloaded()[0] == dataset.train_test_split_representations()[1]


def test_split_with_validation_part():
    dataset = LabelledArrays(count=90, subset="all")
    parts = dataset.train_test_split_representations(test_fraction=0.2, val_fraction=0.1)
    assert len(parts) == 6
    train_x, test_x, _, _, val_x, val_y = parts
    assert (len(train_x), len(test_x), len(val_x)) == (63, 18, 9)
    assert not set(train_x) & set(test_x) and not set(val_x) & (set(train_x) | set(test_x))
    assert Counter(val_y) == {0: 3, 1: 3, 2: 3}


@pytest.mark.parametrize("test_fraction,val_fraction", [(0.0, None), (1.0, None), (0.6, 0.5)])
def test_split_rejects_bad_fractions(test_fraction, val_fraction):
    dataset = LabelledArrays(subset="all")
    with pytest.raises(ConfigurationError, match="fraction"):
        dataset.train_test_split_representations(test_fraction, val_fraction)


def test_split_without_class_labels_still_splits():
    dataset = LabelledArrays(count=20, subset="all")
    dataset.dataY = [np.zeros((2, 2)) for _ in range(20)]  # not class labels
    train_x, test_x, _, _ = dataset.train_test_split_representations(test_fraction=0.25)
    assert len(test_x) == 5 and sorted(train_x + test_x) == list(range(20))


def test_one_hot_labels_are_stratified_by_class():
    dataset = LabelledArrays(count=60, subset="all")
    dataset.dataY = [np.eye(3)[i % 3] for i in range(60)]
    _, _, _, test_y = dataset.train_test_split_representations(test_fraction=0.5)
    assert Counter(int(np.argmax(y)) for y in test_y) == {0: 10, 1: 10, 2: 10}


def test_get_data_prepares_the_selected_subset():
    dataset = LabelledArrays(count=30)
    xs, ys = dataset.get_data_unloaded()
    (inputs,), (labels,) = dataset.get_data()
    assert inputs.shape == (6, 3) and inputs[:, 0].tolist() == xs
    assert labels.tolist() == ys


def test_sample_limit_truncates_the_subset():
    dataset = LabelledArrays(count=30, subset="all")
    dataset.set_sample_limit(7)
    assert len(dataset) == 7 and len(list(dataset)) == 7
    dataset.set_sample_limit(None)
    assert len(dataset) == 30
    with pytest.raises(ConfigurationError, match="sample limit"):
        dataset.set_sample_limit(0)


def test_iter_chunks_covers_the_subset_in_multiples_of_the_batch_size():
    dataset = LabelledArrays(count=1000, subset="all", batch_size=3)
    chunks = list(dataset.iter_chunks())
    assert all(len(x[0]) % 3 == 0 for x, _ in chunks[:-1])
    joined = np.concatenate([x[0] for x, _ in chunks])
    assert joined[:, 0].tolist() == list(range(1000))
    # a byte budget smaller than the samples gives chunks of one batch after the first
    small = list(dataset.iter_chunks(max_chunk_bytes=1))
    assert [len(x[0]) for x, _ in small[1:3]] == [3, 3]
    assert [len(x[0]) for x, _ in dataset.iter_chunks(chunk_size=400)] == [400, 400, 200]


def test_input_mean_std_is_computed_on_the_train_split():
    dataset = LabelledArrays(count=50)
    train_x = dataset.train_test_split_representations()[0]
    mean, std = dataset.get_input_mean_std()
    assert mean.shape == (3,)
    np.testing.assert_allclose(mean, np.mean(train_x), rtol=1e-12)
    np.testing.assert_allclose(std, np.std(train_x), rtol=1e-9)


def test_calibration_samples_come_from_the_train_split():
    dataset = LabelledArrays(count=100)
    train_x = set(dataset.train_test_split_representations()[0])
    samples = list(dataset.calibration_dataset_generator(percentage=0.25, seed=3))
    assert len(samples) == 20
    assert all(len(s) == 1 and s[0].shape == (1, 3) for s in samples)
    values = [int(s[0][0, 0]) for s in samples]
    assert set(values) <= train_x and len(set(values)) == 20
    again = [int(s[0][0, 0]) for s in dataset.calibration_dataset_generator(0.25, seed=3)]
    assert again == values
    with pytest.raises(ConfigurationError, match="percentage"):
        next(dataset.calibration_dataset_generator(percentage=0))


def test_external_calibration_dataset(tmp_path):
    for i in range(8):
        (tmp_path / f"sample{i}.bin").write_bytes(bytes([i]))
    dataset = LabelledArrays(count=10, external_calibration_dataset=tmp_path)
    files = dataset.prepare_external_calibration_dataset(percentage=0.5, seed=1)
    assert len(files) == 4 and all(f.parent == tmp_path for f in files)
    assert files == dataset.prepare_external_calibration_dataset(percentage=0.5, seed=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match="has no files"):
        LabelledArrays(external_calibration_dataset=empty).prepare_external_calibration_dataset()


def test_checksum_download_and_verification(tmp_path):
    LabelledArrays.downloads = 0
    root = tmp_path / "data"
    dataset = LabelledArrays(root=root)
    assert LabelledArrays.downloads == 1
    assert (root / CHECKSUM_FILE_NAME).is_file() and dataset.verify_dataset_checksum()
    LabelledArrays(root=root)  # checksum matches: no second download
    assert LabelledArrays.downloads == 1
    (root / "data.npy").write_bytes(b"changed")
    assert not dataset.verify_dataset_checksum()
    LabelledArrays(root=root)  # mismatch: downloaded again
    assert LabelledArrays.downloads == 2
    LabelledArrays(root=root, force_download_dataset=True)
    assert LabelledArrays.downloads == 3
    (root / "data.npy").write_bytes(b"changed again")
    LabelledArrays(root=root, download_dataset=False)
    assert LabelledArrays.downloads == 3


def test_checksum_needs_a_root():
    with pytest.raises(ConfigurationError, match="no root directory"):
        LabelledArrays().save_dataset_checksum()


def test_default_merge_evaluation_appends_lists():
    dataset = LabelledArrays(count=12, subset="all", batch_size=5)
    total = Measurements()
    for x, y in dataset:
        dataset.merge_evaluation(total, dataset.evaluate([x[0]], y))
    assert total["seen"] == [i % 3 for i in range(12)]
    assert dataset.compute_quality_metrics(total) == {}


def test_from_json_validates_and_converts_parameters(tmp_path):
    dataset = LabelledArrays.from_json({"batch_size": 4, "root": str(tmp_path), "subset": "all"})
    assert dataset.batch_size == 4 and dataset.root == tmp_path
    with pytest.raises(ConfigurationError, match="'batch_size' must be an integer"):
        LabelledArrays.from_json({"batch_size": "4"})
    with pytest.raises(ConfigurationError, match="unknown parameter 'batchsize'"):
        LabelledArrays.from_json({"batchsize": 4})


def test_from_argparse():
    parser, _ = LabelledArrays.form_argparse(argparse.ArgumentParser())
    args = parser.parse_args(["--batch-size", "6", "--subset", "train", "--split-seed", "5"])
    dataset = LabelledArrays.from_argparse(args)
    assert (dataset.batch_size, dataset.subset, dataset.split_seed) == (6, "train", 5)


class OwnFolder(Dataset):
    """A user's dataset reading their own folder: it downloads nothing."""

    def prepare(self) -> None:
        self.dataX = sorted(p.name for p in self.root.iterdir())
        self.dataY = [0] * len(self.dataX)

    def prepare_input_samples(self, samples):
        return [np.zeros((len(samples), 1), dtype=np.float32)]

    def prepare_output_samples(self, samples):
        return [np.asarray(samples, dtype=np.int64)]

    def evaluate(self, predictions, truth):
        return Measurements()


def test_a_dataset_that_downloads_nothing_never_writes_into_its_root(tmp_path):
    """download_dataset is true by default (Kenning's default too): a dataset without a
    download function must still leave the user's data folder as it was (#24)."""
    (tmp_path / "a.txt").write_text("mine")
    OwnFolder(root=tmp_path, subset="all")
    OwnFolder(root=tmp_path, subset="all", force_download_dataset=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert not OwnFolder.fetches_data() and LabelledArrays.fetches_data()


@pytest.mark.parametrize(("count", "test_fraction", "val_fraction", "sizes"), [
    (4, 0.2, None, (3, 1, 0)),  # the #25 reviewer's case: 0.8 rounds to 1
    (1, 0.2, None, (1, 0, 0)),  # one sample: it stays in train; a test run is refused
    (2, 0.2, None, (1, 1, 0)),  # 0.4 -> at least one test sample while train keeps one
    (2, 0.9, None, (1, 1, 0)),  # 1.8 -> train keeps one
    (50, 0.2, None, (40, 10, 0)),
    (1797, 0.2, None, (1438, 359, 0)),  # digits: as documented (docs/pipeline.md)
    (10, 0.25, None, (7, 3, 0)),  # 2.5 rounds half up
    (10, 0.2, 0.1, (7, 2, 1)),
    (3, 0.2, 0.1, (1, 1, 1)),
])
def test_split_sizes_follow_the_count_and_fractions(count, test_fraction, val_fraction, sizes):
    assert split_sizes(count, test_fraction, val_fraction) == sizes


def test_a_small_split_has_its_documented_size_whatever_the_labels():
    """Per-class rounding gave 4 samples of 4 classes an empty test split (round(0.2) = 0 in
    every class), so a run measured nothing; the size is now round(4 x 0.2) = 1 for any
    labels and seed, and the same seed gives the same split."""
    for labels in ([0, 1, 2, 3], [0, 0, 1, 2], [5, 5, 5, 5]):
        for seed in range(10):
            dataset = LabelledArrays(count=4, split_seed=seed)
            dataset.dataY = list(labels)
            dataset._select_subset()
            assert len(dataset) == 1, (labels, seed)
            assert dataset.train_test_split_representations() == (
                dataset.train_test_split_representations())
    # ties between classes are broken by the seed: not always the same class held out
    held_out = set()
    for seed in range(10):
        dataset = LabelledArrays(count=4, split_seed=seed)
        dataset.dataY = [0, 1, 2, 3]
        held_out.add(dataset.train_test_split_representations()[3][0])
    assert len(held_out) > 1


def test_stratification_keeps_each_class_share_when_rounding():
    dataset = LabelledArrays(count=0, subset="all")
    dataset.dataX = list(range(22))
    dataset.dataY = [0] * 11 + [1] * 7 + [2] * 4  # 3.3, 2.1, 1.2 of a 0.3 test split
    _, _, _, test_y = dataset.train_test_split_representations(test_fraction=0.3)
    # 7 = round(6.6): each class its share rounded down (6), one more to the largest
    # remainder; rounding each class alone gave 6
    assert Counter(test_y) == {0: 4, 1: 2, 2: 1}


@pytest.mark.parametrize(("count", "subset", "message"), [
    (0, "all", "dataset LabelledArrays holds no samples: a run would measure nothing (give it "
               "samples)"),
    (1, "test", "dataset LabelledArrays holds 1 sample and its test split (split_fraction_test "
                "0.2: 0 test, 1 train) holds none: a run would measure nothing (give it more "
                "samples, or subset: all)"),
])
def test_a_dataset_that_selects_no_sample_is_an_error(count, subset, message):
    dataset = LabelledArrays(count=count, subset=subset)
    with pytest.raises(ConfigurationError) as info:
        dataset.check_not_empty()
    assert str(info.value) == message
    LabelledArrays(count=2).check_not_empty()  # one test sample: fine

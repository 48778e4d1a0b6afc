"""DigitsDataset against scikit-learn's own loader, and its evaluation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from kenning_hil.core.dataset import CHECKSUM_FILE_NAME
from kenning_hil.core.errors import InputSizeError
from kenning_hil.core.measurements import Measurements
from kenning_hil.datasets.digits import DIGITS_FILE_NAME, DigitsDataset, load_digits_arrays


@pytest.fixture(scope="module")
def sklearn_digits():
    from sklearn.datasets import load_digits

    return load_digits()


def test_arrays_match_scikit_learn(sklearn_digits):
    pixels, labels = load_digits_arrays()
    assert pixels.dtype == np.uint8 and pixels.shape == (1797, 64)
    np.testing.assert_array_equal(pixels, sklearn_digits.data)
    np.testing.assert_array_equal(labels, sklearn_digits.target)


def test_default_is_the_stratified_held_out_split():
    test = DigitsDataset()
    train = DigitsDataset(subset="train")
    assert len(test) == 359 and len(train) == 1438 and len(DigitsDataset(subset="all")) == 1797
    counts = Counter(test.get_data_unloaded()[1])
    assert sorted(counts) == list(range(10)) and min(counts.values()) >= 35
    assert not set(test.get_data_unloaded()[0]) & set(train.get_data_unloaded()[0])
    assert test.get_class_names() == [str(d) for d in range(10)]


def test_inputs_are_pixels_over_16_as_float32(sklearn_digits):
    dataset = DigitsDataset(subset="all")
    (inputs,), (labels,) = dataset.get_data()
    assert inputs.dtype == np.float32 and inputs.shape == (1797, 64)
    np.testing.assert_array_equal(inputs, (sklearn_digits.data / 16).astype(np.float32))
    np.testing.assert_array_equal(labels, sklearn_digits.target)
    nhwc = DigitsDataset(subset="all", image_layout="nhwc", batch_size=5)
    (first,), _ = next(iter(nhwc))
    assert first.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(first.reshape(5, 64), inputs[:5])


def test_root_keeps_an_offline_copy_with_checksum(tmp_path):
    dataset = DigitsDataset(root=tmp_path)
    assert (tmp_path / DIGITS_FILE_NAME).is_file() and (tmp_path / CHECKSUM_FILE_NAME).is_file()
    assert dataset.verify_dataset_checksum()
    # the copy is what gets read: a changed copy changes the data
    with np.load(tmp_path / DIGITS_FILE_NAME) as archive:
        pixels, labels = archive["pixels"].copy(), archive["labels"]
    pixels[:] = 16
    np.savez(tmp_path / DIGITS_FILE_NAME, pixels=pixels, labels=labels)
    changed = DigitsDataset(root=tmp_path, download_dataset=False)
    assert float(changed.get_data()[0][0].min()) == 1.0


def test_npy_files_are_accepted_as_samples(tmp_path):
    dataset = DigitsDataset(subset="all", external_calibration_dataset=tmp_path)
    pixels, _ = load_digits_arrays()
    for i in range(4):
        np.save(tmp_path / f"{i}.npy", pixels[i].reshape(8, 8))
    samples = list(dataset.calibration_dataset_generator(percentage=1.0))
    assert len(samples) == 4
    np.testing.assert_array_equal(samples[2][0][0], pixels[2] / np.float32(16))


def scores_for(classes: np.ndarray, num_classes: int = 10) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[classes]


def test_evaluation_counts_and_metrics_by_hand():
    dataset = DigitsDataset()
    truth = np.array([0, 0, 1, 1, 2, 2])
    scores = scores_for(np.array([0, 1, 1, 1, 2, 0]))
    scores[1, 0] = 0.5  # sample 1 (true 0): 0 is its second choice -> top-3 hit
    scores[5, [0, 1, 3, 2]] = [0.9, 0.8, 0.7, 0.1]  # sample 5 (true 2): 4th choice -> miss
    measurements = Measurements()
    dataset.merge_evaluation(measurements, dataset.evaluate([scores[:4]], [truth[:4]]))
    dataset.merge_evaluation(measurements, dataset.evaluate([scores[4:]], [truth[4:]]))
    metrics = dataset.compute_quality_metrics(measurements)
    assert metrics["total"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["top_3_count"] == 5
    matrix = np.array(metrics["eval_confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix[0].tolist()[:3] == [1, 1, 0]
    assert matrix[2].tolist()[:3] == [1, 0, 1]
    assert metrics["precision"][:3] == [pytest.approx(1 / 2), pytest.approx(2 / 3), 1.0]
    assert metrics["recall"][:3] == [0.5, 1.0, 0.5]
    assert metrics["precision"][5] is None and metrics["recall"][5] is None
    assert metrics["mean_recall"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)


def test_metrics_agree_with_scikit_learn():
    from sklearn.metrics import confusion_matrix, precision_score, recall_score

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, size=500)
    scores = rng.random((500, 10)).astype(np.float32)
    scores[np.arange(250), truth[:250]] += 1.0  # half the samples right
    dataset = DigitsDataset()
    measurements = Measurements()
    for start in range(0, 500, 64):
        part = slice(start, start + 64)
        dataset.merge_evaluation(measurements, dataset.evaluate([scores[part]], [truth[part]]))
    metrics = dataset.compute_quality_metrics(measurements)
    predicted = scores.argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == truth))
    expected_matrix = confusion_matrix(truth, predicted)
    np.testing.assert_array_equal(metrics["eval_confusion_matrix"], expected_matrix)
    precision = precision_score(truth, predicted, average=None)
    np.testing.assert_allclose(metrics["precision"], precision)
    np.testing.assert_allclose(metrics["recall"], recall_score(truth, predicted, average=None))
    top3 = np.argsort(-scores, axis=1)[:, :3]
    assert metrics["top_3_accuracy"] == pytest.approx(np.mean((top3 == truth[:, None]).any(1)))


def test_one_hot_truth_is_accepted():
    dataset = DigitsDataset()
    truth = np.array([3, 4, 5])
    plain = dataset.evaluate([scores_for(truth)], [truth])
    one_hot = dataset.evaluate([scores_for(truth)], [scores_for(truth)])
    assert np.array_equal(plain["eval_confusion_matrix"][0], one_hot["eval_confusion_matrix"][0])


def test_wrong_number_of_scores_is_an_input_size_error():
    dataset = DigitsDataset()
    with pytest.raises(InputSizeError, match="outputs 5 scores per sample, dataset has 10"):
        dataset.evaluate([np.zeros((2, 5))], [np.array([0, 1])])
    with pytest.raises(InputSizeError, match="3 predictions for 2 labels"):
        dataset.evaluate([np.zeros((3, 10))], [np.array([0, 1])])

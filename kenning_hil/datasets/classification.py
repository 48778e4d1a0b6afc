"""Classification quality metrics, shared by every classification dataset.

`evaluate` keeps only additive counts per batch (confusion matrix, top-k hits, total), so batch
results merge by accumulation; `compute_quality_metrics` derives the final ratios once.
The confusion matrix is indexed [true class, predicted class], as in Kenning's reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kenning_hil.core.dataset import Dataset
from kenning_hil.core.errors import InputSizeError
from kenning_hil.core.measurements import CONFUSION_MATRIX, SAMPLES_TOTAL, Measurements


def _label_classes(labels: np.ndarray) -> np.ndarray:
    """Class ids from integer labels (N,) or one-hot/score rows (N, C)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return np.argmax(labels, axis=1)
    return labels.reshape(-1).astype(np.int64)


def count_classification(
    scores: np.ndarray, labels: np.ndarray, num_classes: int, top_k: int = 3
) -> tuple[np.ndarray, int, int]:
    """Returns (confusion matrix, top-k hits, sample count) for one batch of class scores."""
    scores = np.asarray(scores)
    scores = scores.reshape(scores.shape[0], -1) if scores.ndim != 2 else scores
    truth = _label_classes(labels)
    if scores.shape[0] != truth.shape[0]:
        raise InputSizeError(
            f"classification: {scores.shape[0]} predictions for {truth.shape[0]} labels"
        )
    if scores.shape[1] != num_classes:
        raise InputSizeError(
            f"classification: model outputs {scores.shape[1]} scores per sample, "
            f"dataset has {num_classes} classes"
        )
    predicted = np.argmax(scores, axis=1)
    confusion = np.bincount(
        truth * num_classes + predicted, minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)
    k = min(top_k, num_classes)
    best_k = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    hits = int(np.count_nonzero((best_k == truth[:, None]).any(axis=1)))
    return confusion.astype(np.int64), hits, int(truth.shape[0])


def classification_metrics(
    confusion: np.ndarray, top_k_hits: int, total: int, top_k: int = 3
) -> dict[str, Any]:
    """Accuracy, top-k accuracy and per-class precision/recall from accumulated counts.

    Precision/recall of a class that was never predicted/present is None (undefined); the
    means are over the defined values only.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    correct = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    present = confusion.sum(axis=1)
    precision = [int(c) / int(p) if p else None for c, p in zip(correct, predicted)]
    recall = [int(c) / int(p) if p else None for c, p in zip(correct, present)]

    def mean(values: list) -> float | None:
        defined = [v for v in values if v is not None]
        return float(np.mean(defined)) if defined else None

    return {
        SAMPLES_TOTAL: int(total),
        f"top_{top_k}_count": int(top_k_hits),
        "accuracy": float(correct.sum() / total) if total else 0.0,
        f"top_{top_k}_accuracy": float(top_k_hits / total) if total else 0.0,
        "precision": precision,
        "recall": recall,
        "mean_precision": mean(precision),
        "mean_recall": mean(recall),
        CONFUSION_MATRIX: confusion.tolist(),
    }


class ClassificationDataset(Dataset):
    """A dataset whose model outputs one score per class as its first output."""

    top_k: int = 3

    def evaluate(self, predictions: list, truth: list) -> Measurements:
        num_classes = len(self.get_class_names())
        confusion, hits, total = count_classification(
            predictions[0], truth[0], num_classes, self.top_k
        )
        matrix_key, hits_key, total_key = self._count_keys()
        measurements = Measurements()
        measurements.accumulate(matrix_key, confusion, lambda: np.zeros_like(confusion))
        measurements.accumulate(hits_key, hits, lambda: 0)
        measurements.accumulate(total_key, total, lambda: 0)
        return measurements

    def _count_keys(self) -> tuple[str, str, str]:
        return CONFUSION_MATRIX, f"top_{self.top_k}_count", SAMPLES_TOTAL

    def merge_evaluation(self, total: Measurements, part: Measurements) -> None:
        # counts are accumulated (Measurements.accumulate keeps a bare value, as Kenning's)
        for key in self._count_keys():
            if key in part:
                value = part[key]
                zero = np.zeros_like(value) if isinstance(value, np.ndarray) else 0
                total.accumulate(key, value, lambda zero=zero: zero)

    def compute_quality_metrics(self, measurements: Measurements) -> dict[str, Any]:
        matrix_key, hits_key, total_key = self._count_keys()
        if matrix_key not in measurements:
            return {}
        metrics = classification_metrics(
            measurements[matrix_key],
            int(measurements[hits_key]),
            int(measurements[total_key]),
            self.top_k,
        )
        metrics["class_names"] = self.get_class_names()
        return metrics

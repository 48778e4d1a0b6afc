"""EEMBC runner format (MLPerf Tiny datasets): reading, synthetic writing, errors, and the
exact round trip of quantised samples through the host's quantisation."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError, InputSizeError
from kenning_hil.core.iospec import quantize
from kenning_hil.datasets.mlperf_tiny import (
    MLPERF_TINY_MODELS,
    EEMBCDataset,
    mlperf_tiny_model_path,
    models_root,
    write_synthetic_eembc_dataset,
)


def test_reads_bins_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    tensors = [rng.integers(-128, 128, (1, 4, 3), dtype=np.int8) for _ in range(3)]
    for i, t in enumerate(tensors):
        (tmp_path / f"s{i}.bin").write_bytes(t.tobytes())
    (tmp_path / "y_labels.csv").write_text("s0.bin,3,2\ns1.bin,3,0\n\ns2.bin,3,1\n")
    dataset = EEMBCDataset(root=tmp_path, input_shape=[1, 4, 3], subset="all")
    assert dataset.get_class_names() == ["0", "1", "2"]
    (x,), (y,) = dataset.get_data()
    np.testing.assert_array_equal(x, np.concatenate(tensors))
    np.testing.assert_array_equal(y, [2, 0, 1])


def test_synthetic_samples_are_written_once_and_reproducible(tmp_path):
    params = {"root": str(tmp_path / "kws"), "input_shape": [1, 49, 10, 1],
              "synthetic_samples": 8, "synthetic_classes": 12, "subset": "all"}
    first = EEMBCDataset.from_json(params).get_data()[0][0]
    assert len(list((tmp_path / "kws").glob("*.bin"))) == 8
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "kws").iterdir()}
    again = EEMBCDataset.from_json(params).get_data()[0][0]
    np.testing.assert_array_equal(first, again)
    # the same parameters: the files are read, not written again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "kws").iterdir()} == written
    assert first.dtype == np.int8 and first.shape == (8, 49, 10, 1)
    other_seed = EEMBCDataset.from_json({**params, "synthetic_seed": 99}).get_data()[0][0]
    assert not np.array_equal(first, other_seed)
    # back to the first parameters: the same samples as the first time, bit for bit
    np.testing.assert_array_equal(EEMBCDataset.from_json(params).get_data()[0][0], first)


def test_synthetic_samples_follow_their_parameters_not_an_earlier_folder(tmp_path):
    """The #25 reviewer's 4-vs-10: `synthetic_samples: 4` in a folder an earlier run had
    written with 50 read those 50 (a test split of 10); the folder is written again with
    4, stale sample files removed, and the split's size follows the documented rule."""
    root = tmp_path / "syn"
    params = {"root": str(root), "input_shape": [1, 64], "input_dtype": "float32",
              "synthetic_classes": 10}
    fifty = EEMBCDataset.from_json({**params, "synthetic_samples": 50})
    assert len(fifty.dataX) == 50 and len(fifty) == 10  # round(50 x 0.2)
    four = EEMBCDataset.from_json({**params, "synthetic_samples": 4})
    assert len(four.dataX) == 4 and len(four) == 1  # round(4 x 0.2), whatever the labels
    assert sorted(p.name for p in root.glob("*.bin")) == [f"sample_0000{i}.bin"
                                                          for i in range(4)]
    assert EEMBCDataset.declared_sample_count({**params, "synthetic_samples": 4,
                                               "root": root}) == 4
    # real data (no marker) is never rewritten: its own count
    (root / "SYNTHETIC.txt").unlink()
    real = EEMBCDataset.from_json({**params, "synthetic_samples": 50, "subset": "all"})
    assert len(real) == 4
    assert EEMBCDataset.declared_sample_count({**params, "synthetic_samples": 50,
                                               "root": root}) == 4


def test_a_test_split_with_no_sample_is_an_error_naming_the_dataset(tmp_path):
    root = tmp_path / "one"
    params = {"root": str(root), "input_shape": [1, 64], "input_dtype": "float32",
              "synthetic_samples": 1, "synthetic_classes": 10}
    dataset = EEMBCDataset.from_json(params)
    message = (f"dataset EEMBCDataset (root {root}) holds 1 sample and its test split "
               "(split_fraction_test 0.2: 0 test, 1 train) holds none: a run would measure "
               "nothing (give it more samples, or subset: all)")
    with pytest.raises(ConfigurationError) as info:
        dataset.check_not_empty()
    assert str(info.value) == message
    assert EEMBCDataset.declared_empty_reason(params) == message
    assert EEMBCDataset.declared_empty_reason({**params, "synthetic_samples": 2}) == ""
    assert EEMBCDataset.declared_empty_reason({**params, "subset": "all"}) == ""


def test_synthetic_labels_report_no_quality_metrics(tmp_path):
    """Random labels: an accuracy would mean nothing, so only the count is reported; the same
    files without the marker (real data) get the classification metrics."""
    dataset = EEMBCDataset.from_json({"root": str(tmp_path), "input_shape": [1, 640],
                                      "synthetic_samples": 10, "synthetic_classes": 4,
                                      "subset": "all"})
    (x,), (y,) = dataset.get_data()
    predictions = np.eye(4, dtype=np.float32)[y]  # a perfect "model"
    metrics = dataset.compute_quality_metrics(dataset.evaluate([predictions], [y]))
    assert metrics == {"total": 10}
    (tmp_path / "SYNTHETIC.txt").unlink()
    real = EEMBCDataset(root=tmp_path, input_shape=[1, 640], subset="all")
    (x,), (y,) = real.get_data()
    metrics = real.compute_quality_metrics(real.evaluate([predictions], [y]))
    assert metrics["accuracy"] == 1.0 and metrics["total"] == 10


def test_dequantised_samples_requantise_exactly(tmp_path):
    write_synthetic_eembc_dataset(tmp_path, [1, 640], "int8", 20, 2, seed=3)
    raw = EEMBCDataset(root=tmp_path, input_shape=[1, 640], subset="all").get_data()[0][0]
    scale, zero_point = 0.3910152316093445, 89  # the AD model's input quantisation
    floats = EEMBCDataset(root=tmp_path, input_shape=[1, 640], input_scale=scale,
                          input_zero_point=zero_point, subset="all").get_data()[0][0]
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(quantize(floats, scale, zero_point, "int8"), raw)


def test_wrong_file_size_names_the_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(10))
    (tmp_path / "y_labels.csv").write_text("a.bin,2,1\n")
    dataset = EEMBCDataset(root=tmp_path, input_shape=[1, 4, 4], subset="all")
    with pytest.raises(InputSizeError, match=r"a\.bin: 10 bytes, expected 16 \(1x4x4 int8\)"):
        dataset.get_data()


@pytest.mark.parametrize(("labels", "message"), [
    ("a.bin,2\n", r"y_labels\.csv:1: expected 'file,num_classes,class'"),
    ("a.bin,2,x\n", "must be integers"),
    ("a.bin,2,5\n", r"class 5 outside 0\.\.1"),
    ("missing.bin,2,1\n", "listed file missing.bin missing"),
])
def test_bad_label_files_are_named(tmp_path, labels, message):
    (tmp_path / "a.bin").write_bytes(bytes(16))
    (tmp_path / "y_labels.csv").write_text(labels)
    with pytest.raises(ConfigurationError, match=message):
        EEMBCDataset(root=tmp_path, input_shape=[1, 16], subset="all")


def test_models_path_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("KENNING_HIL_MODELS", str(tmp_path))
    assert models_root() == tmp_path
    kws = next(m for m in MLPERF_TINY_MODELS if m.name == "kws")
    assert mlperf_tiny_model_path(kws) == tmp_path / "mlperf_tiny" / "kws_ref_model.tflite"


def test_without_the_setting_models_are_under_the_current_directory(monkeypatch, tmp_path):
    """Not beside wherever the package happens to be installed."""
    monkeypatch.delenv("KENNING_HIL_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert models_root() == tmp_path / "models"


def test_suite_file_expands_to_the_four_models(repo_root, models_dir):
    from kenning_hil.suites.loader import load_suite

    suite = load_suite(repo_root / "suites" / "mlperf_tiny.yaml",
                       search=[repo_root, models_dir])
    assert sorted(c.model for c in suite.cases) == ["ad", "ic", "kws", "vww"]


def test_synthetic_samples_of_a_quantised_input_lie_around_its_zero_point(tmp_path):
    """#23 finding 4: with the input quantisation known, synthetic samples are drawn around
    the zero point (kept in the middle half of the range) rather than uniformly, and an older
    uniform synthetic set is written again; real data never is."""
    root = tmp_path / "ad"
    write_synthetic_eembc_dataset(root, [1, 640], "int8", 20, 2, seed=3)  # the old draw
    uniform = EEMBCDataset(root=root, input_shape=[1, 640], subset="all").get_data()[0][0]
    assert "draw: uniform" in (root / "SYNTHETIC.txt").read_text()
    params = {"root": str(root), "input_shape": [1, 640], "input_scale": 0.39,
              "input_zero_point": 10, "synthetic_samples": 20, "synthetic_classes": 2,
              "subset": "all"}
    EEMBCDataset.from_json(params).get_data()  # writes the samples again, around 10
    raw = EEMBCDataset(root=root, input_shape=[1, 640], subset="all").get_data()[0][0]
    assert not np.array_equal(raw, uniform)
    assert abs(float(raw.mean()) - 10) < 3 and 28 < float(raw.std()) < 36
    assert "draw: spread around the zero point 10" in (root / "SYNTHETIC.txt").read_text()
    # real data (no marker) is left as it is
    (root / "SYNTHETIC.txt").unlink()
    EEMBCDataset.from_json({**params, "input_zero_point": -50}).get_data()
    again = EEMBCDataset(root=root, input_shape=[1, 640], subset="all").get_data()[0][0]
    np.testing.assert_array_equal(again, raw)

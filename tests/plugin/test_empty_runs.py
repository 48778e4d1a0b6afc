"""A run that would measure no sample never passes (#25 reviewer): an EEMBC dataset of 4
synthetic samples over 10 classes had an empty test split (per-class rounding) and `hil.run`
PASSED with 0 samples. A split's size now follows round(count x fraction), and a dataset
that still selects nothing is an error naming it, its size and split: at collection for a
suite, before compiling or booting anything in `hil.run` and the harness; a run that
measured nothing anyway is an error, not a pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.datasets.mlperf_tiny import EEMBCDataset
from kenning_hil.run.outcome import NothingMeasured
from kenning_hil.targets import Target
from kenning_hil.targets.catalog import TargetCatalog
from tests.plugin.conftest import DIGITS, REPO, run

pytest_plugins = ["pytester"]


def eembc(root: str, samples: int) -> dict:
    """Synthetic EEMBC samples the digits MLP takes (64 floats), 10 classes."""
    return {"type": "eembc", "parameters": {
        "root": root, "input_shape": [1, 64], "input_dtype": "float32",
        "synthetic_samples": samples, "synthetic_classes": 10}}


def empty_message(root: str) -> str:
    return (f"dataset EEMBCDataset (root {root}) holds 1 sample and its test split "
            "(split_fraction_test 0.2: 0 test, 1 train) holds none: a run would measure "
            "nothing (give it more samples, or subset: all)")


SUITE = (
    "datasets:\n"
    "  one: {type: eembc, parameters: {root: data/one, input_shape: [1, 64],\n"
    "        input_dtype: float32, synthetic_samples: 1, synthetic_classes: 10}}\n"
    f"models:\n  d: {{model: {DIGITS}, dataset: one}}\n"
)

HIL_TEST = f"""
import json

def test_four_samples_of_ten_classes(hil):
    # the reviewer's case: its test split held 0 samples and the run passed
    result = hil.run(model={DIGITS!r}, dataset={eembc("syn4", 4)!r})
    with open("four.json", "w") as f:
        json.dump(result.samples, f)

def test_one_sample(hil):
    hil.run(model={DIGITS!r}, dataset={eembc("syn1", 1)!r})
"""


def test_a_suite_and_a_hil_test_that_would_measure_nothing(hil_project):
    (hil_project.path / "empty.yaml").write_text(SUITE)
    hil_project.makepyfile(test_empty=HIL_TEST)
    result = run(hil_project, "empty.yaml", "test_empty.py", "--target=host-onnxruntime",
                 "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    lines = result.stdout.lines
    # the suite: a collection error naming the file, the key and the case; nothing written
    assert f"empty.yaml: key 'datasets.one': d-none: {empty_message('data/one')}" in lines, (
        result.stdout.str())
    assert not (hil_project.path / "data" / "one").exists()
    # hil.run: the test fails with the one-line message, before anything ran
    result.stdout.fnmatch_lines(["*test_one_sample*", f"*{empty_message('syn1')}*"])
    written = [p.name for p in (hil_project.path / "results" / "tests").glob("*.json")]
    assert not [name for name in written if "one_sample" in name], written
    # four samples: round(4 x 0.2) = 1 test sample, measured
    assert json.loads((hil_project.path / "four.json").read_text()) == 1


def host_onnxruntime() -> Target:
    return Target(TargetCatalog([REPO / "targets"]).get("host-onnxruntime"))


def test_the_harness_refuses_an_empty_dataset_before_compiling_or_booting(harness, tmp_path):
    root = str(tmp_path / "one")
    request = harness.request(REPO / DIGITS, eembc(root, 1), optimizer="onnxruntime-quant")
    with pytest.raises(ConfigurationError) as info:
        harness.run(host_onnxruntime(), request, "empty::one")
    assert str(info.value) == empty_message(root)
    assert harness.sessions.boots == 0 and harness.uploads == 0
    assert harness.cache.builds == 0 and harness.cache.hits == 0  # nothing compiled
    assert not harness.result_path("empty::one").exists()


class CountsWithoutSamples(EEMBCDataset):
    """A dataset whose length says 2 but whose iteration gives nothing (a broken custom
    dataset): the guard after the run, not the check before it, must stop it passing."""

    def __len__(self) -> int:
        return 2

    def get_data_unloaded(self) -> tuple[list, list]:
        return [], []


def test_a_run_that_measured_nothing_is_an_error_with_its_result_kept(harness, tmp_path):
    entry = eembc(str(tmp_path / "syn"), 10)
    entry["type"] = f"{__name__}.CountsWithoutSamples"
    request = harness.request(REPO / DIGITS, entry)
    with pytest.raises(NothingMeasured) as info:
        harness.run(host_onnxruntime(), request, "empty::lying")
    path = harness.result_path("empty::lying")
    assert str(info.value) == (
        f"digits-mlp on host-onnxruntime measured no sample (dataset CountsWithoutSamples "
        f"gave 2); results: {path}")
    assert json.loads(Path(path).read_text())["samples"] == 0


def test_the_split_of_the_issue_is_the_same_every_time(tmp_path):
    """The reviewer saw 0 samples in one run and 10 in another with the same settings: the
    split and the synthetic files depend on the parameters alone."""
    seen = set()
    for attempt in range(3):
        dataset = EEMBCDataset.from_json(eembc(str(tmp_path / f"syn{attempt}"), 4)["parameters"])
        xs, ys = dataset.get_data_unloaded()
        (x,), _ = dataset.get_data()
        seen.add((tuple(p.name for p in xs), tuple(ys), np.asarray(x).tobytes()))
    assert len(seen) == 1 and len(next(iter(seen))[0]) == 1


def test_a_comparison_refuses_an_empty_dataset_before_taking_its_boards(harness, tmp_path):
    from kenning_hil.judge.agreement import EXACT
    from kenning_hil.run.comparison import compare_on_targets

    root = str(tmp_path / "one")
    request = harness.request(REPO / DIGITS, eembc(root, 1))
    targets = [host_onnxruntime(), Target(TargetCatalog([REPO / "targets"]).get("host-tflm"))]
    with pytest.raises(ConfigurationError) as info:
        compare_on_targets(harness, targets, request, "empty::compare", EXACT)
    assert str(info.value) == empty_message(root)
    assert harness.sessions.boots == 0

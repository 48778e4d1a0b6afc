"""--samples caps every run (for quick smoke runs): a run uses min(its own count, --samples),
in hil.run and in suites; runs on real `kenning-hil serve` servers."""

import json

from tests.plugin.conftest import DIGITS, run

pytest_plugins = ["pytester"]

USER_TEST = f"""
import json

def test_counts(hil, pytestconfig):
    explicit = hil.run(model="{DIGITS}", dataset="digits", samples=40)
    default = hil.run(model="{DIGITS}", dataset="digits", name="whole")
    counts = {{"explicit": explicit.samples, "default": default.samples}}
    (pytestconfig.rootpath / "counts.json").write_text(json.dumps(counts))
"""

SUITE = "models:\n  d: {model: models/digits/digits-mlp.onnx, dataset: digits, samples: 30}\n"


def suite_samples(project) -> int:
    (result,) = (project.path / "results" / "tests").glob("s.yaml__*.json")
    return json.loads(result.read_text())["samples"]


def test_samples_caps_explicit_counts(hil_project):
    hil_project.makepyfile(test_counts=USER_TEST)
    (hil_project.path / "s.yaml").write_text(SUITE)
    counts = hil_project.path / "counts.json"

    run(hil_project, "test_counts.py", "s.yaml").assert_outcomes(passed=2)
    whole = json.loads(counts.read_text())
    assert whole["explicit"] == 40 and whole["default"] > 300  # the whole digits test split
    assert suite_samples(hil_project) == 30

    run(hil_project, "test_counts.py", "s.yaml", "--samples=12").assert_outcomes(passed=2)
    assert json.loads(counts.read_text()) == {"explicit": 12, "default": 12}
    assert suite_samples(hil_project) == 12

    # the suite asks for fewer than the cap: it keeps its own count
    run(hil_project, "test_counts.py", "s.yaml", "--samples=35").assert_outcomes(passed=2)
    assert json.loads(counts.read_text()) == {"explicit": 35, "default": 35}
    assert suite_samples(hil_project) == 30

"""Baseline and results files: one per test id, never shared by two ids (real pytest runs on
the host target), and named readably where that is safe."""

import json

from kenning_hil.judge.baselines import (
    BaselineStore,
    baseline_file_name,
    baseline_record,
    id_of_stem,
)
from tests.plugin.conftest import run
from tests.scripted_latency import TARGET_NAME, scripted_env, write_scripted_target

pytest_plugins = ["pytester"]

LONG = "x" * 300

# ids that today's name mapping would fold together: a space, an underscore and a slash all
# became '_'; two 300-character ids used to be cut to the same 200 characters
CASES = {"a b": 0, "a_b": 1, "a/b": 2, LONG + "1": 3, LONG + "2": 4}

PUNCTUATION = f"""
import pytest

CASES = {CASES!r}

@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_c(hil, case):
    # a different sample count per case, so each file's content shows whose it is
    hil.run(model="models/digits/digits-mlp.onnx", dataset="digits", samples=10 + CASES[case])
"""


def test_ids_differing_in_punctuation_or_cut_get_their_own_files(hil_project, monkeypatch):
    # ONNX Runtime reporting inference times this test scripted (tests/scripted_latency.py):
    # the second run compares latency with the first whatever the machine's load
    scripted_env(monkeypatch)
    write_scripted_target(hil_project.path, [40e-6, 41e-6, 39e-6, 900e-6])
    hil_project.makepyfile(test_punct=PUNCTUATION)
    first = run(hil_project, f"--target={TARGET_NAME}", "--baseline=baselines",
                "--update-baseline")
    first.assert_outcomes(passed=5)
    baselines = {
        json.loads(p.read_text())["test"]: json.loads(p.read_text())
        for p in (hil_project.path / "baselines").glob("*.json")
    }
    results = {
        json.loads(p.read_text())["test"]: json.loads(p.read_text())
        for p in (hil_project.path / "results" / "tests").glob("*.json")
    }
    ids = {f"test_punct.py::test_c[{TARGET_NAME}-{case}]": n for case, n in CASES.items()}
    assert set(baselines) == set(ids) and set(results) == set(ids)
    for test_id, n in ids.items():
        assert baselines[test_id]["samples"] == 10 + n
        assert results[test_id]["samples"] == 10 + n
    # the readable name stays where the id maps to it unchanged
    assert (hil_project.path / "baselines" /
            f"test_punct.py__test_c[{TARGET_NAME}-a_b].json").is_file()
    # every test finds its own baseline again: nothing is reported missing
    again = run(hil_project, f"--target={TARGET_NAME}", "--baseline=baselines")
    again.assert_outcomes(passed=5)
    assert "no baseline for" not in again.stdout.str()
    assert f"baselines ({hil_project.path / 'baselines'}): 5 compared" in again.stdout.str()


def test_file_names_are_unique_readable_and_bounded():
    ids = [
        "tests/test_x.py::test_acc[host-onnxruntime]",
        "tests/a/b.py::t", "tests/a.b.py::t", "tests.a.b.py::t",
        "x.py::TestA::test_b", "x.py::TestA__test_b",
        "x.py::t[a b]", "x.py::t[a_b]", "x.py::t[a/b]", "x.py::t[a.b]", "x.py::t[a::b]",
        "x.py::t[a__b]", "x.py::t#1", "x.py::t_1", "digits", "a/b", "a_b",
        LONG, LONG + "1", LONG + "2", "y" * 199, "y" * 200, "y" * 201,
    ]
    names = [baseline_file_name(i) for i in ids]
    assert len(set(names)) == len(ids), sorted(zip(names, ids))
    assert all(len(n.encode()) <= 230 for n in names)
    # ids that map unchanged keep today's names
    assert names[0] == "tests.test_x.py__test_acc[host-onnxruntime].json"
    assert baseline_file_name("suites/tagged.yaml::digits-tag-a[host-a]") == (
        "suites.tagged.yaml__digits-tag-a[host-a].json")
    assert baseline_file_name("x.py::t[a_b]") == "x.py__t[a_b].json"
    assert baseline_file_name("y" * 200) == "y" * 200 + ".json"
    # the others get a hash of the whole id after a separator no readable name contains
    assert baseline_file_name("x.py::t[a b]").startswith("x.py__t[a_b]~")
    assert baseline_file_name(LONG).startswith("x" * 200 + "~")
    assert id_of_stem("tests.a.b.py__t") == "tests/a/b.py::t"


def test_store_keeps_both_colliding_ids(tmp_path):
    store = BaselineStore(tmp_path)
    for test_id, accuracy in (("t[a b]", 0.5), ("t[a_b]", 0.7)):
        store.save(test_id, baseline_record({"accuracy": accuracy}, "host", 10, None))
    assert store.load("t[a b]")["metrics"]["accuracy"] == 0.5
    assert store.load("t[a_b]")["metrics"]["accuracy"] == 0.7
    assert len(list(tmp_path.glob("*.json"))) == 2

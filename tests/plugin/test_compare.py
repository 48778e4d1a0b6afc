"""Differential tests through the plugin: `hil.compare` and suite cases with `reference:` run
one compiled model on several real host targets (local `kenning-hil serve` servers) and compare
outputs sample by sample; two xdist workers comparing the same pair in opposite orders do not
deadlock on the pools' locks.

The pairs use what docs/firmware-interpreter.md measured: TFLite Micro agrees with LiteRT's
reference kernels exactly on KWS and differs on ad01 (FULLY_CONNECTED requantisation) by up to
3 quantisation steps.
"""

from __future__ import annotations

import json

import pytest

from tests.plugin.conftest import DIGITS, REPO, run, write_target

pytest_plugins = ["pytester"]
pytest.importorskip("ai_edge_litert", reason="needs the 'litert' extra")
pytest.importorskip("tflite_micro", reason="needs the 'tflm' extra")

KWS = "mlperf_tiny/kws_ref_model.tflite"
AD = "mlperf_tiny/ad01_int8.tflite"


@pytest.fixture
def project(hil_project, models_dir):
    if not (models_dir / KWS).is_file() or not (models_dir / AD).is_file():
        pytest.skip(f"MLPerf Tiny models absent under {models_dir} (set KENNING_HIL_MODELS)")
    for name in ("host-litert-ref", "host-tflm"):
        write_target(hil_project, name, (REPO / "targets" / f"{name}.yaml").read_text())
    hil_project.models_dir = models_dir
    return hil_project


def run_with_models(project, *args):
    return run(project, f"--models-path={project.models_dir}", *args)


def records(project) -> dict[str, dict]:
    found = {}
    for path in (project.path / "results" / "tests").glob("*.json"):
        record = json.loads(path.read_text())
        found[record["test"]] = record
    return found


COMPARE_TESTS = f"""
import pytest

BOTH = ["host-litert-ref", "host-tflm"]

@pytest.mark.target("host-tflm")
def test_kws_exact(hil, target):
    comparison = hil.compare("{KWS}", "random", targets=["host-litert-ref", target], samples=4)
    assert comparison.pair("host-tflm").exact_match_rate == 1.0

@pytest.mark.target("host-tflm")
def test_ad_exact(hil):
    hil.compare("{AD}", "random", targets=BOTH, samples=4)

@pytest.mark.target("host-tflm")
def test_ad_within_three_steps(hil):
    comparison = hil.compare("{AD}", "random", targets=BOTH, samples=4,
                             tolerance={{"max_lsb": 3}})
    assert comparison.pair("host-tflm").max_difference > 0

@pytest.mark.target("host-tflm")
def test_bad_tolerance(hil):
    hil.compare("{AD}", "random", targets=BOTH, tolerance={{"max_lsb": -2}})

@pytest.mark.target("host-litert-ref")
def test_reference_as_its_own_target(hil, target):
    hil.compare("{KWS}", "random", targets=["host-litert-ref", target], samples=2)
"""


def test_hil_compare_on_host_targets(project):
    project.makepyfile(test_cmp=COMPARE_TESTS)
    result = run_with_models(project, "--target=host-tflm", "--target=host-litert-ref", "-rs")
    result.assert_outcomes(passed=2, failed=2, skipped=1)
    out = result.stdout.str()
    # the wrong one fails naming the first sample, the max difference and both outputs
    result.stdout.re_match_lines([
        r"\s+- outputs differ beyond tolerance \(exact\) in 4 of 4 samples, first sample 0: "
        r"host-tflm vs host-litert-ref: 4 samples .*0% exact, max difference [123] steps at "
        r"sample \d \(Identity\); first mismatch sample 0, output 'Identity' element \d+: "
        r"reference \[.*\], host-tflm \[.*\]"])
    assert "hil.compare tolerance: 'max_lsb' must be a non-negative integer, not -2" in out
    assert "target 'host-litert-ref' is this comparison's reference: nothing to compare" in out
    assert "Traceback" not in out
    found = records(project)
    kws = found["test_cmp.py::test_kws_exact[host-tflm]"]["comparison"]
    assert (kws["reference"], kws["target"], kws["samples"]) == ("host-litert-ref", "host-tflm", 4)
    assert kws["exact_match_rate"] == 1.0 and kws["max_difference"] == 0
    assert kws["passed"] and kws["first_mismatch"] is None
    assert kws["reference_result"]["target"] == "host-litert-ref"
    ad = found["test_cmp.py::test_ad_exact[host-tflm]"]["comparison"]
    assert ad["unit"] == "steps" and 1 <= ad["max_difference"] <= 3
    assert not ad["passed"] and ad["first_failing_sample"] == 0
    assert len(ad["first_mismatch"]["reference"]) == 640 == len(ad["first_mismatch"]["target"])
    assert len(ad["per_sample"]["max_difference"]) == 4
    assert found["test_cmp.py::test_ad_within_three_steps[host-tflm]"]["comparison"]["passed"]


SUITE = f"""
reference: host-litert-ref
compare: {{exact: true}}
samples: 3
dataset: random
models:
  kws: {{model: {KWS}}}
  ad:
    model: {AD}
    compare: {{targets: {{host-tflm: {{max_lsb: 3}}}}}}
"""


def test_suite_reference_and_per_target_tolerance(project):
    (project.path / "compared.yaml").write_text(SUITE)
    result = run_with_models(project, "compared.yaml", "--target=host-tflm",
                             "--target=host-litert-ref")
    # on the reference itself a case is a plain run
    result.assert_outcomes(passed=4)
    found = records(project)
    ad = found["compared.yaml::ad-none[host-tflm]"]["comparison"]
    assert ad["tolerance"] == {"max_lsb": 3} and ad["passed"]
    assert found["compared.yaml::kws-none[host-tflm]"]["comparison"]["tolerance"] == {
        "exact": True}
    assert "comparison" not in found["compared.yaml::kws-none[host-litert-ref]"]


@pytest.mark.parametrize("suite, message", [
    (SUITE.replace("reference: host-litert-ref\n", ""),
     "compared.yaml: key 'compare' needs a 'reference' target"),
    (SUITE.replace("host-tflm: {max_lsb", "host-tlfm: {max_lsb"),
     "compared.yaml: key 'compare.targets': unknown target 'host-tlfm'"),
    (SUITE.replace("max_lsb: 3", "max_lsb: three"),
     "compared.yaml: key 'models.ad.compare.targets.host-tflm': 'max_lsb' must be a "
     "non-negative integer, not 'three'"),
])
def test_suite_comparison_mistakes_are_collection_errors(project, suite, message):
    (project.path / "compared.yaml").write_text(suite)
    result = run_with_models(project, "compared.yaml", "--target=host-tflm", "--collect-only")
    assert message in result.stdout.str()
    assert result.ret != 0


OPPOSITE_ORDERS = """
import glob, os, time

def meet(here):
    # both workers reach hil.compare together, so each would hold its first target while
    # booting it, exactly when a per-test acquisition order deadlocks
    mine = os.path.join(here, f"ready-{os.getpid()}")
    open(mine, "w").close()
    deadline = time.monotonic() + 120
    while len(glob.glob(os.path.join(here, "ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)

def test_a_then_b(hil):
    meet(HERE)
    hil.compare(DIGITS, "digits", targets=["pool-a", "pool-b"], samples=5)

def test_b_then_a(hil):
    meet(HERE)
    hil.compare(DIGITS, "digits", targets=["pool-b", "pool-a"], samples=5)
"""


def test_two_workers_compare_the_same_pair_in_opposite_orders(hil_project):
    # one instance each: a worker holding one while waiting for the other would wait for
    # ever (here: until the lock timeout, an error naming the holder; long enough for the
    # other worker's whole comparison on a loaded machine)
    for name in ("pool-a", "pool-b"):
        write_target(hil_project, name, "kind: host\nruntime: onnxruntime\ninstances: 1\n"
                                        "timeouts: {lock: 120}\n")
    here = hil_project.path
    hil_project.makepyfile(test_orders=f"HERE = {str(here)!r}\nDIGITS = {DIGITS!r}\n"
                                       + OPPOSITE_ORDERS)
    result = run(hil_project, "-p", "xdist", "-n", "2", "--target=pool-a")
    result.assert_outcomes(passed=2)
    found = records(hil_project)
    pids = {r["session"]["pid"] for r in found.values()}
    assert len(found) == 2 and len(pids) == 2  # each test on its own worker's servers
    for test, record in found.items():
        assert record["comparison"]["exact_match_rate"] == 1.0, test

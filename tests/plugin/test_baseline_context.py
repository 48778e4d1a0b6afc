"""Baselines are compared only with runs like the one that recorded them (real pytest runs on
a host target): another sample count skips quality, another latency source skips latency,
and the test says so in a warning instead of failing on numbers that do not compare.

The target is ONNX Runtime reporting inference times this test scripted
(tests/scripted_latency.py): the two runs compared never depend on how busy the machine is."""

import json

from tests.plugin.conftest import run as run_pytest
from tests.scripted_latency import TARGET_NAME, scripted_env, write_scripted_target

pytest_plugins = ["pytester"]

# no sample count in the test: --samples decides it (digits' test split has 359)
DIGITS = """
def test_digits(hil):
    hil.run(model="models/digits/digits-mlp.onnx", dataset="digits")
"""
# scripted inference times: mostly about 100 us with a slow one in five (the default latency
# tolerance holds them to +10% + 20 us at the fast end of the run)
LATENCIES = [100e-6, 104e-6, 98e-6, 2e-3, 101e-6]


def test_sample_count_and_latency_source_must_match(hil_project, monkeypatch):
    scripted_env(monkeypatch)
    write_scripted_target(hil_project.path, LATENCIES)
    hil_project.makepyfile(test_ctx=DIGITS)

    def run(project, *args):
        return run_pytest(project, f"--target={TARGET_NAME}", *args)

    first = run(hil_project, "--samples=20", "--baseline=baselines", "--update-baseline")
    first.assert_outcomes(passed=1)
    (path,) = (hil_project.path / "baselines").glob("*.json")
    baseline = json.loads(path.read_text())
    assert baseline["samples"] == 20 and baseline["latency_source"] == "target_inference_step"
    # the first 20 digits are all right; all 359 are not: comparing them would fail
    assert baseline["metrics"]["accuracy"] == 1.0

    full = run(hil_project, "--baseline=baselines")
    full.assert_outcomes(passed=1)
    out = full.stdout.str()
    assert (f"baseline {path} was recorded on 20 samples, this "
            f"run has 359: quality not compared; re-record with --update-baseline") in out, out
    assert "latency not compared" not in out  # same source: the CI test covers n
    assert f"baselines ({hil_project.path / 'baselines'}): 1 compared" in out

    # a baseline whose latency was timed elsewhere (host-side round trip), 100x faster
    baseline["latency_source"] = "protocol_inference_step"
    baseline["metrics"]["latency.p50"] /= 100
    baseline["metrics"]["latency.p10"] /= 100
    path.write_text(json.dumps(baseline, indent=2))
    again = run(hil_project, "--samples=20", "--baseline=baselines")
    again.assert_outcomes(passed=1)
    out = again.stdout.str()
    assert ("has latency from protocol_inference_step, this run from target_inference_step: "
            "latency not compared; re-record with --update-baseline") in out, out
    assert "quality not compared" not in out

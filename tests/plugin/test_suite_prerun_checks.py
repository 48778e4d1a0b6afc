"""Errors a suite declares before it runs (issue 25, #3): a threshold on a quality metric its
dataset cannot produce (synthetic EEMBC samples with random labels, random inputs) and an
optimizer chain whose declared formats do not connect are collection errors naming the
suite file and key, found without loading any framework; in a `hil` test, ``result.accuracy``
on a run whose dataset reports no quality metric says why."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# imported before pytester snapshots sys.modules: the plugin's reporting imports it (and
# numpy, which cannot be imported twice in one process) after each test
import kenning_hil.report.summary  # noqa: F401
from tests.plugin.conftest import REPO, run

pytest_plugins = ["pytester"]

DIGITS = "models/digits/digits-mlp.onnx"
PRERUN_SUITES = {
    "synthetic.yaml": (
        "datasets:\n"
        "  syn: {type: eembc, parameters: {root: data/syn, input_shape: [1, 8, 8, 1],\n"
        "        synthetic_samples: 10, synthetic_classes: 10}}\n"
        f"models:\n  d: {{model: {DIGITS}, dataset: syn,\n"
        "      thresholds: {latency.p95: 10ms, accuracy: 0.9}}\n",
        "synthetic.yaml: key 'models.d.thresholds.accuracy': d-none has a threshold on "
        "'accuracy', which its dataset ('datasets.syn', eembc) cannot produce: the samples in "
        "data/syn are synthetic, with random labels, so it reports no quality metric",
    ),
    "random.yaml": (
        "dataset: {type: random, parameters: {samples: 5}}\n"
        "thresholds: {top_3_accuracy: 0.5}\n"
        f"models:\n  d: {{model: {DIGITS}}}\n",
        "random.yaml: key 'thresholds.top_3_accuracy': d-none has a threshold on "
        "'top_3_accuracy', which its dataset ('dataset', random) cannot produce: random "
        "inputs have no labels, so it reports no quality metric",
    ),
    "chain.yaml": (
        "dataset: digits\n"
        "models:\n  t: {model: m.tflite}\n"
        "optimizers:\n  int8: [{type: tflite}]\n",
        "chain.yaml: key 'optimizers.int8.0': chain 'int8' of model 't': TFLiteCompiler cannot "
        "take the model from TFLiteWrapper: TFLiteWrapper outputs ['tflite'], TFLiteCompiler "
        "accepts ['onnx', 'keras', 'saved_model'] (need a common format)",
    ),
    "chain2.yaml": (
        "dataset: digits\n"
        f"models:\n  d: {{model: {DIGITS}}}\n"
        "optimizers:\n  none: []\n  tvm: [{type: tvm}, {type: tflite}]\n",
        "chain2.yaml: key 'optimizers.tvm.1': chain 'tvm' of model 'd': TFLiteCompiler cannot "
        "take the model from TVMCompiler: TVMCompiler outputs ['tvm'], TFLiteCompiler accepts "
        "['onnx', 'keras', 'saved_model'] (need a common format)",
    ),
}


# the frameworks a run would load (TensorFlow was what made the chain error cost ~5 s)
FRAMEWORKS = ("tensorflow", "tf_keras", "onnxruntime", "tvm", "torch", "ai_edge_litert",
              "tflite_runtime")
# Written into the scratch project: at the session's end, which frameworks the pytest
# process (the plugin's collection included) has imported.
LOADED_AT_END = f"""
import json, sys

def pytest_sessionfinish(session):
    loaded = sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)
    with open("frameworks-loaded.json", "w") as f:
        json.dump(loaded, f)
"""
# Far above the 1.4-2.4 s measured for such a collection (docs/plugin.md) so that a loaded
# machine cannot trip it; what the test asserts is that nothing ran and no framework loaded,
# which is what made these errors slow. This bound only catches a run sneaking back in.
COLLECTION_BOUND_S = 60


def test_impossible_thresholds_and_chains_are_collection_errors(hil_project):
    for name, (text, _) in PRERUN_SUITES.items():
        (hil_project.path / name).write_text(text)
    (hil_project.path / "m.tflite").write_bytes(b"only its existence is checked")
    hil_project.makeconftest(LOADED_AT_END)
    result = run(hil_project, *PRERUN_SUITES, "--target=host-onnxruntime", "--collect-only",
                 "-q")
    assert result.ret == 2
    result.stdout.fnmatch_lines(
        [f"*Interrupted: {len(PRERUN_SUITES)} errors during collection*"])
    lines = result.stdout.lines
    for _, message in PRERUN_SUITES.values():
        assert message in lines, result.stdout.str()
    # found before anything ran: no framework imported, nothing compiled, written or run
    loaded = json.loads((hil_project.path / "frameworks-loaded.json").read_text())
    assert loaded == [], loaded
    for written in ("data", "compile-cache", "results/tests"):
        assert not (hil_project.path / written).exists(), written
    assert result.duration < COLLECTION_BOUND_S, result.duration


def test_the_checks_load_no_framework(tmp_path):
    """What made the chain error cost ~5 s a test was TensorFlow loading before it; the
    checks read the blocks' declared formats and metrics only (collection time: below)."""
    (tmp_path / "models").symlink_to(REPO / "models")
    (tmp_path / "m.tflite").write_bytes(b"x")
    for name, (text, _) in PRERUN_SUITES.items():
        (tmp_path / name).write_text(text)
    script = (
        "import sys\n"
        "from kenning_hil.core.errors import ConfigurationError\n"
        "from kenning_hil.suites.loader import load_suite\n"
        f"for name in {sorted(PRERUN_SUITES)!r}:\n"
        "    suite = load_suite(name)\n"
        "    suite.check_blocks()\n"
        "    try:\n"
        "        suite.check_cases()\n"
        "    except ConfigurationError as exc:\n"
        "        print('error:', exc)\n"
        "print('loaded:', sorted(m for m in ('tensorflow', 'onnxruntime', 'tvm', 'torch')\n"
        "                        if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    lines = done.stdout.splitlines()
    assert sum(line.startswith("error: ") for line in lines) == len(PRERUN_SUITES), done.stdout
    assert lines[-1] == "loaded: []", done.stdout


def test_a_suite_of_possible_thresholds_still_collects(hil_project):
    """Latency, size and count thresholds apply to any dataset; a chain that connects
    (ONNX model -> ONNX Runtime quantizer) passes."""
    (hil_project.path / "ok.yaml").write_text(
        "dataset: {type: random, parameters: {samples: 5}}\n"
        "thresholds: {latency.p95: 10ms, instructions.p95: 1M, compiled_size: 1MiB}\n"
        f"models:\n  d: {{model: {DIGITS}}}\n"
        "optimizers:\n  int8: [{type: onnxruntime-quant}]\n")
    result = run(hil_project, "ok.yaml", "--target=host-onnxruntime", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["ok.yaml::d-int8[[]host-onnxruntime[]]"])


HIL_TEST = f"""
import pytest

def test_random_inputs(hil):
    result = hil.run(model={DIGITS!r}, dataset={{"type": "random",
                                                  "parameters": {{"samples": 5}}}})
    assert result.samples == 5
    with pytest.raises(AttributeError) as info:
        result.accuracy
    assert str(info.value) == (
        "Result has no attribute or metric 'accuracy': this run has no quality metrics "
        "(random inputs have no labels)")

def test_threshold_says_why(hil):
    hil.run(model={DIGITS!r}, dataset={{"type": "random", "parameters": {{"samples": 5}}}},
            thresholds={{"accuracy": 0.9}})

def test_synthetic_eembc_samples(hil, tmp_path):
    # the issue's case: EEMBC samples written synthetic, with random labels
    root = tmp_path / "syn"
    result = hil.run(model={DIGITS!r}, dataset={{"type": "eembc", "parameters": {{
        "root": str(root), "input_shape": [1, 64], "input_dtype": "float32",
        "synthetic_samples": 50, "synthetic_classes": 10}}}})
    assert result.samples > 0 and (root / "SYNTHETIC.txt").is_file()
    with pytest.raises(AttributeError) as info:
        result.accuracy
    assert str(info.value) == (
        "Result has no attribute or metric 'accuracy': this run has no quality metrics "
        f"(the samples in {{root}} are synthetic, with random labels)")
"""


def test_result_accuracy_of_a_run_without_quality_metrics_says_why(hil_project):
    hil_project.makepyfile(test_random=HIL_TEST)
    result = run(hil_project, "--target=host-onnxruntime")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*no metric 'accuracy': this run has no quality metrics (random inputs have no labels)*"])


CHAIN_TEST = """
import json, sys
from pathlib import Path

def test_impossible_chain(hil):
    try:
        hil.run(model={model!r}, optimizer="tflite",
                dataset={{"type": "random", "parameters": {{"samples": 2}}}})
    finally:
        loaded = sorted(m for m in {frameworks!r} if m in sys.modules)
        Path("frameworks-loaded.json").write_text(json.dumps(loaded))
"""


def test_an_impossible_chain_in_a_hil_test_fails_before_any_framework_loads(hil_project,
                                                                              models_dir):
    """hil.run cannot be checked at collection, but its chain is checked before the compile
    cache key asks the TFLite converter its TensorFlow version (which imported TensorFlow:
    23 s on a loaded machine, before the same error)."""
    pytest.importorskip("ai_edge_litert", reason="host-litert needs the 'litert' extra")
    model = models_dir / "mlperf_tiny" / "kws_ref_model.tflite"
    if not model.is_file():
        pytest.skip(f"{model} absent (set KENNING_HIL_MODELS)")
    hil_project.makepyfile(test_chain=CHAIN_TEST.format(model=str(model),
                                                        frameworks=FRAMEWORKS))
    result = run(hil_project, "--target=host-litert")
    result.assert_outcomes(failed=1)
    assert ("TFLiteCompiler cannot take the model from TFLiteWrapper: TFLiteWrapper outputs "
            "['tflite'], TFLiteCompiler accepts ['onnx', 'keras', 'saved_model'] (need a common "
            "format)") in result.stdout.lines, result.stdout.str()
    loaded = json.loads((hil_project.path / "frameworks-loaded.json").read_text())
    assert loaded == [], loaded

"""Suites collected by a real pytest process: ids, compile counts (also under -n 2),
combinations a target cannot take left out (counted, listed), others skipped with the reason,
pinned targets, --suite."""

import os
import xml.etree.ElementTree as ET

from kenning_hil.targets.catalog import SHIPPED_TARGETS_DIR, TargetCatalog
from tests.plugin.conftest import run, write_target

pytest_plugins = ["pytester"]

# A real optimizer: re-serialises the ONNX model with a metadata property, and counts its
# compilations in a file (one line per compile, from whichever process compiled).
OPTIMIZER = '''
import os
import onnx
from kenning_hil.core.optimizer import Optimizer


class MetadataOptimizer(Optimizer):
    arguments_structure = {
        "tag": {"type": str, "default": "x"},
        "counter": {"type": str, "required": True},
    }
    input_formats = ["onnx"]
    output_formats = ["onnx"]

    def __init__(self, dataset=None, compiled_model_path=None, tag="x", counter=""):
        super().__init__(dataset, compiled_model_path)
        self.tag, self.counter = tag, counter

    def compile(self, input_model_path, io_spec=None):
        model = onnx.load(str(input_model_path))
        onnx.helper.set_model_props(model, {"kenning_hil_tag": self.tag})
        onnx.save(model, str(self.compiled_model_path))
        self.save_io_specification(input_model_path, io_spec)
        with open(self.counter, "a") as f:
            f.write(f"{os.getpid()} {self.tag}\\n")

    def get_framework_and_version(self):
        return "onnx", onnx.__version__
'''

SUITE = """
name: tagged
dataset: digits
samples: 20
thresholds: {{accuracy: 0.8, compiled_size: 64KiB}}
models:
  digits: {{model: models/digits/digits-mlp.onnx}}
optimizers:
  tag-a: [{{type: metaopt.MetadataOptimizer, parameters: {{tag: a, counter: {counter}}}}}]
  tag-b: [{{type: metaopt.MetadataOptimizer, parameters: {{tag: {tag_b}, counter: {counter}}}}}]
"""


def tagged_project(project, tag_b: str = "b"):
    project.makepyfile(metaopt=OPTIMIZER)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(project.path), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    counter = project.path / "compiles.txt"
    (project.path / "suites").mkdir(exist_ok=True)
    (project.path / "suites" / "tagged.yaml").write_text(
        SUITE.format(counter=counter, tag_b=tag_b)
    )
    for name in ("host-a", "host-b", "host-c"):
        write_target(project, name, "kind: host\nruntime: onnxruntime\ninstances: 2\n")
    return counter


TARGETS = ("--target=host-a", "--target=host-b", "--target=host-c")


def compiles(counter) -> list[str]:
    return counter.read_text().split()[1::2] if counter.exists() else []


def test_six_tests_two_pairs_compile_twice(hil_project, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    counter = tagged_project(hil_project)
    result = run(hil_project, "suites/tagged.yaml", *TARGETS, "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines([
        "suites/tagged.yaml::digits-tag-a[[]host-a[]] PASSED*",
        "suites/tagged.yaml::digits-tag-a[[]host-b[]] PASSED*",
        "suites/tagged.yaml::digits-tag-a[[]host-c[]] PASSED*",
        "suites/tagged.yaml::digits-tag-b[[]host-a[]] PASSED*",
    ])
    assert sorted(compiles(counter)) == ["a", "b"]
    # in a later run, changing one optimizer parameter recompiles that pair only ('a' comes
    # from the cache the first run filled)
    tagged_project(hil_project, tag_b="b2")
    run(hil_project, "suites/tagged.yaml", *TARGETS).assert_outcomes(passed=6)
    assert sorted(compiles(counter)) == ["a", "b", "b2"]


def test_compile_once_per_pair_under_xdist(hil_project, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    counter = tagged_project(hil_project)
    result = run(hil_project, "-p", "xdist", "-n", "2", "suites/tagged.yaml", *TARGETS)
    result.assert_outcomes(passed=6)
    lines = counter.read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == ["a", "b"]


def test_incompatible_and_pinned_combinations_skip_with_reason(hil_project, models_dir):
    """A format the target can never take is not a test: left out at collection, counted in
    one line (listed with -v) and in the report. What could run but cannot here skips: a
    model found too large for the RAM once compiled, a pin to a target not selected."""
    write_target(hil_project, "tiny-ram", "kind: host\nruntime: onnxruntime\n"
                                          "memory: {ram: 1KiB}\n")
    write_target(hil_project, "spare-board", "kind: host\nruntime: onnxruntime\n")
    (hil_project.path / "mixed.yaml").write_text(
        """
models:
  digits: {model: models/digits/digits-mlp.onnx, dataset: digits, samples: 10}
  kws:
    model: mlperf_tiny/kws_ref_model.tflite
    dataset: random
  board-only:
    model: models/digits/digits-mlp.onnx
    dataset: digits
    targets: [spare-board]
"""
    )
    result = run(hil_project, "mixed.yaml", "--target=host-onnxruntime", "--target=tiny-ram",
                 "--junitxml=junit.xml", f"--models-path={models_dir}", "-v")
    result.assert_outcomes(passed=1, skipped=2)
    skipped = {
        case.get("name"): case.find("skipped").get("message")
        for case in ET.parse(hil_project.path / "junit.xml").iter("testcase")
        if case.find("skipped") is not None
    }
    assert skipped == {
        "digits-none[tiny-ram]": "model of 19770 B is larger than target 'tiny-ram' RAM (1024 B)",
        "board-only-none[spare-board]":
            "suite pins target spare-board, not selected (run with --target spare-board)",
    }
    result.stdout.fnmatch_lines([
        "2 model × target combinations not applicable: formats",
        "  mixed.yaml::kws-none[[]host-onnxruntime[]]: target 'host-onnxruntime' runs onnx "
        "models; this model is tflite",
        "  mixed.yaml::kws-none[[]tiny-ram[]]: target 'tiny-ram' runs onnx models; this model "
        "is tflite",
        "*= 1 passed, 2 skipped, 2 not applicable in *",
    ])
    report = (hil_project.path / "results" / "report.md").read_text()
    assert ("| mixed.yaml::kws-none[tiny-ram] | - | - | - | - | - | not applicable: target "
            "'tiny-ram' runs onnx models; this model is tflite |") in report
    assert "2 not applicable" in report.splitlines()[2]


def test_suite_option_and_collection_errors(hil_project):
    (hil_project.path / "s.yaml").write_text(
        "models:\n  d: {model: models/digits/digits-mlp.onnx, dataset: digits, samples: 5}\n"
    )
    hil_project.makepyfile(test_other="def test_other():\n    pass\n")
    result = run(hil_project, "--suite=s.yaml", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["s.yaml::d-none[[]host-onnxruntime[]]", "1 test collected*"])
    assert "test_other" not in result.stdout.str()  # --suite alone runs only the suite
    (hil_project.path / "bad.yaml").write_text("models:\n  d: {modle: x.onnx}\n")
    bad = run(hil_project, "bad.yaml")
    bad.stdout.re_match_lines([r".*bad.yaml: unknown key 'models.d.modle' \(did you mean "
                               r"'models.d.model'\? known keys of models.d: .*"])
    assert bad.ret != 0
    assert "kenning_hil/pytest_plugin/" not in bad.stdout.str()  # the message alone, no traceback


def test_unknown_suite_targets_are_collection_errors(hil_project):
    """A misspelled target in a suite used to skip its tests as "not selected"; now it is a
    collection error naming the suite file, the key and the known targets."""
    write_target(hil_project, "spare-board", "kind: host\nruntime: onnxruntime\n")
    model = "{model: models/digits/digits-mlp.onnx, dataset: digits}"
    cases = {
        "top.yaml": (f"targets: [host-onnxruntme]\nmodels:\n  d: {model}\n", "targets"),
        "model.yaml": ("models:\n  d: {model: models/digits/digits-mlp.onnx, "
                       "dataset: digits, targets: [spare-bord]}\n", "models.d.targets"),
        "row.yaml": (f"models:\n  d: {model}\nmatrix:\n  - {{models: [d], "
                     f"targets: [spare-board, qemu-m5]}}\n", "matrix.0.targets"),
    }
    for name, (text, _) in cases.items():
        (hil_project.path / name).write_text(text)
    result = run(hil_project, *cases, "--collect-only", "-q")
    assert result.ret == 2  # collection errors
    typos = {"top.yaml": "host-onnxruntme", "model.yaml": "spare-bord", "row.yaml": "qemu-m5"}
    # the project's spare-board and the package's shipped targets
    known = ", ".join(sorted(["spare-board", *TargetCatalog([SHIPPED_TARGETS_DIR]).names()]))
    for name, (_, key) in cases.items():
        result.stdout.fnmatch_lines([
            f"*{name}: key '{key}': unknown target '{typos[name]}' (known targets: {known})",
        ])
    assert "not selected" not in result.stdout.str()


def test_ini_suites_join_only_runs_without_path_arguments(hil_project):
    """`hil_suite` in the ini works like `testpaths`: its suites are collected by a bare
    `pytest`, but not when the command line names paths; `--suite` always adds."""
    ini = hil_project.path / "tox.ini"
    ini.write_text(ini.read_text().rstrip()
                   + "\ntestpaths = checks\nhil_suite = matrices/s1.yaml\n")
    suite = "models:\n  d: {model: models/digits/digits-mlp.onnx, dataset: digits, samples: 5}\n"
    (hil_project.path / "matrices").mkdir()
    (hil_project.path / "matrices" / "s1.yaml").write_text(suite)
    (hil_project.path / "matrices" / "s2.yaml").write_text(suite)
    (hil_project.path / "checks").mkdir()
    (hil_project.path / "checks" / "test_x.py").write_text("def test_g():\n    pass\n")
    bare = run(hil_project, "-v")  # runs the suite on a real server, and the testpaths
    bare.assert_outcomes(passed=2)
    bare.stdout.fnmatch_lines_random(["matrices/s1.yaml::d-none[[]host-onnxruntime[]] PASSED*",
                                      "checks/test_x.py::test_g PASSED*"])
    one = run(hil_project, "checks/test_x.py::test_g", "-v")
    one.assert_outcomes(passed=1)
    assert "s1.yaml" not in one.stdout.str()
    added = run(hil_project, "checks/test_x.py", "--suite=matrices/s2.yaml", "--collect-only",
                "-q")
    added.stdout.fnmatch_lines(["checks/test_x.py::test_g",
                                "matrices/s2.yaml::d-none[[]host-onnxruntime[]]",
                                "2 tests collected*"])
    assert "s1.yaml" not in added.stdout.str()


MODEL = "{model: models/digits/digits-mlp.onnx}"
BAD_SUITES = {
    "nofile.yaml": (
        "dataset: digits\nmodels:\n  kws: {model: models/digits/nope.onnx}\n",
        "nofile.yaml: key 'models.kws.model': file models/digits/nope.onnx does not exist "
        "(searched *",
    ),
    "nodata.yaml": (
        "models:\n  d: {model: models/digits/digits-mlp.onnx, dataset: nodata}\n",
        "nodata.yaml: key 'models.d.dataset': unknown dataset type 'nodata' (known: digits, *",
    ),
    "badparam.yaml": (
        f"dataset: digits\nmodels:\n  d: {MODEL}\noptimizers:\n"
        "  int8: [{type: onnxruntime-quant, parameters: {calibration_samplez: 3}}]\n",
        "badparam.yaml: key 'optimizers.int8.0.parameters': ONNXRuntimeQuantizer: unknown "
        "parameter 'calibration_samplez' (known parameters: *calibration_max_samples*",
    ),
    "badtype.yaml": (
        f"dataset: digits\nmodels:\n  d: {MODEL}\noptimizers:\n"
        "  int8: [{type: onnxruntime-quantt}]\n",
        "badtype.yaml: key 'optimizers.int8.0.type': unknown optimizer type "
        "'onnxruntime-quantt' (known: *",
    ),
    "badvalue.yaml": (
        f"dataset: dg\ndatasets:\n  dg: {{type: digits, parameters: {{subset: 3}}}}\n"
        f"models:\n  d: {MODEL}\n",
        "badvalue.yaml: key 'datasets.dg.parameters': DigitsDataset: parameter 'subset' must be*",
    ),
}


def test_suite_blocks_are_checked_at_collection(hil_project):
    """Missing model files, unknown block types and bad parameters used to fail every test
    at run time without naming the suite; now each is one collection error naming the suite
    file and key."""
    for name, (text, _) in BAD_SUITES.items():
        (hil_project.path / name).write_text(text)
    result = run(hil_project, *BAD_SUITES, "--collect-only", "-q")
    assert result.ret == 2
    result.stdout.fnmatch_lines([f"*Interrupted: {len(BAD_SUITES)} errors during collection*"])
    for _, message in BAD_SUITES.values():
        result.stdout.fnmatch_lines([message])
    assert "scenario 'optimizers[0]'" not in result.stdout.str()
    assert "kenning_hil/pytest_plugin/" not in result.stdout.str()


def test_a_misspelled_threshold_metric_is_named_unknown(hil_project):
    """A threshold on a metric the dataset does not produce fails, saying it is unknown,
    suggesting the close name and listing the run's metrics (a real run on a real server)."""
    (hil_project.path / "typo.yaml").write_text(
        f"dataset: digits\nsamples: 5\nthresholds: {{acuracy: 0.5}}\nmodels:\n  d: {MODEL}\n"
    )
    result = run(hil_project, "typo.yaml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "d (no optimizer) on host-onnxruntime: 1 check(s) failed",
        "  - typo.yaml: thresholds: unknown metric 'acuracy' (did you mean 'accuracy'*?); this "
        "run's metrics: accuracy, compiled_size, latency.max, *",
    ])
    assert "was not measured" not in result.stdout.str()

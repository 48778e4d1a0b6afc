"""`kenning-hil suite`: pytest in a child process with the plugin, suite tests only, through
the console script, on real `kenning-hil serve` host targets. It selects what pytest selects
(-k, -m) and gives pytest's ids, so both share baselines; the project's pytest ini keys apply;
failures exit 1 with results kept; user errors exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripted_latency import TARGET_NAME, scripted_env, write_scripted_target
from tests.test_cli import console_script

REPO = Path(__file__).resolve().parents[1]
SUITE = """
name: s
thresholds: {{accuracy: {accuracy}}}
dataset: {{type: digits, parameters: {{subset: test}}}}
samples: 60
models:
  digits: {{model: models/digits/digits-mlp.onnx}}
optimizers:
  fp32: []
  int8: [{{type: onnxruntime-quant}}]
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "models").symlink_to(REPO / "models")
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "s.yaml").write_text(SUITE.format(accuracy=0.9))
    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\nhil_lock_dir = {tmp_path / 'locks'}\nhil_report = results\n"
        f"hil_compile_cache = cache\nhil_timeout = 60\n"
    )
    return tmp_path


def suite(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([console_script(), "suite", *args], cwd=project, capture_output=True,
                          text=True, timeout=300)


def pytest_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=300)


def collected_ids(done: subprocess.CompletedProcess) -> list[str]:
    """The test ids `--collect-only -q` listed (one a line, before its count)."""
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def table_row(stdout: str, test_id: str) -> str:
    """The kenning-hil results table's row of one test (the plugin prints the table)."""
    [row] = [line for line in stdout.splitlines() if line.startswith(f"{test_id}  ")]
    return row


def test_runs_the_suite_with_pytests_ids_and_the_projects_ini(project):
    done = suite(project, "suites/s.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    # pytest's own header: its rootdir and configuration file
    assert f"rootdir: {project}\nconfigfile: pytest.ini\n" in done.stdout
    ids = ["suites/s.yaml::digits-fp32[host-onnxruntime]",
           "suites/s.yaml::digits-int8[host-onnxruntime]"]
    for test_id in ids:
        assert table_row(done.stdout, test_id).endswith("  passed")
    assert "= 2 passed in " in done.stdout
    assert f"results: {project / 'results'} (report.md" in done.stdout
    # the ini's report and cache directories were used, not the defaults
    summary = json.loads((project / "results" / "summary.json").read_text())
    assert [row["test"] for row in summary] == ids
    assert all(row["accuracy"] >= 0.9 for row in summary)
    assert (project / "results" / "report.md").is_file()
    assert (project / "results" / "report.rst").is_file()
    assert any((project / "cache").iterdir())
    records = [json.loads(p.read_text()) for p in (project / "results" / "tests").glob("*.json")]
    assert sorted(r["test"] for r in records) == ids
    assert all(r["samples"] == 60 for r in records)
    assert collected_ids(pytest_run(project, "--collect-only", "-q", "suites/s.yaml")) == ids


def test_baselines_are_shared_with_pytest(project, monkeypatch):
    # ONNX Runtime reporting inference times this test scripted (tests/scripted_latency.py):
    # the second run compares latency with the first without depending on how busy the
    # machine is (real timings were seen 4.7x apart on a loaded CI runner)
    scripted_env(monkeypatch)
    write_scripted_target(project, [50e-6, 52e-6, 49e-6, 3e-3, 51e-6])
    target = ("--target", TARGET_NAME)
    done = suite(project, "suites/s.yaml", *target, "--baseline", "baselines",
                 "--update-baseline")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((project / "baselines").glob("*.json"))) == 2
    assert f"baselines ({project / 'baselines'}): 2 written" in done.stdout
    # pytest reads the baselines kenning-hil wrote: same ids, same files
    checked = pytest_run(project, "suites/s.yaml", *target, "--baseline", "baselines", "-W",
                         "error::UserWarning")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "2 passed" in checked.stdout
    assert f"baselines ({project / 'baselines'}): 2 compared" in checked.stdout
    # and judge them: the same runtime twice as slow fails both tests on latency
    write_scripted_target(project, [100e-6, 104e-6, 98e-6, 6e-3, 102e-6])
    # -rN: no short summary, which repeats the message in full when pytest sees a CI
    # environment (CI, BUILD_NUMBER) and cuts it to one line elsewhere
    slower = pytest_run(project, "suites/s.yaml", *target, "--baseline", "baselines", "-rN")
    assert slower.returncode == 1, slower.stdout[-3000:]
    assert slower.stdout.count("baseline regression: latency.p10 regressed: measured 98.0 µs, "
                               "baseline 49.0 µs") == 2, slower.stdout[-3000:]
    assert f"baselines ({project / 'baselines'}): 2 regressed" in slower.stdout


def test_a_failed_threshold_exits_1_and_keeps_the_results(project):
    (project / "suites" / "s.yaml").write_text(SUITE.format(accuracy=0.9999))
    done = suite(project, "suites/s.yaml", "-k", "fp32")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("  failed: digits (no optimizer) on host-onnxruntime: 1 check(s) failed - accuracy"
            in table_row(done.stdout, "suites/s.yaml::digits-fp32[host-onnxruntime]"))
    assert "digits-int8" not in done.stdout  # -k selected fp32 only
    [record] = [json.loads(p.read_text()) for p in (project / "results" / "tests").glob("*")]
    assert record["metrics"]["accuracy"] < 0.9999
    assert json.loads((project / "results" / "summary.json").read_text())[0]["outcome"] \
        == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["suites/none.yaml"], "file or directory not found: suites/none.yaml"),
        ([], "--hil-suites-only: no suite given (name suite files or directories, or set "
             "hil_suite in the project's pytest configuration)"),
        (["suites/s.yaml", "--target", "no-such-board"], "unknown target 'no-such-board'"),
        (["suites/s.yaml", "-k", "nothing-matches"],
         "no tests selected (-k 'nothing-matches' matched none)"),
        (["suites/s.yaml", "-k", "fp32 and (int8"],
         "Wrong expression passed to '-k': fp32 and (int8: "),
        (["suites/s.yaml", "--samples", "0"], "--samples / hil_samples: must be positive"),
        (["suites/s.yaml", "--update-baseline"], "--update-baseline needs --baseline DIR"),
        (["suites/s.yaml", "--hil-report", "/proc/no/such"],
         "--hil-report / hil_report: cannot write to /proc/no/such"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(project, args, message):
    done = suite(project, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("kenning-hil: error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (project / "results" / "summary.json").exists()  # nothing ran: no report


def test_a_broken_suite_exits_2_with_pytests_collection_error(project):
    (project / "suites" / "s.yaml").write_text(SUITE.format(accuracy=0.9).replace(
        "dataset:", "datset:"))
    done = suite(project, "suites/s.yaml")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ERROR collecting suites/s.yaml" in done.stdout
    assert "unknown key 'datset'" in done.stdout
    assert done.stderr.strip() == ("kenning-hil: error: pytest was interrupted: errors while "
                                   "collecting the suites, or a stop (its output above says "
                                   "which)")


def test_finds_the_rootdir_and_configuration_as_pytest_does(project):
    """Run from suites/ with a pytest.toml at the root: ids, settings and relative paths are
    the same as pytest's from there."""
    (project / "pytest.ini").unlink()
    (project / "pytest.toml").write_text(
        f'[pytest]\nhil_lock_dir = "{project / "locks"}"\nhil_report = "from-toml"\n'
        f'hil_samples = "12"\n')
    done = suite(project / "suites", "s.yaml", "-k", "fp32 and not int8",
                 "--baseline", "../bl", "--update-baseline")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rootdir: {project}\nconfigfile: pytest.toml\n" in done.stdout
    assert table_row(done.stdout, "suites/s.yaml::digits-fp32[host-onnxruntime]").endswith(
        "  passed")
    [record] = [json.loads(p.read_text())
                for p in (project / "from-toml" / "tests").glob("*.json")]
    assert record["samples"] == 12  # the ini's cap
    # a command-line path starts where the command ran, as pytest's own options do
    assert len(list((project / "bl").glob("*.json"))) == 1
    checked = pytest_run(project / "suites", "s.yaml", "-k", "fp32", "--baseline", "../bl",
                         "-W", "error::UserWarning")
    assert checked.returncode == 0, checked.stdout[-3000:]


def test_directories_the_ini_suite_marks_and_duplicate_targets(project):
    (project / "suites" / "gpu.yaml").write_text(SUITE.format(accuracy=0.9).replace(
        "name: s", "name: g\nmarks: [gpu]"))
    with open(project / "pytest.ini", "a") as ini:
        ini.write("hil_suite = suites\n")
    from kenning_hil.targets.gpu import detect_gpus

    gpu = detect_gpus()
    done = suite(project, "--target", "host-onnxruntime,host-onnxruntime", "-k", "fp32")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["test"]: row
            for row in json.loads((project / "results" / "summary.json").read_text())}
    # one per suite: the target named twice runs once
    assert sorted(rows) == ["suites/gpu.yaml::digits-fp32[host-onnxruntime]",
                            "suites/s.yaml::digits-fp32[host-onnxruntime]"]
    if not gpu.visible:
        gpu_row = rows["suites/gpu.yaml::digits-fp32[host-onnxruntime]"]
        assert (gpu_row["outcome"], gpu_row["reason"]) == ("skipped", gpu.describe())
    not_gpu = suite(project, "suites", "-m", "not gpu", "-k", "fp32")
    assert not_gpu.returncode == 0, not_gpu.stdout + not_gpu.stderr
    assert "suites/gpu.yaml" not in not_gpu.stdout
    assert table_row(not_gpu.stdout, "suites/s.yaml::digits-fp32[host-onnxruntime]").endswith(
        "  passed")


PLAIN_TEST = """
def test_hil_in_its_name():
    pass
"""


@pytest.fixture
def mixed_project(project):
    """Two suites (one gpu-marked) and, beside them, plain tests pytest also collects: one in
    suites/, one in the ini's testpaths."""
    (project / "suites" / "gpu.yaml").write_text(SUITE.format(accuracy=0.9).replace(
        "name: s", "name: g\nmarks: [gpu]"))
    (project / "suites" / "test_beside.py").write_text(PLAIN_TEST)
    (project / "tests").mkdir()
    (project / "tests" / "test_plain.py").write_text(PLAIN_TEST)
    with open(project / "pytest.ini", "a") as ini:
        ini.write("hil_suite = suites\ntestpaths = tests\n")
    return project


@pytest.mark.parametrize(("flag", "expression"), [
    ("-k", "hil"), ("-k", "int8 or gpu.yaml"), ("-k", "HIL and not fp32"),
    ("-m", "not gpu"), ("-m", "hil and gpu"),
])
def test_selects_what_pytest_selects(mixed_project, flag, expression):
    """`kenning-hil suite SUITES -k/-m E` selects the tests `pytest SUITES -k/-m E` selects
    (pytest's expressions: marks are keywords, so `-k hil` selects every suite test)."""
    paths = ["suites/s.yaml", "suites/gpu.yaml"]
    ours = collected_ids(suite(mixed_project, *paths, flag, expression, "--collect-only"))
    theirs = collected_ids(pytest_run(mixed_project, "--collect-only", "-q", *paths,
                                      flag, expression))
    assert ours == theirs and ours


def test_only_suite_tests_run(mixed_project):
    """With no paths, the ini's hil_suite suites only (not testpaths); with a directory, its
    suites and not the plain tests pytest would also collect there."""
    with_plain = collected_ids(pytest_run(mixed_project, "--collect-only", "-q", "-k", "hil"))
    assert "tests/test_plain.py::test_hil_in_its_name" in with_plain
    expected = [test_id for test_id in with_plain if test_id.startswith("suites/")
                and ".yaml::" in test_id]
    assert len(expected) == 4
    assert collected_ids(suite(mixed_project, "-k", "hil", "--collect-only")) == expected
    in_directory = collected_ids(pytest_run(mixed_project, "--collect-only", "-q", "suites"))
    assert "suites/test_beside.py::test_hil_in_its_name" in in_directory
    assert collected_ids(suite(mixed_project, "suites", "--collect-only")) == [
        test_id for test_id in in_directory if ".yaml::" in test_id]


def test_a_run_selects_and_reports_what_pytest_selects(project):
    """The run itself (not only its collection): what ran is what pytest selects."""
    done = suite(project, "suites/s.yaml", "-k", "hil and int8", "--samples", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [row["test"] for row in json.loads((project / "results" / "summary.json").read_text())]
    assert ran == collected_ids(pytest_run(project, "--collect-only", "-q", "suites/s.yaml",
                                           "-k", "hil and int8"))
    assert ran == ["suites/s.yaml::digits-int8[host-onnxruntime]"]


def test_the_plugin_is_named_when_autoloading_is_off(project, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    ids = collected_ids(suite(project, "suites/s.yaml", "--collect-only"))
    assert ids == ["suites/s.yaml::digits-fp32[host-onnxruntime]",
                   "suites/s.yaml::digits-int8[host-onnxruntime]"]

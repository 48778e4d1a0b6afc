"""`kenning-hil suite`: suites run without pytest, through the console script, on real
`kenning-hil serve` host targets. Same test ids as pytest's, so both share baselines; the
project's pytest ini keys apply; failures exit 1 with results kept; user errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_runs_the_suite_with_pytests_ids_and_the_projects_ini(project):
    done = suite(project, "suites/s.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rootdir: {project}, configfile: {project / 'pytest.ini'}" in done.stdout
    ids = ["suites/s.yaml::digits-fp32[host-onnxruntime]",
           "suites/s.yaml::digits-int8[host-onnxruntime]"]
    for test_id in ids:
        assert f"{test_id} passed" in done.stdout
    assert "2 passed; results:" in done.stdout
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
    collected = pytest_run(project, "--collect-only", "-q", "suites/s.yaml")
    assert collected.stdout.split("\n\n")[0].split() == ids


def test_baselines_are_shared_with_pytest(project):
    done = suite(project, "suites/s.yaml", "--baseline", "baselines", "--update-baseline")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((project / "baselines").glob("*.json"))) == 2
    assert f"baselines ({project / 'baselines'}): 2 written" in done.stdout
    # pytest reads the baselines kenning-hil wrote: same ids, same files
    checked = pytest_run(project, "suites/s.yaml", "--baseline", "baselines", "-W",
                         "error::UserWarning")
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "2 passed" in checked.stdout
    assert f"baselines ({project / 'baselines'}): 2 compared" in checked.stdout


def test_a_failed_threshold_exits_1_and_keeps_the_results(project):
    (project / "suites" / "s.yaml").write_text(SUITE.format(accuracy=0.9999))
    done = suite(project, "suites/s.yaml", "-k", "fp32")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("suites/s.yaml::digits-fp32[host-onnxruntime] failed: digits (no optimizer) on "
            "host-onnxruntime: 1 check(s) failed - accuracy") in done.stdout
    assert "int8" not in done.stdout  # -k selected fp32 only
    [record] = [json.loads(p.read_text()) for p in (project / "results" / "tests").glob("*")]
    assert record["metrics"]["accuracy"] < 0.9999
    assert json.loads((project / "results" / "summary.json").read_text())[0]["outcome"] \
        == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["suites/none.yaml"], "no such suite file or directory: suites/none.yaml"),
        (["suites/s.yaml", "--target", "no-such-board"], "unknown target 'no-such-board'"),
        (["suites/s.yaml", "-k", "nothing-matches"],
         "no tests selected (-k 'nothing-matches' matched none)"),
        (["suites/s.yaml", "-k", "fp32 and (int8"], "-k 'fp32 and (int8': ends too early"),
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
    assert f"rootdir: {project}, configfile: {project / 'pytest.toml'}" in done.stdout
    assert "suites/s.yaml::digits-fp32[host-onnxruntime] passed" in done.stdout
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
    # progress lines: "<id> <outcome> (<seconds> s)"
    lines = [line for line in done.stdout.splitlines()
             if line.startswith("suites/") and line.endswith(" s)")]
    assert len(lines) == 2  # one per suite: the target named twice runs once
    gpu_line = next(line for line in lines if line.startswith("suites/gpu.yaml"))
    if not gpu.visible:
        assert f"skipped: {gpu.describe()}" in gpu_line
    not_gpu = suite(project, "suites", "-m", "not gpu", "-k", "fp32")
    assert not_gpu.returncode == 0, not_gpu.stdout + not_gpu.stderr
    assert "suites/gpu.yaml" not in not_gpu.stdout
    assert "suites/s.yaml::digits-fp32[host-onnxruntime] passed" in not_gpu.stdout

"""docs/own-classes.md, run as written: its Dataset, ModelWrapper and Runtime modules in a
project folder named by the ini's `pythonpath`, a host target whose server loads the runtime
from there, a suite using them, run by `kenning-hil suite`; then the results exported by
`kenning-hil export-measurements` as Kenning measurements files (#24)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "own-classes.md"
BLOCK = re.compile(r"```(?:python|yaml|ini)\n# (?P<path>\S+)\n(?P<body>.*?)```", re.S)


def doc_files() -> dict[str, str]:
    """The files the document shows: fenced blocks whose first line is '# <path>'."""
    return {m["path"]: m["body"] for m in BLOCK.finditer(DOC.read_text())}


def kenning_hil(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kenning_hil.cli", *args], cwd=project,
                          capture_output=True, text=True, timeout=600, check=False)


def test_own_classes_from_the_docs_run_and_export(hil_project):
    pytest.importorskip("onnxruntime")
    from sklearn.datasets import load_digits

    project = hil_project.path
    files = doc_files()
    assert {"pytest.ini", "lib/arraysdata.py", "lib/pixelwrapper.py", "lib/onethread.py",
            "targets/host-onethread.yaml", "suites/own.yaml"} <= set(files)
    for path, body in files.items():
        if path == "pytest.ini":  # the fixture's ini (locks, report dir) gets its keys
            ini = project / "tox.ini"
            ini.write_text(ini.read_text().rstrip("\n") + "\n" + body.replace("[pytest]\n", ""))
            continue
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(body)
    digits = load_digits()
    data = project / "data" / "digits"
    data.mkdir(parents=True)
    np.save(data / "pixels.npy", digits.data.astype(np.uint8))
    np.save(data / "labels.npy", digits.target.astype(np.int64))
    before = sorted(p.name for p in data.iterdir())

    done = kenning_hil(project, "suite", "suites/own.yaml", "--target", "host-onethread")
    assert done.returncode == 0, (done.stdout or "")[-3000:] + done.stderr[-2000:]
    assert sorted(p.name for p in data.iterdir()) == before  # the data folder is not written
    results = sorted((project / "results" / "tests").glob("*.json"))
    assert len(results) == 1
    record = json.loads(results[0].read_text())
    assert record["target"] == "host-onethread" and record["metrics"]["accuracy"] >= 0.9

    done = kenning_hil(project, "export-measurements", "results", "--out", "kenning")
    assert done.returncode == 0, done.stderr
    exported = json.loads((project / "kenning" / results[0].name).read_text())
    measured = record["measurements"]
    # Kenning's keys at the top level, in seconds; the ns figures the harness wrote beside
    assert exported["format_version"] == 2
    for key in ("target_inference_step", "protocol_inference_step"):
        assert exported[key] == pytest.approx([v / 1e9 for v in measured[key]])
        assert exported[key + "_ns"] == measured[key]
        assert all(isinstance(v, float) and v < 60 for v in exported[key])
    assert exported["total"] == 20 and exported["accuracy"] == record["metrics"]["accuracy"]
    matrix = exported["eval_confusion_matrix"]
    assert len(matrix) == len(exported["class_names"]) == 10
    assert exported["model_name"] == record["model"] and exported["target"] == "host-onethread"

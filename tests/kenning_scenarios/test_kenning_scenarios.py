"""Scenario files in Kenning's spelling (class paths and short names, Kenning's parameter
names, kenning:/// URIs, YAML, tab-indented JSON, platform, report) run unedited with
`kenning-hil run` on the digits data, and write measurements in Kenning's units."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.skips import require_simulation

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SAMPLES = "12"
LOCAL = {  # scenario file -> modules it needs
    "onnxruntime.json": ["onnxruntime"],
    "tflite-int8.yml": ["tensorflow", "ai_edge_litert"],
    "tflite-tabs-deduced-runtime.json": ["tensorflow", "ai_edge_litert"],
    "tvm-target-string.json": ["tvm"],
    "tvm-dict-target.yml": ["tvm"],
    "sleeping-runtime.json": ["onnxruntime"],
}
SERVER_PORT = 12461  # the port client-server-tcp.json names


def kenning_hil(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "kenning_hil.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory like a user's project: the scenarios' relative paths (./build, models/)
    resolve there, so parallel tests never share a build folder."""
    (tmp_path / "models").symlink_to(REPO / "models")
    return tmp_path


def need(*modules: str) -> None:
    for module in modules:
        pytest.importorskip(module, reason=f"{module} is not installed")


def run_scenario(name: str, workdir: Path, *extra: str) -> dict:
    output = workdir / "measurements.json"
    done = kenning_hil("run", str(HERE / name), "--samples", SAMPLES, "--output", str(output),
                       *extra, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


def check_kenning_file(data: dict, accuracy: float = 0.9) -> None:
    """What Kenning's report tooling reads: times in seconds under Kenning's keys (the ns
    figures beside them agree), scalars as scalars, a square confusion matrix with names."""
    assert data["format_version"] == 2
    assert data["accuracy"] >= accuracy and data["total"] == int(SAMPLES)
    matrix = data["eval_confusion_matrix"]
    assert len(matrix) == len(data["class_names"]) == 10 and all(len(r) == 10 for r in matrix)
    steps = data["target_inference_step"]
    assert len(steps) == int(SAMPLES) and all(isinstance(v, float) for v in steps)
    assert steps == pytest.approx([v / 1e9 for v in data["target_inference_step_ns"]])
    assert all(0 < v < 60 for v in steps)  # seconds: a nanosecond figure would be >= 1000
    ends = data["target_inference_step_timestamp"]
    starts = data["target_inference_step_timestamp_ns"]
    assert ends == pytest.approx([(s + d) / 1e9 for s, d in
                                  zip(starts, data["target_inference_step_ns"])])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOCAL))
def test_kenning_scenario_runs_unedited(name, workdir):
    need(*LOCAL[name])
    data = run_scenario(name, workdir)
    check_kenning_file(data)


def test_units_are_seconds_against_a_sleeping_runtime(workdir):
    """The runtime sleeps 20 ms per inference: Kenning's key holds at least 0.02 (seconds),
    never 2e7 (nanoseconds); an upper bound would depend on the machine's load."""
    need("onnxruntime")
    data = run_scenario("sleeping-runtime.json", workdir)
    assert all(0.02 <= v < 60 for v in data["target_inference_step"])
    assert all(v >= 20_000_000 for v in data["target_inference_step_ns"])


def test_report_entry_names_the_measurements_file(workdir):
    """Kenning's `report.parameters.measurements[0]` is where the file goes; a Kenning URI
    resolves against ./models; LocalPlatform runs here."""
    need("onnxruntime")
    done = kenning_hil("run", str(HERE / "onnxruntime.json"), "--samples", SAMPLES,
                       cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    written = workdir / "build" / "kenning-scenarios" / "onnxruntime.json"
    check_kenning_file(json.loads(written.read_text()))


def test_five_mistakes_get_five_messages(workdir):
    done = kenning_hil("run", str(HERE / "broken" / "five-mistakes.yml"), cwd=workdir)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[0].endswith("five-mistakes.yml: 5 problems"), done.stderr
    problems = lines[1:]
    assert len(problems) == 5, done.stderr
    assert all("five-mistakes.yml: " in line for line in problems)
    text = "\n".join(problems)
    assert "datset_extra: unknown key" in text
    assert ("dataset.parameters.dataset_rot: DigitsDataset: unknown parameter 'dataset_rot'"
            in text and "did you mean 'dataset_root'?" in text)
    assert ("optimizers[0].type: Kenning's ONNXCompiler (kenning.optimizers.onnx.ONNXCompiler) "
            "is not implemented in kenning-hil; instead:") in text
    assert "optimizers[1].parameters.target: TFLiteCompiler: Kenning's target: 'float16'" in text
    assert "runtime.type: unknown runtime type 'TFLiteRuntim'" in text
    assert "did you mean 'TFLiteRuntime'" in text
    assert not (workdir / "build").exists()  # nothing ran


@pytest.mark.slow
def test_client_server_over_tcp_with_a_tvm_tar(workdir):
    """Kenning's NetworkProtocol to `kenning-hil serve --runtime TVMRuntime`: the TVM module
    is a .tar (Kenning's TVMCompiler convention), uploaded and loaded by the server."""
    need("tvm")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", SERVER_PORT)) == 0:
            pytest.skip(f"port {SERVER_PORT} (named by client-server-tcp.json) is in use")
    server = subprocess.Popen(
        [sys.executable, "-m", "kenning_hil.cli", "serve", "--runtime", "TVMRuntime",
         "--port", str(SERVER_PORT), "--allow-native-models"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        line = ""
        while "listening on" not in line:
            line = server.stdout.readline()
            assert line or server.poll() is None, "the server stopped before listening"
            assert time.monotonic() < deadline, "the server did not listen within 300 s"
        data = run_scenario("client-server-tcp.json", workdir)
    finally:
        server.terminate()
        server.wait(30)
    check_kenning_file(data)
    assert len(data["protocol_inference_step"]) == int(SAMPLES)
    assert all(0 < v < 60 for v in data["protocol_inference_step"])
    assert (workdir / "build" / "kenning-scenarios" / "digits-tcp.tar").is_file()


@pytest.mark.slow
def test_uart_to_the_firmware_on_qemu_m4(workdir):
    """BareMetalPlatform naming qemu-m4: the scenario runs on that target (QEMU, the
    reference firmware, its UART), the Kenning UART protocol entry matching the board's."""
    require_simulation("target qemu-m4")
    need("tensorflow")
    data = run_scenario("uart-qemu-m4.yml", workdir)
    assert data["target"] == "qemu-m4"
    assert data["format_version"] == 2 and data["accuracy"] >= 0.9
    assert len(data["target_inference_instructions"]) == int(SAMPLES)
    assert all(0 < v < 60 for v in data["protocol_inference_step"])

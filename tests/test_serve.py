"""End to end: the digits model served by `kenning-hil serve` (a real process), driven by
`kenning-hil run` with a `protocol` over real sockets and over a real pty pair; and a
server dying mid-session (the client fails within its timeout, naming the target, the
request and the elapsed time, and keeps what it measured)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kenning_hil.blocks.entries import load_scenario
from kenning_hil.core.protocol import ConnectionLostError, RequestTimeoutError
from kenning_hil.run.pipeline import build_pipeline, run_scenario
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line
from tests.test_cli import console_script

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "digits-onnxruntime.json"
LISTENING = r"listening on (?P<address>\S+)"


def start_server(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, str]:
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    proc = start_logged([console_script(), "serve", "--runtime", "onnxruntime", *args], log)
    match = wait_for_line(proc, log, LISTENING, 60.0, "kenning-hil serve")
    return proc, match.group("address")


def scenario_with(protocol: dict) -> dict:
    scenario = load_scenario(SCENARIO)
    scenario["model_wrapper"]["parameters"]["model_path"] = str(
        REPO / scenario["model_wrapper"]["parameters"]["model_path"]
    )
    scenario["protocol"] = protocol
    return scenario


def run_cli(tmp_path: Path, scenario: dict, *extra: str) -> tuple:
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(scenario))
    output = tmp_path / "measurements.json"
    result = subprocess.run(
        [console_script(), "run", str(scenario_path), "--output", str(output), *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, output


@pytest.fixture(scope="module")
def local_accuracy() -> float:
    scenario = load_scenario(SCENARIO)
    scenario["model_wrapper"]["parameters"]["model_path"] = str(
        REPO / scenario["model_wrapper"]["parameters"]["model_path"]
    )
    return run_scenario(scenario).measurements["accuracy"]


def check_remote_measurements(output: Path, local_accuracy: float) -> dict:
    measurements = json.loads(output.read_text())
    assert measurements["accuracy"] == pytest.approx(local_accuracy, abs=1e-12)
    samples = measurements["total"]
    assert samples == 359
    # per sample: the host-timed PROCESS round trip and the target's own inference time
    assert len(measurements["protocol_inference_step"]) == samples
    assert len(measurements["target_inference_step"]) == samples
    assert all(p > 0 for p in measurements["protocol_inference_step"])
    steps = zip(measurements["target_inference_step"], measurements["protocol_inference_step"])
    assert all(0 < target < protocol for target, protocol in steps)
    return measurements


def test_digits_over_tcp_matches_local_run(tmp_path, local_accuracy):
    proc, address = start_server(tmp_path, "--port", "0")
    try:
        host, port = address.rsplit(":", 1)
        tcp = {"type": "tcp", "parameters": {"host": host, "port": int(port)}}
        result, output = run_cli(tmp_path, scenario_with(tcp))
        assert result.returncode == 0, result.stderr
        assert f"accuracy: {local_accuracy:.4f}" in result.stdout
        check_remote_measurements(output, local_accuracy)
        assert proc.poll() is None  # the server outlives its client
    finally:
        stop(proc)


def test_digits_over_a_pty_pair_matches_local_run(tmp_path, local_accuracy, pty_pair):
    server_end, client_end = pty_pair
    proc, address = start_server(tmp_path, "--serial", server_end)
    try:
        assert address == server_end
        protocol = {"type": "uart", "parameters": {"port": client_end, "baudrate": 115200}}
        result, output = run_cli(tmp_path, scenario_with(protocol))
        assert result.returncode == 0, result.stderr
        check_remote_measurements(output, local_accuracy)
    finally:
        stop(proc)


def test_refused_model_gives_one_line_error_and_partial_file(tmp_path):
    proc, address = start_server(tmp_path, "--port", "0", "--max-message-size", "1000")
    try:
        host, port = address.rsplit(":", 1)
        tcp = {"type": "tcp", "parameters": {"host": host, "port": int(port)}}
        result, output = run_cli(tmp_path, scenario_with(tcp))
        assert result.returncode == 2
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith(f"kenning-hil: error: target tcp://{host}:{port}, MODEL request")
        assert "exceeds the limit of 1000 bytes" in error
        assert json.loads(output.read_text())["protocol_inference_step"] == []
    finally:
        stop(proc)


def chunked_pipeline(scenario: dict, on_chunk, chunk_size: int = 10):
    """The digits pipeline with `on_chunk(index)` called before each chunk of samples."""
    pipeline = build_pipeline(scenario)
    original = pipeline.dataset.iter_chunks

    def chunks(*args, **kwargs):
        for index, chunk in enumerate(original(chunk_size=chunk_size)):
            on_chunk(index)
            yield chunk

    pipeline.dataset.iter_chunks = chunks
    return pipeline


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_server_dying_mid_session(tmp_path, how):
    proc, address = start_server(tmp_path, "--port", "0")
    host, port = address.rsplit(":", 1)
    timeout = 0.5
    scenario = scenario_with(
        {"type": "tcp", "parameters": {"host": host, "port": int(port), "timeout": timeout}}
    )

    import psutil

    # the server and its runtime worker (which serves the connection) freeze together
    frozen = [proc.pid] + [child.pid for child in psutil.Process(proc.pid).children()]

    def on_chunk(index: int) -> None:
        if index == 3:  # 30 samples done
            if how == "killed":
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            else:
                for pid in frozen:
                    os.kill(pid, signal.SIGSTOP)

    pipeline = chunked_pipeline(scenario, on_chunk)
    expected = ConnectionLostError if how == "killed" else RequestTimeoutError
    start = time.monotonic()
    try:
        with pytest.raises(expected) as info:
            pipeline.run()
    finally:
        if how == "frozen":
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        stop(proc)
    error = info.value
    assert time.monotonic() - start < 30
    assert error.elapsed is not None and error.elapsed <= timeout + 0.5
    message = str(error)
    assert f"target tcp://{host}:{port}" in message and "DATA request" in message
    assert f"after {error.elapsed:.3f} s" in message
    if how == "frozen":
        assert "no answer within 0.5 s" in message
    # what was measured before the failure is kept, and the pipeline hands it out whole
    kept = error.measurements
    assert kept["total"] == 30 and 0.8 < kept["accuracy"] <= 1.0
    assert len(kept["protocol_inference_step"]) == 30
    saved = json.loads(error.result.save(tmp_path / "partial.json").read_text())
    assert saved["total"] == 30 and "error" in saved


@pytest.mark.parametrize("command, prog", [
    pytest.param(lambda *args: [console_script(), "serve", *args], "kenning-hil",
                 id="kenning-hil serve"),
    pytest.param(server_command, "python -m kenning_hil.runtimes.serve",
                 id="library entry"),
])
def test_serve_rejects_bad_options(tmp_path, command, prog):
    """The command-line face and the library entry the host kind starts are one program:
    a runtime name that names nothing is the same one-line error from both."""
    result = subprocess.run(
        command("--runtime", "no-such-runtime", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"{prog}: error: unknown runtime type 'no-such-runtime' "), errors

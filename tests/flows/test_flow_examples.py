"""The example flows of examples/flows/ end to end through `kenning-hil flow run` (a real
process): digits on the host runtime, through a real `kenning-hil serve` over a real socket,
and int8 on the simulated Cortex-M4 over its emulated UART; and a real SIGINT stopping a
flow cleanly (cleanup ran, JSON lines whole, no child process left)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from kenning_hil.targets.process import start_logged, stop, wait_for_line
from tests.ctrl_c import interruptible
from tests.flows.conftest import (
    DIGITS_TEST_SAMPLES,
    REPO,
    cli,
    example,
    jsonl,
    redirected,
    write_flow,
)
from tests.test_cli import console_script

pytest.importorskip("onnxruntime")


def results_of(report: Path, name: str) -> dict:
    return json.loads((report / "tests" / f"flow-{name}.json").read_text())


def check_digits_run(tmp_path: Path, name: str, done: subprocess.CompletedProcess) -> dict:
    """Every test sample went through, one whole JSON line each, accuracy >= 0.95, and the
    results file holds the flow's measurements as a run's."""
    assert done.returncode == 0, done.stderr[-2000:]
    lines = jsonl(tmp_path / f"{name}.jsonl")
    assert [line["sample"] for line in lines] == list(range(DIGITS_TEST_SAMPLES))
    correct = sum(line["class"] == line["label"] for line in lines)
    assert correct / len(lines) >= 0.95
    saved = results_of(tmp_path / "report", name)
    assert saved["samples"] == DIGITS_TEST_SAMPLES
    assert saved["metrics"]["accuracy"] == pytest.approx(correct / len(lines))
    flow = saved["flow"]
    assert flow["steps"] == DIGITS_TEST_SAMPLES and not flow["interrupted"]
    assert flow["cleanup_errors"] == []
    measured = saved["measurements"]
    for key in ("flow_step", "flow_runner0_step", "flow_runner1_step", "flow_runner2_step"):
        assert len(measured[key]) == DIGITS_TEST_SAMPLES
    # a step spans its runners' times
    assert all(total >= model for total, model in
               zip(measured["flow_step"], measured["flow_runner1_step"]))
    assert f"accuracy: {correct / len(lines):.4f}" in done.stdout
    return saved


def test_digits_on_the_host_runtime(tmp_path):
    path = write_flow(redirected(example("digits-host.json"), tmp_path), tmp_path,
                      "digits-host.json")
    done = cli("flow", "run", str(path), "--hil-report", str(tmp_path / "report"))
    saved = check_digits_run(tmp_path, "digits-host", done)
    assert saved["target"] == "local"
    # run here: the runtime's own time per inference, one per sample
    assert saved["latency"]["source"] == "target_inference_step"
    assert len(saved["measurements"]["target_inference_step"]) == DIGITS_TEST_SAMPLES


def test_digits_through_kenning_hil_serve_over_tcp(tmp_path):
    log = tmp_path / "serve.log"
    server = start_logged([console_script(), "serve", "--runtime", "onnxruntime", "--port",
                           "0"], log)
    try:
        address = wait_for_line(server, log, r"listening on (?P<a>\S+)", 60.0,
                                "kenning-hil serve").group("a")
        flow = redirected(example("digits-serve-tcp.json"), tmp_path)
        flow[1]["parameters"]["protocol"]["parameters"]["port"] = int(address.rsplit(":")[1])
        path = write_flow(flow, tmp_path, "digits-serve-tcp.json")
        done = cli("flow", "run", str(path), "--hil-report", str(tmp_path / "report"))
    finally:
        stop(server)
    saved = check_digits_run(tmp_path, "digits-serve-tcp", done)
    assert saved["target"] == "protocol"
    measured = saved["measurements"]
    # host-timed round trips, and the server's own times from its STATS
    assert len(measured["protocol_inference_step"]) == DIGITS_TEST_SAMPLES
    assert len(measured["target_inference_step"]) == DIGITS_TEST_SAMPLES
    assert all(0 < target < trip for target, trip in
               zip(measured["target_inference_step"], measured["protocol_inference_step"]))


@pytest.mark.slow
def test_digits_int8_on_qemu_m4_over_the_emulated_uart(tmp_path, targets):
    pytest.importorskip("tensorflow")
    available, reason = targets("qemu-m4").availability()
    if not available:
        pytest.skip(f"target qemu-m4 is not available here: {reason}")
    path = write_flow(redirected(example("digits-qemu-m4.json"), tmp_path), tmp_path,
                      "digits-qemu-m4.json")
    done = cli("flow", "run", str(path), "--hil-report", str(tmp_path / "report"))
    saved = check_digits_run(tmp_path, "digits-qemu-m4", done)
    assert saved["target"] == "qemu-m4"
    assert saved["optimizers"][0]["type"] == "tflite"
    # latency counted by the firmware under QEMU's -icount: instructions per inference
    assert saved["latency"]["source"] == "target_inference_instructions"
    assert saved["latency"]["unit"] == "instructions"
    instructions = saved["measurements"]["target_inference_instructions"]
    assert len(instructions) == DIGITS_TEST_SAMPLES and min(instructions) > 0
    assert len(saved["measurements"]["protocol_inference_step"]) == DIGITS_TEST_SAMPLES


def test_sigint_stops_cleanly(tmp_path):
    """A looping flow on the host target (its `kenning-hil serve` is a child process) gets a
    real SIGINT mid-run: the step in progress finishes, every runner cleans up, the JSON-lines
    file ends with the last processed sample, the results are written marked interrupted,
    the command exits with 130 and leaves no child process behind."""
    flow = redirected(example("digits-host.json"), tmp_path)
    flow[0]["parameters"]["loop"] = True
    path = write_flow(flow, tmp_path, "digits-loop.json")
    lines_path = tmp_path / "digits-host.jsonl"
    command = [console_script(), "flow", "run", str(path), "--target", "host-onnxruntime",
               "--hil-report", str(tmp_path / "report")]
    # with SIGINT's default disposition even when this test run inherited it ignored
    proc = subprocess.Popen(interruptible(command), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if lines_path.exists() and lines_path.read_text().count("\n") >= 400:
                break  # past one pass over the test split: the loop goes on
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the host target's server should be a child process"
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    text = lines_path.read_text()
    assert text.endswith("\n")  # no torn last line
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["sample"] for line in lines] == list(range(len(lines)))
    saved = results_of(tmp_path / "report", "digits-loop")
    assert saved["interrupted"]["samples"] == len(lines) == saved["flow"]["steps"]
    assert saved["flow"]["interrupted"] and saved["flow"]["cleanup_errors"] == []
    assert len(saved["measurements"]["protocol_inference_step"]) == len(lines)
    assert saved["metrics"]["accuracy"] >= 0.95
    # the summary collector's cleanup ended its live line; the CLI said it was interrupted
    assert f"flow: {len(lines)} samples" in stderr
    assert "kenning-hil: interrupted" in stderr and "flow: digits-loop (interrupted)" in stderr
    # the server (and its runtime worker) stopped with the command; a grandchild may take a
    # moment to notice its parent is gone
    _, alive = psutil.wait_procs(children, timeout=10)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []

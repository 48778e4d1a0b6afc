"""A flow's model runner on targets of the catalog by name, for the kinds that reach a board
over a line: `kind: tcp` (a running `kenning-hil serve` at host:port, over a real socket) and
`kind: serial` (`kenning-hil serve --serial` at the far end of a real pty pair)."""

from __future__ import annotations

import pytest

from kenning_hil.flows.flowrun import run_flow
from kenning_hil.targets.catalog import TargetCatalog
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line
from kenning_hil.targets.target import Target
from tests.flows.conftest import example, jsonl, redirected

pytest.importorskip("onnxruntime")

STEPS = 40


def run_on(tmp_path, harness, target_yaml: str, name: str):
    directory = tmp_path / "targets"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(target_yaml)
    catalog = TargetCatalog([directory])
    flow = redirected(example("digits-host.json"), tmp_path)
    flow[1]["parameters"] = {"model_wrapper": "models/digits/digits-mlp.onnx", "target": name}
    flow.pop()  # no live line in the test's output
    result = run_flow(flow, harness, lambda n: Target(catalog.get(n)), name=name, steps=STEPS)
    lines = jsonl(tmp_path / "digits-host.jsonl")
    assert result.steps == len(lines) == STEPS
    assert result.accuracy >= 0.95
    assert result.result.target == name
    assert len(result.measurements["protocol_inference_step"]) == STEPS
    assert result.latency.source == "target_inference_step"  # the server's own times
    return result


def test_tcp_target_by_name(tmp_path, harness):
    log = tmp_path / "serve.log"
    server = start_logged(server_command("--runtime", "onnxruntime", "--port", "0"), log)
    try:
        address = wait_for_line(server, log, r"listening on (?P<a>\S+)", 60,
                                "kenning-hil serve").group("a")
        run_on(tmp_path, harness, f"name: lab-server\nkind: tcp\naddress: {address}\n"
               "runtime: onnxruntime\nformats: [onnx]\n", "lab-server")
    finally:
        stop(server)


def test_serial_target_by_name(tmp_path, harness, pty_pair):
    log = tmp_path / "serve.log"
    server = start_logged(
        server_command("--runtime", "onnxruntime", "--serial", pty_pair[0]), log)
    try:
        wait_for_line(server, log, r"listening on", 30, "kenning-hil serve --serial")
        run_on(tmp_path, harness, f"name: lab-board\nkind: serial\nport: {pty_pair[1]}\n"
               "runtime: onnxruntime\nformats: [onnx]\ntimeouts: {request: 20}\n",
               "lab-board")
    finally:
        stop(server)

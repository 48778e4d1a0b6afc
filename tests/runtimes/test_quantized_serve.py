"""A quantised model's io specification drives the protocol path to `kenning-hil serve`, with
the same accuracy as the local run:

- over a serial line (a socat pty pair) the host quantises float inputs per the io spec, int8
  bytes cross the wire, and int8 outputs are dequantised on the host (as with firmware);
- over TCP float32 travels and the served runtime quantises (Kenning's TCP behaviour), or,
  with `host_quantization`, int8 travels as over a serial line.
"""

from __future__ import annotations

import pytest

from kenning_hil.run.pipeline import build_pipeline, run_scenario
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line

pytest.importorskip("ai_edge_litert", reason="needs the 'litert' extra")
pytest.importorskip("tflite_micro", reason="needs the 'tflm' extra")


def _scenario(digits_onnx, runtime: str) -> dict:
    return {
        "dataset": {"type": "digits", "parameters": {"subset": "test"}},
        "model_wrapper": {"type": "onnx", "parameters": {"model_path": str(digits_onnx)}},
        "runtime": {"type": runtime, "parameters": {}},
    }


def _local_accuracy(digits_onnx, digits_int8_tflite, runtime: str) -> float:
    # the int8 model the fixture compiled, run by the local runtime (a TFLite runtime takes
    # a TFLite model: an ONNX wrapper straight before it is refused at validation)
    scenario = _scenario(digits_onnx, runtime)
    scenario["model_wrapper"] = {"type": "tflite",
                                 "parameters": {"model_path": str(digits_int8_tflite)}}
    local = build_pipeline(scenario)
    return local.runtime.run_locally(
        local.dataset, local.model_wrapper, digits_int8_tflite
    )["accuracy"]


def _remote_run(tmp_path, digits_onnx, runtime: str, serve_args: list[str], protocol) -> dict:
    log = tmp_path / "serve.log"
    proc = start_logged(server_command("--runtime", runtime, *serve_args), log)
    try:
        address = wait_for_line(proc, log, r"listening on (?P<a>\S+)", 60.0, "serve").group("a")
        scenario = _scenario(digits_onnx, runtime)
        scenario["protocol"] = protocol(address)
        # compiled on the host by the project's tflite optimizer, then uploaded
        scenario["optimizers"] = [{
            "type": "tflite",
            "parameters": {"compiled_model_path": str(tmp_path / "digits-int8.tflite")},
        }]
        return run_scenario(scenario).measurements
    finally:
        stop(proc)


@pytest.mark.parametrize("runtime", ["litert", "tflm"])
def test_float_over_tcp_matches_local(tmp_path, digits_onnx, digits_int8_tflite, runtime):
    def tcp(address: str) -> dict:
        host, port = address.rsplit(":", 1)
        return {"type": "tcp", "parameters": {"host": host, "port": int(port)}}

    remote = _remote_run(tmp_path, digits_onnx, runtime, ["--port", "0"], tcp)
    assert remote["total"] == 359
    assert remote["accuracy"] == _local_accuracy(digits_onnx, digits_int8_tflite, runtime) > 0.95


def test_int8_over_tcp_with_host_quantization_matches_local(
    tmp_path, digits_onnx, digits_int8_tflite
):
    def tcp(address: str) -> dict:
        host, port = address.rsplit(":", 1)
        parameters = {"host": host, "port": int(port), "host_quantization": True}
        return {"type": "tcp", "parameters": parameters}

    remote = _remote_run(tmp_path, digits_onnx, "litert", ["--port", "0"], tcp)
    assert remote["total"] == 359
    local = _local_accuracy(digits_onnx, digits_int8_tflite, "litert")
    assert remote["accuracy"] == local > 0.95


def test_int8_over_serial_line_matches_local(tmp_path, digits_onnx, digits_int8_tflite,
                                             pty_pair):
    server_end, client_end = pty_pair

    def uart(address: str) -> dict:
        # UART: host quantisation is on by default; the packed io spec carries int8 only
        return {"type": "uart", "parameters": {"port": client_end, "baudrate": 921600}}

    remote = _remote_run(tmp_path, digits_onnx, "litert", ["--serial", server_end], uart)
    assert remote["total"] == 359
    local = _local_accuracy(digits_onnx, digits_int8_tflite, "litert")
    assert remote["accuracy"] == local > 0.95

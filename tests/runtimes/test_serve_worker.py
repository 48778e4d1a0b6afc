"""The target server's runtime worker (issue 26, item 3), against real `serve` processes:
a model allocating more than --max-memory, a worker killed by SIGSEGV mid-inference and an
inference longer than --request-timeout each cost one FAIL; the worker is restarted and the
next session is served normally."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.runtimes.worker import parse_memory
from tests.runtimes.test_serve_security import client, run_serve, start_server

pytest.importorskip("onnxruntime")

GIB = 1 << 30
SPEC = {
    "input": [{"name": "n", "shape": [1], "dtype": "int64"}],
    "output": [{"name": "y", "shape": [1], "dtype": "float32"}],
}


# four uint8 in, two float32 out: the echo runtime's tensors in the supervision tests
BYTES_SPEC = {
    "input": [{"name": "x", "shape": [1, 4], "dtype": "uint8"}],
    "output": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
}
ECHO_RUNTIME = "tests.runtimes.compromised_runtime.CompromisedRuntime"


def _model(square: bool) -> bytes:
    """n (int64) -> a float32 tensor of n ones (ConstantOfShape) -> its sum, [1].
    square: an [n, n] matrix of ones multiplied by itself (n**3 multiply-adds), then the sum."""
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    nodes = []
    if square:
        nodes += [
            helper.make_node("Concat", ["n", "n"], ["shape"], axis=0),
            helper.make_node("ConstantOfShape", ["shape"], ["a"], value=one),
            helper.make_node("MatMul", ["a", "a"], ["b"]),
            helper.make_node("ReduceSum", ["b"], ["s"], keepdims=0),
        ]
    else:
        nodes += [
            helper.make_node("ConstantOfShape", ["n"], ["a"], value=one),
            helper.make_node("ReduceSum", ["a"], ["s"], keepdims=0),
        ]
    nodes.append(helper.make_node("Reshape", ["s", "one_dim"], ["y"]))
    graph = helper.make_graph(
        nodes, "alloc",
        [helper.make_tensor_value_info("n", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one_dim", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def _session(host: str, port: int, model: bytes, n: int):
    """One session: spec, model, DATA n, PROCESS; (protocol, processed?)."""
    protocol = client(host, port)
    assert protocol.upload_io_specification_dict(SPEC)
    assert protocol.upload_model_bytes(model), protocol.refusal_reason()
    assert protocol.upload_input(np.array([n], dtype=np.int64).tobytes())
    return protocol, protocol.request_processing()


def _output(protocol) -> float:
    ok, raw = protocol.download_output()
    assert ok
    return float(np.frombuffer(raw, dtype=np.float32)[0])


def _worker_pids(log) -> list[int]:
    return [int(p) for p in re.findall(r"runtime worker pid (\d+) started", log.read_text())]


def test_memory_cap_fails_the_request_and_the_next_session_passes(tmp_path):
    proc, host, port, log = start_server(
        tmp_path, "--runtime", "onnxruntime", "--port", "0", "--max-memory", "1GiB"
    )
    try:
        assert "memory cap 1.00 GiB" in log.read_text()
        model = _model(square=False)
        # 256 MiB of ones fits under the cap
        protocol, processed = _session(host, port, model, 1 << 26)
        assert processed, protocol.refusal_reason()
        assert _output(protocol) == pytest.approx(1 << 26, rel=1e-3)
        protocol.disconnect()
        # 2 GiB does not: FAIL naming the cap
        protocol, processed = _session(host, port, model, 1 << 29)
        assert not processed
        reason = protocol.refusal_reason()
        assert "1.00 GiB" in reason, reason
        protocol.disconnect()
        # the next session is served normally
        protocol, processed = _session(host, port, model, 1000)
        assert processed, protocol.refusal_reason()
        assert _output(protocol) == 1000.0
        protocol.disconnect()
        assert proc.poll() is None
    finally:
        stop_server(proc)


def stop_server(proc) -> None:
    from kenning_hil.targets.process import stop

    stop(proc)


def test_worker_killed_mid_inference_fails_the_request_and_is_restarted(tmp_path):
    proc, host, port, log = start_server(
        tmp_path, "--runtime", "onnxruntime", "--port", "0",
        "--runtime-parameters", '{"num_threads": 1}',
    )
    try:
        (worker,) = _worker_pids(log)
        protocol = client(host, port)
        protocol.timeout = 600.0
        protocol.process_timeout = 600.0
        assert protocol.upload_io_specification_dict(SPEC)
        assert protocol.upload_model_bytes(_model(square=True))
        assert protocol.upload_input(np.array([4000], dtype=np.int64).tobytes())
        result: dict = {}
        thread = threading.Thread(
            target=lambda: result.setdefault("processed", protocol.request_processing())
        )
        thread.start()
        # 4000**3 = 64e9 multiply-adds on one thread: seconds of work, killed well within it
        time.sleep(0.5)
        os.kill(worker, signal.SIGSEGV)
        thread.join(120)
        assert result == {"processed": False}
        reason = protocol.refusal_reason()
        assert "runtime worker died during PROCESS (killed by SIGSEGV" in reason, reason
        assert "restarted" in reason
        protocol.disconnect()
        pids = _worker_pids(log)
        assert len(pids) == 2 and pids[1] != worker
        protocol, processed = _session(host, port, _model(square=False), 1000)
        assert processed, protocol.refusal_reason()
        assert _output(protocol) == 1000.0
        protocol.disconnect()
        assert proc.poll() is None
    finally:
        stop_server(proc)


def test_request_timeout_kills_the_worker_and_the_next_session_passes(tmp_path):
    proc, host, port, log = start_server(
        tmp_path, "--runtime", "onnxruntime", "--port", "0", "--request-timeout", "1",
        "--runtime-parameters", '{"num_threads": 1}',
    )
    try:
        # at least seconds of work on any machine; a loaded one only takes longer
        protocol, processed = _session(host, port, _model(square=True), 4000)
        assert not processed
        reason = protocol.refusal_reason()
        assert "did not finish PROCESS within 1 s (--request-timeout): killed" in reason
        protocol.disconnect()
        protocol, processed = _session(host, port, _model(square=False), 1000)
        assert processed, protocol.refusal_reason()
        assert _output(protocol) == 1000.0
        protocol.disconnect()
        assert len(_worker_pids(log)) == 2
    finally:
        stop_server(proc)


def test_memory_sizes():
    assert parse_memory("1GiB") == GIB
    assert parse_memory("512MiB") == 512 << 20
    assert parse_memory("2G") == 2 * GIB
    assert parse_memory("1073741824") == GIB
    for bad in ("lots", "1 XB", "0", "-1GiB", ""):
        with pytest.raises(ValueError):
            parse_memory(bad)
    result = run_serve("--runtime", "onnxruntime", "--port", "0", "--max-memory", "lots")
    assert result.returncode == 2
    assert "argument --max-memory: expected a size such as 1GiB" in result.stderr
    result = run_serve("--runtime", "onnxruntime", "--port", "0", "--request-timeout", "0")
    assert result.returncode == 2
    assert "argument --request-timeout: must be positive, got '0'" in result.stderr


def test_worker_requests_from_the_library(digits_onnx):
    """WorkerRuntime without a server: a session start, model, io spec, inference and STATS,
    in the order a client may send them; outputs equal ONNX Runtime's in this process."""
    import json

    from kenning_hil.runtimes.onnxruntime import ONNXRuntime
    from kenning_hil.runtimes.worker import WorkerRuntime

    spec = json.loads(digits_onnx.with_name(digits_onnx.name + ".json").read_text())
    sample = np.linspace(0, 16, 64, dtype=np.float32).reshape(1, 64)
    local = ONNXRuntime()
    local.prepare_model(digits_onnx.read_bytes())
    (expected,) = local.run_batch([sample])

    # the runtime's parameters reach both processes: no statistics sampling in the server
    parameters = {"num_threads": 1, "disable_performance_measurements": True}
    runtime = WorkerRuntime("onnxruntime", parameters, max_memory=GIB)
    assert runtime.disable_performance_measurements
    runtime.start_worker()
    try:
        pid = runtime.worker_pid
        runtime.inference_session_start()  # the first request a worker sees
        assert runtime.statsmeasurements is None
        assert runtime.prepare_model(digits_onnx.read_bytes())
        assert runtime.get_io_specification_from_model()["input"][0]["name"] == "pixels"
        runtime.read_io_specification(spec)
        for _ in range(3):
            assert runtime.prepare_input(sample.tobytes())
            assert runtime._process_request(b"")
            output = np.frombuffer(runtime.upload_output(b""), dtype=np.float32)
            np.testing.assert_array_equal(output, expected.ravel())
        stats = json.loads(runtime.upload_stats(b""))
        assert len(stats["target_inference_step"]) == 3
        assert all(step > 0 for step in stats["target_inference_step"])
        assert runtime.worker_pid == pid  # nothing restarted it
    finally:
        runtime.stop_worker()


def test_no_worker_serves_in_the_server_process(tmp_path):
    proc, host, port, log = start_server(
        tmp_path, "--runtime", "onnxruntime", "--port", "0", "--no-worker", "--max-memory", "1GiB"
    )
    try:
        protocol, processed = _session(host, port, _model(square=False), 1000)
        assert processed, protocol.refusal_reason()
        assert _output(protocol) == 1000.0
        protocol.disconnect()
        text = log.read_text()
        assert _worker_pids(log) == []
        assert "--max-memory: no effect, onnxruntime runs in the server process" in text
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children == []
    finally:
        stop_server(proc)


def _onnx(nodes: list, inputs: list, outputs: list, initializers: list = ()) -> bytes:
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def test_tensors_larger_than_the_shared_buffers():
    """Inputs and outputs pass through the shared buffers, which grow for a larger batch;
    an output larger than its buffer (the model's real output, not the io spec's) comes
    inline. Values equal numpy's; one worker throughout."""
    from onnx import TensorProto, helper

    from kenning_hil.runtimes.worker import MIN_BUFFER, WorkerRuntime

    float_info = helper.make_tensor_value_info
    row_sums = _onnx(
        [helper.make_node("ReduceSum", ["x", "axis"], ["y"], keepdims=1)],
        [float_info("x", TensorProto.FLOAT, ["b", 1000])],
        [float_info("y", TensorProto.FLOAT, ["b", 1])],
        [helper.make_tensor("axis", TensorProto.INT64, [1], [1])],
    )
    sums_spec = {
        "input": [{"name": "x", "shape": [-1, 1000], "dtype": "float32"}],
        "output": [{"name": "y", "shape": [-1, 1], "dtype": "float32"}],
    }
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    ones = _onnx(
        [helper.make_node("ConstantOfShape", ["n"], ["a"], value=one)],
        [float_info("n", TensorProto.INT64, [1])],
        [float_info("a", TensorProto.FLOAT, ["k"])],
    )
    ones_spec = {  # says one float out; the model answers n
        "input": [{"name": "n", "shape": [1], "dtype": "int64"}],
        "output": [{"name": "a", "shape": [1], "dtype": "float32"}],
    }
    runtime = WorkerRuntime("onnxruntime", {"num_threads": 1}, max_memory=GIB)
    runtime.disable_performance_measurements = True
    runtime.start_worker()
    rng = np.random.default_rng(26)
    try:
        pid = runtime.worker_pid
        runtime.read_io_specification(sums_spec)
        assert runtime.prepare_model(row_sums)
        for batch in (1, 40, 3):  # 40 rows: 160 kB of input, past MIN_BUFFER
            x = rng.random((batch, 1000), dtype=np.float32)
            assert runtime.prepare_input(x.tobytes())
            assert runtime._process_request(b"")
            y = np.frombuffer(runtime.upload_output(b""), dtype=np.float32)
            np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-5)
        assert runtime._input_size > MIN_BUFFER
        runtime.unload_model()
        runtime.read_io_specification(ones_spec)
        assert runtime.prepare_model(ones)
        for n in (3, 100_000, 5):  # 400 kB of output, past its buffer
            assert runtime.prepare_input(np.array([n], dtype=np.int64).tobytes())
            assert runtime._process_request(b"")
            output = np.frombuffer(runtime.upload_output(b""), dtype=np.float32)
            assert output.shape == (n,) and output.sum() == n
        assert runtime.worker_pid == pid
    finally:
        runtime.stop_worker()


def test_forged_answer_of_a_compromised_worker(tmp_path):
    """A worker whose runtime writes onto the channel to its server itself (as a hostile
    model's native code could) and claims 2 GiB of output: the server, which reads only the
    fixed-size end-of-session word from its worker, believes none of it, kills and restarts
    the worker, FAILs that request on the client's connection, and serves the next session."""
    runtime = ECHO_RUNTIME
    spec = BYTES_SPEC
    proc, host, port, log = start_server(tmp_path, "--runtime", runtime, "--port", "0")
    try:
        (first,) = _worker_pids(log)
        for forged, expected in ((True, None), (False, bytes(8))):
            protocol = client(host, port)
            assert protocol.upload_io_specification_dict(spec)
            assert protocol.upload_model_bytes(b"-")
            assert protocol.upload_input(bytes([0xFF if forged else 1, 2, 3, 4]))
            processed = protocol.request_processing()
            if forged:
                assert not processed
                reason = protocol.refusal_reason()
                assert "runtime worker sent 13 bytes that are not the end of the session " \
                       "during PROCESS" in reason, reason
                assert "restarted" in reason
            else:
                assert processed, protocol.refusal_reason()
                ok, raw = protocol.download_output()
                assert ok and raw == expected
            protocol.disconnect()
        pids = _worker_pids(log)
        assert len(pids) == 2 and pids[0] == first
        assert proc.poll() is None
    finally:
        stop_server(proc)


def test_output_buffer_stays_within_one_message():
    """The client picks the batch: 4 one-byte inputs of a model whose io spec promises 64 MiB
    of output per sample do not make the server map 256 MiB; the output buffer stops at the
    largest message (what does not fit would travel inline)."""
    from kenning_hil.runtimes.worker import WorkerRuntime

    spec = {
        "input": [{"name": "x", "shape": [-1, 1], "dtype": "uint8"}],
        "output": [{"name": "y", "shape": [-1, 1 << 24], "dtype": "float32"}],
    }
    runtime = WorkerRuntime("echo", {"disable_performance_measurements": True}, max_memory=GIB)
    runtime.start_worker()
    try:
        runtime.read_io_specification(spec)
        assert runtime.prepare_model(b"-")
        for _ in range(2):
            assert runtime.prepare_input(bytes(4))
            assert runtime._output_size == 64 << 20
    finally:
        runtime.stop_worker()


def _context_switches(pid: int) -> int:
    """Times the process went to sleep: a server in the request path sleeps once per request.
    Preemptions (nonvoluntary switches) are left out, as they count the machine's load."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["voluntary_ctxt_switches"])


def test_worker_serves_the_connection_and_the_server_only_supervises(tmp_path):
    """Over TCP the worker serves the whole session on the client's socket: the server
    process is not woken per request (it wakes only on its poll period, every 0.2 s, however
    long 500 inferences take), turns a second client away as busy meanwhile, and hands the
    next connection to the same warm worker."""
    from kenning_hil.core.protocol import ConnectionLostError

    spec = BYTES_SPEC
    runtime = ECHO_RUNTIME  # echo, in a worker
    proc, host, port, log = start_server(tmp_path, "--runtime", runtime, "--port", "0")
    try:
        protocol = client(host, port)
        assert protocol.upload_io_specification_dict(spec)
        assert protocol.upload_model_bytes(b"-")
        before, start = _context_switches(proc.pid), time.monotonic()
        for _ in range(500):
            assert protocol.upload_input(bytes([1, 2, 3, 4]))
            assert protocol.request_processing()
            assert protocol.download_output() == (True, bytes(8))
        switches, seconds = _context_switches(proc.pid) - before, time.monotonic() - start
        # 1,500 requests: a server in the path would be woken for each (>= 1,500)
        assert switches <= 20 + 10 * seconds, (switches, seconds)
        with pytest.raises(ConnectionLostError, match="busy with another client"):
            client(host, port)
        protocol.disconnect()
        protocol = client(host, port)
        assert protocol.upload_io_specification_dict(spec)
        assert protocol.upload_model_bytes(b"-")
        assert protocol.upload_input(bytes(4)) and protocol.request_processing()
        protocol.disconnect()
        assert len(_worker_pids(log)) == 1
        assert proc.poll() is None
    finally:
        stop_server(proc)


def test_a_client_connecting_while_the_last_session_ends_is_served(tmp_path):
    """A client that connects right after the previous one left is served, not turned away
    as busy, however long the worker takes to end the previous session (here 0.5 s to unload
    its model, longer than the server's 0.2 s busy check)."""
    spec = BYTES_SPEC
    runtime = "tests.runtimes.slow_unload_runtime.SlowUnloadRuntime"
    proc, host, port, log = start_server(tmp_path, "--runtime", runtime, "--port", "0")
    try:
        for _ in range(3):
            protocol = client(host, port)  # connects while the last session still ends
            assert protocol.upload_io_specification_dict(spec)
            assert protocol.upload_model_bytes(b"-")
            assert protocol.upload_input(bytes(4)) and protocol.request_processing()
            protocol.disconnect()
        assert len(_worker_pids(log)) == 1
    finally:
        stop_server(proc)


def test_worker_dying_after_an_answer_ends_the_session_without_a_stray_answer(tmp_path):
    """A worker killed right after answering (no request in flight) ends that session: the
    client's next request finds the connection closed (never a second answer to the request
    already answered, which it would take for the next one's); the next session runs on a
    fresh worker, and SIGTERM during a session stops server and worker."""
    from kenning_hil.core.protocol import ConnectionLostError

    spec = BYTES_SPEC
    runtime = ECHO_RUNTIME  # echo, in a worker
    proc, host, port, log = start_server(tmp_path, "--runtime", runtime, "--port", "0")
    try:
        (worker,) = _worker_pids(log)
        protocol = client(host, port)
        assert protocol.upload_io_specification_dict(spec)
        assert protocol.upload_model_bytes(b"-")
        os.kill(worker, signal.SIGKILL)  # at once: the worker may not have gone back to reading
        with pytest.raises(ConnectionLostError, match="DATA request"):
            protocol.upload_input(bytes(4))
        protocol.disconnect()
        assert "runtime worker died between requests (killed by SIGKILL" in log.read_text()
        protocol = client(host, port)
        assert protocol.upload_io_specification_dict(spec)
        assert protocol.upload_model_bytes(b"-")
        assert protocol.upload_input(bytes(4)) and protocol.request_processing()
        pids = _worker_pids(log)
        assert len(pids) == 2
        proc.terminate()  # mid-session
        assert proc.wait(30) == 0
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or \
                Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    finally:
        stop_server(proc)

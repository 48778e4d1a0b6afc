"""The target server on a lab network (issue 26), each against a real `serve` process over
real sockets: native-code models only with --allow-native-models, who may connect
(--allow / --allow-any, refused peers closed at accept), and ONNX models that name files on
the server (external data) refused before ONNX Runtime opens anything."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.protocol import ConnectionLostError, RequestDeniedError
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.peers import AllowList, is_loopback_host
from kenning_hil.runtimes.serve import native_code_runtimes
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line

LISTENING = r"listening on (?P<host>[^\s:]+):(?P<port>\d+)"


def start_server(tmp_path: Path, *args: str, cwd: Path | None = None):
    """A real `python -m kenning_hil.runtimes.serve`; (process, host, port, log path)."""
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"
    command = server_command(*args)
    if cwd is not None:
        # started in `cwd` (relative external data would resolve there)
        command = ["/bin/sh", "-c", f'cd "{cwd}" && exec "$@"', "sh", *command]
    proc = start_logged(command, log)
    match = wait_for_line(proc, log, LISTENING, 60.0, "serve", offset=proc.log_offset)
    return proc, match.group("host"), int(match.group("port")), log


def run_serve(*args: str) -> subprocess.CompletedProcess:
    """The server as a command that is expected to exit (bad flags)."""
    return subprocess.run(
        server_command(*args), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )


def client(host: str, port: int) -> NetworkProtocol:
    protocol = NetworkProtocol(host=host, port=port, timeout=20.0)
    protocol.initialize_client()
    return protocol


# --- 1. native-code models are opt-in --------------------------------------------------------


def test_runtimes_that_load_native_code_are_named():
    from kenning_hil.runtimes.serve import add_arguments

    assert native_code_runtimes() == ["tvm"]
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = " ".join(parser.format_help().split())
    # the flag's help names them, as `kenning-hil targets` does
    assert f"otherwise: {', '.join(native_code_runtimes())})" in help_text


def test_host_kind_allows_native_models_of_its_own_server():
    from kenning_hil.targets.description import parse_target
    from kenning_hil.targets.target import Target

    def command(runtime: str) -> list[str]:
        desc = parse_target({"name": f"host-{runtime}", "kind": "host", "runtime": runtime},
                            "<test>")
        return Target(desc).kind.serve_command()

    assert "--allow-native-models" in command("tvm")
    assert "--allow-native-models" not in command("onnxruntime")


def test_tvm_library_upload_needs_allow_native_models(tmp_path, digits_tvm_library,
                                                      digits_onnx, digits_dataset):
    pytest.importorskip("tvm")
    from kenning_hil.modelwrappers.onnx import ONNXWrapper
    from kenning_hil.runtimes.tvm import TVMRuntime

    wrapper = ONNXWrapper(digits_onnx, digits_dataset)
    local = TVMRuntime().run_locally(digits_dataset, wrapper, digits_tvm_library)

    proc, host, port, log = start_server(tmp_path, "--runtime", "tvm", "--port", "0")
    try:
        protocol = NetworkProtocol(host=host, port=port, timeout=20.0)
        with pytest.raises(RequestDeniedError, match="--allow-native-models") as refused:
            TVMRuntime(protocol=protocol).run_client(digits_dataset, wrapper, digits_tvm_library)
        assert "MODEL" in str(refused.value)
        assert proc.poll() is None
    finally:
        stop(proc)

    proc, host, port, log = start_server(
        tmp_path, "--runtime", "tvm", "--port", "0", "--allow-native-models"
    )
    try:
        text = log.read_text()
        assert "--allow-native-models: any client that can connect runs native code" in text
        protocol = NetworkProtocol(host=host, port=port, timeout=60.0)
        remote = TVMRuntime(protocol=protocol).run_client(
            digits_dataset, wrapper, digits_tvm_library
        )
        assert remote["accuracy"] == local["accuracy"]
        assert remote["total"] == local["total"] == 359
    finally:
        stop(proc)


# --- 2. who may connect ----------------------------------------------------------------------


def test_allow_list_parsing_and_membership():
    allow = AllowList.parse(["10.0.0.0/8, 192.168.1.7", "fd00::/8"])
    assert str(allow) == "10.0.0.0/8,192.168.1.7/32,fd00::/8"
    assert allow.allows("10.2.3.4")
    assert allow.allows("192.168.1.7")
    assert not allow.allows("192.168.1.8")
    assert allow.allows("::ffff:10.9.9.9")  # an IPv4 client of a dual-stack listener
    assert allow.allows("fd00::1")
    assert not allow.allows("fe80::1%eth0")
    assert not allow.allows("not an address")
    with pytest.raises(ConfigurationError, match="'10.0.0.300/8' is not an address or network"):
        AllowList.parse("10.0.0.0/8,10.0.0.300/8")
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("")


def test_non_loopback_address_needs_an_allow_list():
    result = run_serve("--runtime", "echo", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "listening on" not in result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert "0.0.0.0 is not a loopback address" in error
    assert "--allow CIDR[,CIDR...]" in error and "--allow-any" in error


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow", "10.0.0.0/8,bogus"], "allow list: 'bogus' is not an address or network"),
        (["--allow", "10.0.0.0/8", "--allow-any"], "--allow and --allow-any exclude each other"),
        (["--allow", ","], "argument --allow: expected CIDR[,CIDR...]"),
    ],
)
def test_bad_allow_flags_are_one_line_errors(flags, message):
    result = run_serve("--runtime", "echo", "--port", "0", *flags)
    assert result.returncode == 2
    assert "listening on" not in result.stdout
    assert message in result.stderr.strip().splitlines()[-1]


def _handshake_from(source: str, host: str, port: int) -> tuple[bytes, int]:
    """Connects from the loopback address `source`; (first bytes the server sent, our port)."""
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.settimeout(10.0)
        sock.connect((host, port))
        own_port = sock.getsockname()[1]
        try:
            return sock.recv(16), own_port
        except ConnectionResetError:
            return b"", own_port


def test_peer_outside_allow_list_is_closed_at_accept(tmp_path):
    # serves on 127.0.0.1; clients connect from two loopback addresses, one of them allowed
    proc, host, port, log = start_server(
        tmp_path, "--runtime", "echo", "--port", "0", "--allow", "127.0.0.2"
    )
    try:
        greeting, refused_port = _handshake_from("127.0.0.1", host, port)
        assert greeting == b""  # closed without the handshake byte
        with pytest.raises(ConnectionLostError, match="closed the connection before its handshake"):
            client(host, port)
        greeting, _ = _handshake_from("127.0.0.2", host, port)
        assert greeting == b"\x00"
        text = log.read_text()
        assert "accepting clients from 127.0.0.2 only" in text
        refusals = [line for line in text.splitlines() if "refused connection from" in line]
        assert len(refusals) == 2  # one line per refused peer, naming it
        assert f"refused connection from 127.0.0.1:{refused_port}: not in the allow list " \
               "127.0.0.2/32" in refusals[0]
        assert "127.0.0.2:" not in "".join(refusals)
        assert proc.poll() is None
    finally:
        stop(proc)


def test_wildcard_address_refuses_a_peer_outside_its_allow_list(tmp_path):
    # listening on every address, admitting one network (TEST-NET-1, where no host of this
    # machine's networks is); a client on loopback is not in it
    proc, _, port, log = start_server(
        tmp_path, "--runtime", "echo", "--host", "0.0.0.0", "--port", "0",
        "--allow", "192.0.2.0/24",
    )
    try:
        ports = []
        for _ in range(2):
            greeting, own_port = _handshake_from("127.0.0.1", "127.0.0.1", port)
            assert greeting == b""  # closed at accept, no handshake byte
            ports.append(own_port)
        text = log.read_text()
        assert "accepting clients from 192.0.2.0/24 only" in text
        refusals = [line for line in text.splitlines() if "refused connection from" in line]
        assert [f"refused connection from 127.0.0.1:{p}: not in the allow list 192.0.2.0/24"
                in line for line, p in zip(refusals, ports)] == [True, True]
        assert len(refusals) == 2
        assert proc.poll() is None
    finally:
        stop(proc)


def test_allowed_client_runs_on_a_wildcard_address(tmp_path, digits_onnx):
    pytest.importorskip("onnxruntime")
    proc, _, port, log = start_server(
        tmp_path, "--runtime", "onnxruntime", "--host", "0.0.0.0", "--port", "0",
        "--allow", "127.0.0.0/8",
    )
    try:
        protocol = client("127.0.0.1", port)
        assert protocol.upload_model(digits_onnx)
        protocol.disconnect()
    finally:
        stop(proc)


# --- 4. ONNX models that name files on the server -------------------------------------------


def _external_data_model(location: str, where: str = "initializer") -> bytes:
    """x + w where w's 4 int32 values are 'stored' in the file `location` (external data):
    as an initializer, as a Constant node's tensor, or inside an If branch (a subgraph)."""
    from onnx import TensorProto, helper

    tensor = TensorProto(name="w", data_type=TensorProto.INT32, dims=[4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("x", TensorProto.INT32, [4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [4])
    initializers = []
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    if where == "initializer":
        initializers = [tensor]
    elif where == "constant":
        nodes.insert(0, helper.make_node("Constant", [], ["w"], value=tensor))
    else:  # a Constant inside both branches of an If
        branch = helper.make_graph(
            [helper.make_node("Constant", [], ["w"], value=tensor)], "branch", [],
            [helper.make_tensor_value_info("w", TensorProto.INT32, [4])],
        )
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        nodes.insert(0, helper.make_node("If", ["c"], ["w"], then_branch=branch,
                                         else_branch=branch))
        initializers = [cond]
    graph = helper.make_graph(nodes, "external", [x], [y], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


@pytest.mark.parametrize("where", ["initializer", "constant", "subgraph"])
def test_file_references_found_wherever_a_tensor_is(where):
    from kenning_hil.formats.onnx import file_references

    found = file_references(_external_data_model("../../etc/hostname", where))
    assert len(found) == (2 if where == "subgraph" else 1)
    assert "'w' reads external data file '../../etc/hostname'" in found[0]


def test_epcontext_node_naming_a_context_file_is_a_file_reference():
    from onnx import TensorProto, helper

    from kenning_hil.formats.onnx import file_references

    def model(embed_mode: int) -> bytes:
        node = helper.make_node(
            "EPContext", ["x"], ["y"], name="ctx", domain="com.microsoft",
            embed_mode=embed_mode, ep_cache_context="/srv/secret.bin",
        )
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        return helper.make_model(graph).SerializeToString()

    assert file_references(model(0)) == [
        "EPContext node 'ctx' reads context file '/srv/secret.bin'"
    ]
    assert file_references(model(1)) == []  # the context is embedded in the attribute


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand."""
    length, varint = len(payload), b""
    while length >= 0x80:
        varint += bytes([length & 0x7F | 0x80])
        length >>= 7
    return bytes([number << 3 | 2]) + varint + bytes([length]) + payload


def test_nesting_and_truncation_are_handled_without_recursion():
    from kenning_hil.core.errors import ModelLoadError
    from kenning_hil.formats.onnx import file_references

    # 3000 graphs nested through If attributes (graph.node -> node.attribute -> attribute.g),
    # the innermost holding an external initializer: found, no RecursionError
    tensor = _field(8, b"w") + bytes([14 << 3, 1])  # name "w", data_location EXTERNAL
    graph = _field(5, tensor)
    for _ in range(3000):
        graph = _field(1, _field(5, _field(6, graph)))
    model = _field(7, graph)
    assert file_references(model) == ["initializer 'w' reads external data file ''"]
    with pytest.raises(ModelLoadError, match="is not a valid ONNX model: field 7 at byte 4"):
        file_references(model[:-1])


def test_self_contained_model_names_no_files(digits_onnx):
    from kenning_hil.formats.onnx import file_references

    assert file_references(digits_onnx.read_bytes()) == []


def test_onnx_external_data_is_refused_and_not_read(tmp_path, digits_onnx):
    pytest.importorskip("onnxruntime")
    # a FIFO: opening it to read would block the server (no writer ever comes), and while a
    # reader has it open a non-blocking writer's open succeeds, so both show a read attempt
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    (tmp_path / "weights.bin").write_bytes(np.arange(4, dtype=np.int32).tobytes())
    proc, host, port, log = start_server(
        tmp_path, "--runtime", "onnxruntime", "--port", "0", cwd=tmp_path
    )
    try:
        for location in ("/etc/hostname", "../../../etc/hostname", str(fifo), "weights.bin"):
            protocol = client(host, port)
            start = time.monotonic()
            assert not protocol.upload_model_bytes(_external_data_model(location))
            assert time.monotonic() - start < 15.0  # answered, not stuck opening the FIFO
            reason = protocol.refusal_reason()
            assert f"reads external data file {location!r}" in reason, reason
            assert "uploaded model must be self-contained" in reason
            # the session goes on: the next (good) model is accepted
            assert protocol.upload_model(digits_onnx)
            protocol.disconnect()
            with pytest.raises(OSError) as no_reader:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            assert no_reader.value.errno == errno.ENXIO
        assert proc.poll() is None
    finally:
        stop(proc)


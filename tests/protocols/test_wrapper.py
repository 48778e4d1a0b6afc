"""Protocol wrappers over a real target server (`--runtime echo`, a real process): the
wrapper base forwards the whole RuntimeProtocol interface and nothing else, and the session
protocol skips uploads the board already has and gives each run only its own statistics."""

import inspect

import pytest

from kenning_hil.core.protocol import RuntimeProtocol
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.protocols.session import SessionProtocol
from kenning_hil.protocols.wrapper import ProtocolWrapper
from kenning_hil.targets.kinds import Instance, TargetSession

from .conftest import ECHO_INPUT, ECHO_SPEC


def interface_names() -> list[str]:
    """What RuntimeProtocol declares for its users (its construction excepted)."""
    names = []
    for name, value in vars(RuntimeProtocol).items():
        if name.startswith("_") or name == "arguments_structure":
            continue
        if isinstance(value, classmethod):
            continue  # from_argparse / from_json build a protocol, they are not its interface
        names.append(name)
    return names


def test_the_wrapper_forwards_every_declared_member():
    names = interface_names()
    assert {"host_quantization", "upload_io_specification_dict", "close_server"} <= set(names)
    missing = [name for name in names if name not in vars(ProtocolWrapper)]
    assert missing == [], f"ProtocolWrapper does not forward {missing}"


def test_the_wrapper_hides_what_the_interface_does_not_declare(tcp_server):
    _, host, port = tcp_server
    client = NetworkProtocol(host=host, port=port, timeout=5.0)
    wrapped = ProtocolWrapper(client)
    assert wrapped.target_name == client.target_name
    assert not wrapped.connected
    assert wrapped.initialize_client()
    try:
        assert wrapped.connected and wrapped.host_quantization is False
        with pytest.raises(AttributeError):
            wrapped.upload_model_bytes  # noqa: B018 (NetworkProtocol's own, not the interface)
        # whoever shows progress sets the watcher on the wrapper; the wrapped protocol calls it
        watcher = print
        wrapped.upload_progress = watcher
        assert client.upload_progress is watcher and wrapped.upload_progress is watcher
        wrapped.upload_progress = None
        assert client.upload_progress is None
    finally:
        wrapped.disconnect()
    assert not client.connected


@pytest.fixture
def echo_session(tcp_server, tmp_path):
    """A client connected to the echo server, the board session holding it (what the
    session manager hands the harness) and a model file; disconnected after the test."""
    _, host, port = tcp_server
    model = tmp_path / "model.bin"
    model.write_bytes(b"echo model")
    client = NetworkProtocol(host=host, port=port, timeout=5.0)
    client.initialize_client()
    try:
        yield client, TargetSession("echo", Instance(0, "0", "echo-0"), client), model
    finally:
        client.disconnect()


def run_samples(protocol: RuntimeProtocol, model, samples: int) -> dict:
    assert protocol.upload_io_specification_dict(ECHO_SPEC), protocol.refusal_reason()
    assert protocol.upload_model(model), protocol.refusal_reason()
    for _ in range(samples):
        assert protocol.upload_input(ECHO_INPUT)
        assert protocol.request_processing()
        assert protocol.download_output() == (True, b"\0" * 4)
    return protocol.download_statistics(final=True).to_dict()


def test_session_protocol_caches_the_model_and_cuts_statistics_per_run(echo_session):
    client, session, model = echo_session
    first = SessionProtocol(session, "model-a")
    assert first.initialize_client()  # the session is connected already
    stats = run_samples(first, model, 3)
    first.disconnect()  # the session keeps its connection
    assert client.connected and first.uploaded and session.loaded_model == "model-a"
    assert len(stats["target_inference_step"]) == 3

    second = SessionProtocol(session, "model-a")
    stats = run_samples(second, model, 2)
    assert not second.uploaded  # the board holds this model already
    # the server's series grows since the connect (5 steps): this run sees its own 2
    assert len(stats["target_inference_step"]) == 2
    assert len(client.download_statistics().get_values("target_inference_step")) == 5

    third = SessionProtocol(session, "model-b")
    run_samples(third, model, 1)
    assert third.uploaded and session.loaded_model == "model-b"


def test_protocol_interface_methods_have_documented_signatures():
    # the wrapper's signatures are the interface's, so a caller may pass arguments by name
    for name in interface_names():
        declared = getattr(RuntimeProtocol, name)
        forwarded = getattr(ProtocolWrapper, name)
        if isinstance(declared, property) or not callable(declared):
            continue
        assert list(inspect.signature(forwarded).parameters) == list(
            inspect.signature(declared).parameters
        ), name


def test_a_run_after_direct_protocol_use_measures_itself_alone(echo_session):
    """#23 finding 3: inferences made through the session's protocol directly (the
    `protocol` fixture) before a run are not folded into the run's statistics, and a
    refusal names only its own cause, not earlier refusals."""
    client, session, model = echo_session
    run_samples(client, model, 4)  # direct use, as through the protocol fixture
    assert not client.upload_io_specification_dict({"input": "not a list"})
    first_refusal = client.refusal_reason()
    assert first_refusal

    run = SessionProtocol(session, "model-a")
    stats = run_samples(run, model, 3)
    assert len(stats["target_inference_step"]) == 3  # not 4 + 3

    assert not run.upload_io_specification_dict({"output": []})
    second_refusal = run.refusal_reason()
    assert second_refusal and second_refusal != first_refusal
    assert first_refusal not in second_refusal, (first_refusal, second_refusal)
    # a request the target answers without logging leaves no stale reason behind
    assert run.download_output()[0] is True
    assert run.refusal_reason() == ""

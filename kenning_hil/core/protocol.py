"""RuntimeProtocol: the host <-> target communication interface, and the vocabulary of the
wire protocol (message types, flow control, flags, server actions, messages).

The byte encoding (PROTOCOL.md) lives in `kenning_hil.protocols`; this module holds only what
both sides and every transport share, so it imports no socket or serial code.

Numbers follow Kenning's protocol version 3 so that a Kenning host can drive our server and our
host can drive a Kenning target.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum, IntFlag
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kenning_hil.core.args import ArgumentsHandler
from kenning_hil.core.errors import ConfigurationError, KenningHILError, os_reason

if TYPE_CHECKING:
    from kenning_hil.core.measurements import Measurements


class MessageType(IntEnum):
    """What a message carries or asks for (low 38 bits of the 40-bit message id)."""

    PING = 0
    STATUS = 1
    DATA = 2
    MODEL = 3
    PROCESS = 4
    OUTPUT = 5
    STATS = 6
    IO_SPEC = 7
    TRACE_DATA = 8
    OPTIMIZERS = 9
    OPTIMIZE_MODEL = 10
    RUNTIME = 11
    UNOPTIMIZED_MODEL = 12
    LOGS = 13


class FlowControl(IntEnum):
    """Role of a message in an exchange (top 2 bits of the 40-bit message id)."""

    REQUEST = 0
    REQUEST_RETRANSMIT = 1
    ACKNOWLEDGE = 2
    TRANSMISSION = 3


class Flag(IntFlag):
    """Bits of the 16-bit flags field."""

    NONE = 0
    SUCCESS = 1 << 0
    FAIL = 1 << 1
    IS_HOST_MESSAGE = 1 << 2
    HAS_PAYLOAD = 1 << 3
    FIRST = 1 << 4
    LAST = 1 << 5
    IS_KENNING = 1 << 6
    IS_ZEPHYR = 1 << 7
    # bits 8-11 are reserved; bits 12-15 mean something only for a given message type
    SPEC_FLAG_1 = 1 << 12
    SPEC_FLAG_2 = 1 << 13
    SPEC_FLAG_3 = 1 << 14
    SPEC_FLAG_4 = 1 << 15
    # on IO_SPEC: the payload is the packed C struct, not JSON
    SERIALIZED = SPEC_FLAG_1


class ServerStatus(Enum):
    """Seed: outcome of one `receive_message`/`gather_data` call."""

    NOTHING = 0
    CLIENT_CONNECTED = 1
    CLIENT_DISCONNECTED = 2
    CLIENT_IGNORED = 3
    DATA_READY = 4
    DATA_INVALID = 5


class ServerAction(IntEnum):
    """What a Kenning-style server finished; the one-byte payload of its status answers."""

    WAITING_FOR_CLIENT = 0
    CLIENT_CONNECTED = 1
    UPLOADING_IOSPEC = 2
    UPLOADING_MODEL = 3
    UPLOADING_UNOPTIMIZED_MODEL = 4
    UPLOADING_INPUT = 5
    PROCESSING_INPUT = 6
    EXTRACTING_OUTPUT = 7
    COMPUTING_STATISTICS = 8
    OPTIMIZING_MODEL = 9
    UPLOADING_OPTIMIZERS = 10
    UPLOADING_RUNTIME = 11
    IDLE = 12


_SUCCESS = int(Flag.SUCCESS)
_FAIL = int(Flag.FAIL)
_SUCCESS_OR_FAIL = _SUCCESS | _FAIL
# plain ints for hot paths (enum member lookups cost ~0.15 us each)
_PING, _DATA, _MODEL, _PROCESS = 0, 2, 3, 4
_OUTPUT, _STATS, _IO_SPEC = 5, 6, 7
_REQUEST = 0

# The action byte a Kenning-style server puts on the answer to each request; requests missing
# here (OUTPUT, STATS, PING, ...) are answered with data or nothing instead.
STATUS_ACTIONS: dict[int, ServerAction] = {
    MessageType.IO_SPEC: ServerAction.UPLOADING_IOSPEC,
    MessageType.MODEL: ServerAction.UPLOADING_MODEL,
    MessageType.UNOPTIMIZED_MODEL: ServerAction.UPLOADING_UNOPTIMIZED_MODEL,
    MessageType.DATA: ServerAction.UPLOADING_INPUT,
    MessageType.PROCESS: ServerAction.PROCESSING_INPUT,
    MessageType.RUNTIME: ServerAction.UPLOADING_RUNTIME,
}


def message_type_name(message_type: int) -> str:
    """`MODEL` for a known type, `type 42` for an unknown one (never raises)."""
    try:
        return MessageType(message_type).name
    except ValueError:
        return f"type {message_type}"


@dataclass(slots=True)
class Message:
    """One protocol message: a whole (reassembled) transmission, request or answer.

    `flags` is a `Flag` bitmask kept as a plain int (IntFlag arithmetic is slow on the hot
    path); `message_type` is an int so that unknown types survive decoding and get a FAIL.
    """

    message_type: int
    payload: bytes = b""
    flags: int = 0
    flow_control: int = FlowControl.TRANSMISSION

    @property
    def success(self) -> bool:
        return self.flags & _SUCCESS_OR_FAIL == _SUCCESS

    @property
    def failed(self) -> bool:
        return bool(self.flags & _FAIL)

    @property
    def type_name(self) -> str:
        return message_type_name(self.message_type)

    def __repr__(self) -> str:
        try:
            flow = FlowControl(self.flow_control).name
        except ValueError:
            flow = str(self.flow_control)
        return (
            f"Message({self.type_name}, {flow}, flags={Flag(self.flags)!r}, "
            f"payload={len(self.payload)} bytes)"
        )


class ProtocolError(KenningHILError):
    """Communication with a target failed (timeout, lost connection, malformed answer).

    `target` names the peer (e.g. ``tcp://127.0.0.1:12345``), `message_type` the request in
    flight, `elapsed` the seconds spent on it. `measurements` is filled by the caller with
    whatever was measured before the failure, so it is never lost.
    """

    def __init__(
        self,
        reason: str,
        target: str = "",
        message_type: int | None = None,
        elapsed: float | None = None,
    ):
        parts = []
        if target:
            parts.append(f"target {target}")
        if message_type is not None:
            parts.append(f"{message_type_name(message_type)} request")
        if elapsed is not None:
            parts.append(f"after {elapsed:.3f} s")
        where = (", ".join(parts) + ": ") if parts else ""
        super().__init__(where + reason)
        self.reason = reason
        self.target = target
        self.message_type = message_type
        self.elapsed = elapsed
        self.measurements: Any = None


class RequestTimeoutError(ProtocolError):
    """The target did not answer a request within its timeout."""

    # a board that stopped answering is a lab problem, not a model's (run/outcome.py)
    infrastructure = "timeout"


class ConnectionLostError(ProtocolError):
    """The connection closed (or could not be opened) while talking to the target."""

    infrastructure = "connection"


class RequestDeniedError(ProtocolError):
    """The target answered a request with FAIL."""


class RuntimeProtocol(ArgumentsHandler):
    """The interface for communication between the host (client) and the target (server).

    The target acts as a server; the host that runs the benchmark is its client. Client-side
    methods return the seed's booleans / (bool, bytes) pairs for answers the target gave
    (True on OK, False on ERROR) and raise `ProtocolError` when no valid answer came at all
    (timeout, lost connection): a silent target must never hang the host.
    """

    arguments_structure: dict[str, dict] = {}

    #: True when the target exchanges tensors in the model's own types (firmware): the host
    #: then quantises inputs and dequantises outputs, and sends an io spec of raw tensors
    host_quantization: bool = False

    #: largest message accepted, in bytes; a server also bounds received io specs by it
    max_message_size: int = 64 << 20

    #: called with (bytes the target has read, model size) during a model upload by a
    #: protocol that can tell; set by whoever shows progress, None: nobody watches
    upload_progress: Callable[[int, int], None] | None = None

    # -- set-up ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a connection (client) or a client (server) is open."""
        return False

    @property
    def target_name(self) -> str:
        """Names the other side in messages (e.g. ``tcp://127.0.0.1:12345``)."""
        return type(self).__name__

    def refusal_reason(self) -> str:
        """Why the other side refused the last request, when it said (else empty)."""
        return ""

    def initialize_client(self) -> bool:
        """Connects to the target (client side, on the host)."""
        raise NotImplementedError

    def initialize_server(self) -> bool:
        """Starts listening for a host (server side, on the target)."""
        raise NotImplementedError

    def disconnect(self):
        """Ends the connection with the other side."""
        raise NotImplementedError

    # -- raw data -------------------------------------------------------------------------

    def send_data(self, data: Any) -> bool:
        """Sends already-encoded bytes to the other side."""
        raise NotImplementedError

    def receive_data(self, connection: Any, mask: int) -> tuple[ServerStatus, Any | None]:
        """Reads whatever the connection has; returns the status and the bytes read."""
        raise NotImplementedError

    def gather_data(self, timeout: float | None = None) -> tuple[ServerStatus, Any | None]:
        """Waits up to `timeout` seconds for data from the other side (None: forever)."""
        raise NotImplementedError

    def receive_message(self, timeout: float | None = None) -> tuple[ServerStatus, Message | None]:
        """Waits for one whole message: (DATA_READY, message), (NOTHING, None) on timeout,
        (DATA_INVALID, None) on a corrupt message, or (CLIENT_DISCONNECTED, None)."""
        raise NotImplementedError

    def receive_confirmation(self) -> tuple[bool, bytes | None]:
        """Waits for the answer to the last request: (True, data) on OK, (False, data) on
        ERROR."""
        raise NotImplementedError

    # -- client requests ------------------------------------------------------------------

    def upload_input(self, data: bytes) -> bool:
        """Sends one input sample (DATA) and waits until the target has stored it."""
        raise NotImplementedError

    def upload_model(self, path: Path) -> bool:
        """Sends the compiled model (MODEL) and waits until the target has loaded it."""
        raise NotImplementedError

    def upload_io_specification(self, path: Path) -> bool:
        """Sends the model's io specification (IO_SPEC) read from the JSON file at `path`."""
        try:
            spec = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read io specification {path}: {os_reason(exc)}") from exc
        return self.upload_io_specification_dict(spec)

    def upload_io_specification_dict(self, spec: dict) -> bool:
        """Sends the model's io specification (IO_SPEC), encoded as the target reads it."""
        raise NotImplementedError

    def upload_runtime(self, path: Path) -> bool:
        """Sends a runtime binary (RUNTIME) to targets that load one at run time."""
        raise NotImplementedError

    def request_processing(self, get_time_func: Callable[[], float] = time.perf_counter) -> bool:
        """Starts inference on the target (PROCESS) and waits until it finished.

        The round trip, timed with `get_time_func`, is kept in `last_processing_time` (s).
        """
        raise NotImplementedError

    def download_output(self) -> tuple[bool, bytes | None]:
        """Fetches the raw output bytes of the last inference (OUTPUT)."""
        raise NotImplementedError

    def download_statistics(self, final: bool = False) -> Measurements:
        """Fetches the target's statistics (STATS) as measurement lists.

        A list that grows as the target measures covers the whole connection, as a Kenning
        server keeps it; a snapshot (a firmware's arena peak) is a list of its current value.
        Whoever shares a connection between runs cuts each run's part out
        (`kenning_hil.protocols.session.SessionProtocol`).
        """
        raise NotImplementedError

    def statistics_so_far(self) -> Measurements:
        """Statistics the client already holds, with no request sent (e.g. per-inference
        counts it collected after each OUTPUT): what a run cut short keeps when the board
        can no longer be asked, as after Ctrl-C. None by default."""
        return Measurements()

    # -- server answers -------------------------------------------------------------------

    def request_success(self, data: bytes | None = b"") -> bool:
        """Answers the request being served with OK (and `data`, if any)."""
        raise NotImplementedError

    def request_failure(self, reason: str = "") -> bool:
        """Answers the request being served with ERROR; `reason` goes to the host's log."""
        raise NotImplementedError

    def close_server(self) -> None:
        """Stops serving: closes the client connection and the listening endpoint."""
        raise NotImplementedError

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_argparse(cls, args: argparse.Namespace, **context):
        return super().from_argparse(args, **context)

    @classmethod
    def from_json(cls, json_dict: dict | None, **context):
        return super().from_json(json_dict, **context)


class ServerSession:
    """Which requests a target server accepts in its current state, and why not.

    The order is the seed's session: IO_SPEC and MODEL (either order; MODEL needs no io spec
    for runtimes that carry one in the model), then per sample DATA -> PROCESS -> OUTPUT,
    STATS at any time after connect. A request that breaks the order gets FAIL and leaves the
    state as it was, so a confused host can recover by starting over.
    """

    # payload-less requests: a payload there is malformed (it crashes Kenning's Zephyr runtime)
    NO_PAYLOAD = frozenset({_PING, _PROCESS, _OUTPUT, _STATS})
    NEEDS_PAYLOAD = frozenset({_MODEL, _IO_SPEC, _DATA})
    SUPPORTED = NO_PAYLOAD | NEEDS_PAYLOAD

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.has_iospec = False
        self.has_model = False
        self.has_input = False
        self.has_output = False

    def refusal(self, message: Message) -> str | None:
        """Returns why `message` must be refused now, or None when it may be served."""
        mtype = message.message_type
        if message.flow_control != _REQUEST:
            return f"unexpected {_flow_name(message.flow_control)} of {message.type_name}"
        if mtype == _DATA:  # the per-sample requests first: this runs for every inference
            if not self.has_model:
                return "DATA before MODEL"
            return None if message.payload else "DATA request carries no payload"
        if mtype == _PROCESS or mtype == _OUTPUT:
            if message.payload:
                return (
                    f"{message.type_name} request must carry no payload, "
                    f"got {len(message.payload)} bytes"
                )
            if mtype == _PROCESS:
                if not self.has_model:
                    return "PROCESS before MODEL"
                if not self.has_input:
                    return "PROCESS before DATA"
            elif not self.has_output:
                return "OUTPUT before PROCESS"
            return None
        if mtype not in self.SUPPORTED:
            return f"unsupported request {message.type_name}"
        if mtype in self.NO_PAYLOAD and message.payload:
            return (
                f"{message.type_name} request must carry no payload, "
                f"got {len(message.payload)} bytes"
            )
        if mtype in self.NEEDS_PAYLOAD and not message.payload:
            return f"{message.type_name} request carries no payload"
        return None

    def advance(self, message_type: int) -> None:
        """Records that a request of `message_type` was served successfully."""
        if message_type == _DATA:
            self.has_input = True
            self.has_output = False
        elif message_type == _PROCESS:
            self.has_output = True
        elif message_type == _MODEL:
            self.has_model = True
            self.has_input = self.has_output = False
        elif message_type == _IO_SPEC:
            self.has_iospec = True

    def fail(self, message_type: int) -> None:
        """Records that serving a request of `message_type` failed."""
        if message_type == _MODEL:
            # the old model may be half-replaced: require a new MODEL before inference
            self.has_model = self.has_input = self.has_output = False
        elif message_type == _DATA:
            self.has_input = self.has_output = False
        elif message_type == _PROCESS:
            self.has_output = False


def _flow_name(flow_control: int) -> str:
    try:
        return FlowControl(flow_control).name
    except ValueError:
        return f"flow control {flow_control}"

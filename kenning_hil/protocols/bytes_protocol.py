"""RuntimeProtocol over a byte-stream transport (PROTOCOL.md), and its TCP and UART forms.

Client (host) side: every request is one blocking exchange on the caller's thread: send the
frames, read until the matching answer arrives. No thread pools, no per-message threads: the
per-inference overhead is a few encode/decode calls and three round trips. Each request has a
timeout (scaled by size and line rate for MODEL), a bounded retry when the target asks for a
retransmission or an answer arrives corrupt, accepts LOGS transmissions while waiting (they go
to the `kenning_hil.target` logger and `target_logs`), and takes both Kenning-style answers
(IS_KENNING + the finished server action byte) and Zephyr-style ones (IS_ZEPHYR, no payload).

Server (target) side: `receive_message` hands the runtime one request at a time and deals
itself with what is not a request: PINGs (UART sessions), REQUEST_RETRANSMIT (resends the last
answer), acknowledgements, and corrupt input (FAIL answer, or a retransmission request for a
checksum mismatch; over TCP the connection is then dropped, since the stream can no longer be
trusted). Answers are Kenning-style. The reason for a FAIL goes first as a LOGS message, so
that the host can say why.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError, os_reason
from kenning_hil.core.measurements import Measurements
from kenning_hil.core.protocol import (
    STATUS_ACTIONS,
    ConnectionLostError,
    Flag,
    FlowControl,
    Message,
    MessageType,
    ProtocolError,
    RequestTimeoutError,
    RuntimeProtocol,
    ServerStatus,
    message_type_name,
)
from kenning_hil.protocols.channel import Corruption, MessageChannel
from kenning_hil.protocols.frame import (
    MAX_PLAUSIBLE_TYPE,
    TCP_MAX_FRAME_SIZE,
    UART_MAX_FRAME_SIZE,
    WHOLE_TRANSMISSION,
    ChecksumPolicy,
    HeaderLayout,
    encode_frame,
)
from kenning_hil.protocols.iospec_struct import IOSPEC_STRUCT_SIZE, pack_io_spec, unpack_io_spec
from kenning_hil.protocols.stats import StatsFormatError, decode_stats
from kenning_hil.protocols.transport import Transport, TransportClosedError

log = logging.getLogger("kenning_hil.protocols")
target_log = logging.getLogger("kenning_hil.target")

_SUCCESS = int(Flag.SUCCESS)
_FAIL = int(Flag.FAIL)
_IS_KENNING = int(Flag.IS_KENNING)
_HOST = int(Flag.IS_HOST_MESSAGE)
_SERIALIZED = int(Flag.SERIALIZED)
_REQUEST = int(FlowControl.REQUEST)
_RETRANSMIT = int(FlowControl.REQUEST_RETRANSMIT)
_ACKNOWLEDGE = int(FlowControl.ACKNOWLEDGE)
_TRANSMISSION = int(FlowControl.TRANSMISSION)
_LOGS = int(MessageType.LOGS)
_PING = int(MessageType.PING)
_IO_SPEC = int(MessageType.IO_SPEC)
_DATA = int(MessageType.DATA)
_PROCESS = int(MessageType.PROCESS)
_OUTPUT = int(MessageType.OUTPUT)
_SUCCESS_OR_FAIL = _SUCCESS | _FAIL
_STATUS_ACTIONS = {int(k): bytes((int(v),)) for k, v in STATUS_ACTIONS.items()}
_CHUNK_FLAGS = int(Flag.FIRST | Flag.LAST)
# enum members looked up once (each lookup costs ~0.15 us on the hot path)
_DATA_READY = ServerStatus.DATA_READY
_NOTHING = ServerStatus.NOTHING
_DATA_INVALID = ServerStatus.DATA_INVALID

#: Seconds a serial server waits, with the line quiet and no new request, for a request it
#: asked for again (REQUEST_RETRANSMIT) before answering it FAIL with the reason: Kenning's
#: UART host ignores REQUEST_RETRANSMIT and waits for the answer without a timeout. The
#: firmware's rule (KHIL_SESSION_RESEND_WAIT quiet RX gaps of 1 s: 5 s); our host resends at
#: once, which ends the wait.
RESEND_WAIT_SECONDS = 5.0


@dataclass(slots=True)
class _ResendWait:
    """A request asked for again (server side): its type, why, and when to give up on it."""

    message_type: int
    reason: str
    deadline: float


class BytesProtocol(RuntimeProtocol):
    """The request/response logic shared by TCP and UART; subclasses open the transport."""

    arguments_structure = {
        "timeout": {
            "description": "Seconds to wait for the answer to a request",
            "type": float,
            "default": 5.0,
        },
        "process_timeout": {
            "description": "Seconds to wait for an inference (PROCESS) to finish",
            "type": float,
            "default": 30.0,
        },
        "retries": {
            "description": "Times a request is sent again when the other side asks for a "
            "retransmission or its answer arrives corrupt",
            "type": int,
            "default": 3,
        },
        "checksum": {
            "description": "What to do with received checksums: verify (over TCP 0x00 = not "
            "computed is accepted) or ignore (targets that leave the byte uninitialised)",
            "type": str,
            "enum": ["verify", "ignore"],
            "default": "verify",
        },
        "header": {
            "description": "Frame header layout: v3 (12 bytes, Kenning since April 2026) or "
            "v2 (8 bytes: older Kenning and kenning-zephyr-runtime firmware)",
            "type": str,
            "enum": ["v3", "v2"],
            "default": "v3",
        },
        "max_message_size": {
            "description": "Largest message accepted, in bytes (bounds model uploads)",
            "type": int,
            "default": 64 << 20,
        },
        "frame_timeout": {
            "description": "Seconds after which a partial frame that stopped arriving is "
            "dropped and the receiver resynchronises",
            "type": float,
            "default": 1.0,
        },
        "host_quantization": {
            "description": "The host quantises inputs and dequantises outputs (targets that "
            "exchange tensors in the model's own types, e.g. firmware); default: off over "
            "TCP, on over UART",
            "type": bool,
            "nullable": True,
            "default": None,
        },
    }

    #: transport's frame size limit (header included)
    default_max_frame_size = TCP_MAX_FRAME_SIZE
    #: a received 0x00 checksum means "not computed" (Kenning's TCP host and server send it)
    trust_zero_checksum = True
    #: how the io spec travels: JSON (TCP) or the packed struct (UART)
    serialized_io_spec = False
    #: default for `host_quantization`
    default_host_quantization = False
    #: whether a session is opened and closed with PINGs (UART) or by the connection (TCP)
    ping_sessions = False
    #: bytes sent before a request the target asked for again; see UARTProtocol
    resend_preamble = b""
    #: server: seconds of quiet line after which a request asked for again and not resent
    #: is answered FAIL (`RESEND_WAIT_SECONDS`, UART); None: never (TCP hosts send 0x00
    #: checksums or resend)
    resend_wait: float | None = None
    _resend_wait: _ResendWait | None = None  # the request asked for again, if any

    def __init__(
        self,
        timeout: float = 5.0,
        process_timeout: float = 30.0,
        retries: int = 3,
        checksum: str = "verify",
        max_message_size: int = 64 << 20,
        frame_timeout: float = 1.0,
        host_quantization: bool | None = None,
        header: str = "v3",
    ):
        if timeout <= 0 or process_timeout <= 0 or frame_timeout <= 0:
            raise ConfigurationError(
                f"{type(self).__name__}: timeouts must be positive, got timeout={timeout}, "
                f"process_timeout={process_timeout}, frame_timeout={frame_timeout}"
            )
        if retries < 0:
            raise ConfigurationError(f"{type(self).__name__}: retries must be >= 0, got {retries}")
        self.timeout = timeout
        self.process_timeout = process_timeout
        self.retries = retries
        self.checksum = ChecksumPolicy(checksum)
        try:
            self.header = HeaderLayout(header)
        except ValueError:
            raise ConfigurationError(
                f"{type(self).__name__}: header must be v3 or v2, got {header!r}") from None
        self.max_message_size = max_message_size
        self.frame_timeout = frame_timeout
        self.host_quantization = (
            self.default_host_quantization if host_quantization is None else host_quantization
        )
        self.channel: MessageChannel | None = None
        self.target_logs: deque[str] = deque(maxlen=200)
        # log lines received in all, and how many there were when the last request went
        # out: a refusal names what the target logged for that request only (#23)
        self._logs_received = 0
        self._logs_before_request = 0
        self.last_processing_time: float | None = None
        self.last_answer: Message | None = None
        # server side
        self._current: Message | None = None
        self._last_answer_frames: tuple[int, list[bytes]] | None = None
        self._session_open = False
        self._role: str | None = None  # "client" or "server", set by initialize_*
        # encoded frames that never change (payload-less requests, status answers)
        self._constant_frames: dict[tuple, list[bytes]] = {}
        self._ok_frames: dict[int, list[bytes]] = {}

    # -- transport hooks -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.channel is not None

    @property
    def target_name(self) -> str:
        """The peer, for error messages."""
        return self.channel.name if self.channel is not None else self.describe_target()

    def describe_target(self) -> str:
        raise NotImplementedError

    def open_client_transport(self) -> Transport:
        raise NotImplementedError

    def _make_channel(self, transport: Transport) -> MessageChannel:
        return MessageChannel(
            transport,
            checksum=self.checksum,
            max_message_size=self.max_message_size,
            stall_timeout=self.frame_timeout,
            header=self.header,
            trust_zero_checksum=self.trust_zero_checksum,
        )

    # -- client: session -------------------------------------------------------------------

    def initialize_client(self) -> bool:
        """Connects to the target; raises ConnectionLostError naming it when that fails."""
        self._role = "client"
        if self.channel is not None:  # a reconnect: let the old connection go first
            self.channel.close()
            self.channel = None
        self.channel = self._make_channel(self.open_client_transport())
        if self.ping_sessions:
            try:
                self._open_ping_session(self.connect_attempts, self.connect_timeout)
            except ProtocolError:
                self.channel.close()
                self.channel = None
                raise
        return True

    def disconnect(self):
        """Client: ends the session (UART: disconnect PING) and closes the connection.
        Server: drops the current client."""
        if self._role == "server":
            self._drop_client()
            return
        if self.channel is None:
            return
        if self.ping_sessions:
            # tell the target the session is over; its answer is a courtesy
            try:
                self._exchange(_PING, b"", _FAIL, min(self.timeout, 1.0), raise_timeout=False)
            except ProtocolError as exc:
                log.debug("disconnect PING to %s failed: %s", self.channel.name, exc)
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _open_ping_session(self, attempts: int = 5, attempt_timeout: float = 1.0) -> None:
        """UART connect: PING/SUCCESS until the target answers (Kenning: 5 tries of 1 s).
        A refused connect (a session still open, e.g. after an aborted run) is followed by a
        restart PING (SUCCESS|FAIL) before the next try."""
        assert self.channel is not None
        self.channel.discard_input()
        start = time.monotonic()
        refused = False
        for _ in range(attempts):
            answer = self._exchange(_PING, b"", _SUCCESS, attempt_timeout, raise_timeout=False)
            if answer is None:
                continue
            if answer.success:
                return
            refused = True
            self._exchange(_PING, b"", _SUCCESS | _FAIL, attempt_timeout, raise_timeout=False)
        what = "refused the session" if refused else "did not answer the connect PING"
        raise ConnectionLostError(
            f"{what} ({attempts} tries of {attempt_timeout:g} s){self._recent_logs()}",
            self.target_name,
            MessageType.PING,
            time.monotonic() - start,
        )

    # -- client: requests ------------------------------------------------------------------

    def _exchange(
        self,
        message_type: int,
        payload: bytes,
        flags: int,
        timeout: float,
        raise_timeout: bool = True,
    ) -> Message | None:
        """Sends one request and returns the target's answer to it (OK or ERROR alike).

        Raises RequestTimeoutError (or returns None if not `raise_timeout`) when no answer
        came in time, ConnectionLostError when the connection dropped, ProtocolError when the
        target keeps asking for retransmissions.
        """
        channel = self.channel
        if channel is None:
            raise ConnectionLostError("not connected", self.describe_target(), message_type)
        start = time.monotonic()
        self._logs_before_request = self._logs_received
        frames = self._request_frames(channel, message_type, payload, flags)
        first = None
        waited = False
        try:
            transport = channel.transport
            for frame in frames:
                transport.send(frame)
            if channel.quiet:
                # the fast path (the steady state: DATA, PROCESS, OUTPUT): one read that is
                # the whole answer, decoded in one step; anything else (more or fewer bytes,
                # logs, corruption) is decoded by `_await_answer` as every other read
                waited = True
                data = transport.receive(timeout)
                if data:
                    first = channel.take(data)
                    if (
                        first is not None
                        and first.message_type == message_type
                        and first.flow_control == _TRANSMISSION
                    ):
                        self.last_answer = first
                        return first
            return self._await_answer(channel, message_type, frames, start, timeout,
                                      raise_timeout, first, waited)
        except TransportClosedError as exc:
            raise ConnectionLostError(
                f"connection lost ({exc.reason}){self._recent_logs()}",
                channel.name,
                message_type,
                time.monotonic() - start,
            ) from exc

    def _await_answer(
        self,
        channel: MessageChannel,
        message_type: int,
        frames: list[bytes],
        start: float,
        timeout: float,
        raise_timeout: bool,
        first: Message | None = None,
        waited: bool = False,
    ) -> Message | None:
        """`_exchange` once the request is sent: reads until the answer, dealing with what
        else comes (logs, corruption, retransmission requests, stale answers). `first` is a
        message the fast path read already (None: none); `waited`: the fast path read."""
        retries_left = self.retries
        send = channel.transport.send
        deadline = start + timeout
        # the nominal timeout first (the transport's bound stays as it is), unless the fast
        # path waited already
        wait = deadline - time.monotonic() if waited else timeout
        unread_before = sum(map(len, frames))  # progress: the target read some of it
        while True:
            if first is None:
                event = channel.receive(wait)
            else:
                event, first = first, None
            if (
                event is not None
                and type(event) is not Corruption
                and event.message_type == message_type
                and event.flow_control == _TRANSMISSION
            ):
                self.last_answer = event  # the usual case, checked first
                return event
            wait = deadline - time.monotonic()
            if event is None:
                # A target still reading the request (an upload to an emulator starved of
                # CPU moves a few kB/s): the timeout counts from when it stops reading.
                unread = channel.transport.unread() if raise_timeout else None
                if unread and unread < unread_before:
                    unread_before = unread
                    deadline = time.monotonic() + timeout
                    wait = timeout
                    continue
                if not raise_timeout:
                    return None
                still = f" ({unread} bytes of the request still unread)" if unread else ""
                raise RequestTimeoutError(
                    f"no answer within {timeout:g} s{still}{channel.pending_layout_hint()}"
                    f"{self._recent_logs()}",
                    channel.name,
                    message_type,
                    time.monotonic() - start,
                )
            if type(event) is Corruption:
                log.debug("corrupt input from %s: %s", channel.name, event)
                if event.other_layout:  # a target speaking the other header layout
                    raise ProtocolError(f"unreadable answer: {event}", channel.name,
                                        message_type, time.monotonic() - start)
                # a checksum error, or our answer cut off (the target stopped mid-frame,
                # e.g. a simulator starved of CPU): ask for the answer again
                if event.kind != "checksum" and not (
                    event.kind == "stalled" and event.message_type == message_type
                ):
                    continue  # resynchronised; the answer may still come
                if retries_left == 0:
                    raise ProtocolError(
                        f"answer still corrupt after {self.retries} retransmissions",
                        channel.name,
                        message_type,
                        time.monotonic() - start,
                    )
                retries_left -= 1
                log.info("asking %s for the %s answer again: %s", channel.name,
                         message_type_name(message_type), event)
                channel.send(
                    Message(message_type, b"", _HOST, _RETRANSMIT), count=WHOLE_TRANSMISSION
                )
                deadline = time.monotonic() + timeout
                wait = timeout  # the whole timeout again, not what was left of the first
                continue
            mtype = event.message_type
            flow = event.flow_control
            if mtype == _LOGS and flow == _TRANSMISSION:
                self._record_logs(event.payload)
                continue
            if mtype != message_type:
                log.debug("ignoring %r from %s while waiting for %s", event, channel.name,
                          message_type_name(message_type))
                continue
            if flow == _TRANSMISSION or (flow == _ACKNOWLEDGE and event.flags & _FAIL):
                self.last_answer = event
                return event
            if flow == _RETRANSMIT:
                if retries_left == 0:
                    raise ProtocolError(
                        f"target asked for {self.retries + 1} retransmissions",
                        channel.name,
                        message_type,
                        time.monotonic() - start,
                    )
                retries_left -= 1
                log.info("%s asked for %s again%s", channel.name,
                         message_type_name(message_type), self._recent_logs(1))
                if self.resend_preamble:
                    send(self.resend_preamble)
                channel.send_frames(frames)
                unread_before += len(self.resend_preamble) + sum(map(len, frames))
                deadline = time.monotonic() + timeout
                wait = timeout  # the whole timeout again, not what was left of the first
            # a positive ACKNOWLEDGE (receipt) or a stray REQUEST: keep waiting

    def _request_frames(
        self, channel: MessageChannel, message_type: int, payload: bytes, flags: int
    ) -> list[bytes]:
        """The frames of a request; payload-less ones are the same bytes every time."""
        if payload:
            if len(payload) <= channel.max_frame_size - channel.header_size:
                return [
                    encode_frame(
                        message_type,
                        _REQUEST,
                        flags | _HOST | _CHUNK_FLAGS,
                        payload,
                        compute_checksum=channel.compute_checksum,
                        header=channel.header,
                    )
                ]
            return channel.encode(Message(message_type, payload, flags | _HOST, _REQUEST))
        key = (message_type, flags, channel.max_frame_size)
        frames = self._constant_frames.get(key)
        if frames is None:
            frames = channel.encode(Message(message_type, b"", flags | _HOST, _REQUEST))
            self._constant_frames[key] = frames
        return frames

    def _record_logs(self, payload: bytes) -> None:
        text = payload.decode("utf-8", errors="replace").rstrip("\n")
        for line in text.splitlines() or [""]:
            self.target_logs.append(line)
            self._logs_received += 1
            target_log.info("%s", line)

    def _recent_logs(self, lines: int = 3) -> str:
        if not self.target_logs:
            return ""
        recent = list(self.target_logs)[-lines:]
        return " (target log: " + " | ".join(recent) + ")"

    def _status_request(self, message_type: int, payload: bytes = b"", flags: int = 0,
                        timeout: float | None = None) -> bool:
        """An upload or PROCESS: True on OK. A Kenning-style OK must name the action."""
        answer = self._exchange(message_type, payload, flags, timeout or self.timeout)
        return self._check_status(answer, message_type)

    def _check_status(self, answer: Message, message_type: int) -> bool:
        flags = answer.flags
        if flags & _SUCCESS_OR_FAIL != _SUCCESS:  # (`answer.success` without the call)
            log.debug(
                "target %s refused %s%s",
                self.target_name,
                message_type_name(message_type),
                self._recent_logs(),
            )
            return False
        if flags & _IS_KENNING:
            expected = _STATUS_ACTIONS.get(message_type)
            if expected is not None and answer.payload != expected:
                raise ProtocolError(
                    f"Kenning-style answer names server action {answer.payload[:4].hex() or 'none'}"
                    f", expected {expected.hex()}",
                    self.target_name,
                    message_type,
                )
        return True

    def refusal_reason(self) -> str:
        """What the target logged while answering the last request (its last 3 lines):
        usually why it refused it. Lines logged for earlier requests are not repeated, so a
        refusal names its own cause only."""
        new = min(self._logs_received - self._logs_before_request, len(self.target_logs), 3)
        if new <= 0:
            return ""
        return " | ".join(list(self.target_logs)[-new:])

    def send_data(self, data: bytes) -> bool:
        if self.channel is None:
            return False
        self.channel.transport.send(data)
        return True

    def receive_data(
        self, connection: object = None, mask: int = 0
    ) -> tuple[ServerStatus, bytes | None]:
        """Reads the bytes waiting on the connection, without decoding them (seed)."""
        if self.channel is None:
            return ServerStatus.NOTHING, None
        try:
            data = self.channel.transport.receive(0)
        except TransportClosedError:
            return ServerStatus.CLIENT_DISCONNECTED, None
        return (ServerStatus.DATA_READY, data) if data else (ServerStatus.NOTHING, None)

    def receive_confirmation(self) -> tuple[bool, bytes | None]:
        answer = self.last_answer
        if answer is None:
            return False, None
        return answer.success, answer.payload

    def upload_io_specification_dict(self, spec: dict) -> bool:
        if self.serialized_io_spec:
            return self._status_request(
                MessageType.IO_SPEC, pack_io_spec(spec), int(Flag.SERIALIZED)
            )
        payload = json.dumps(spec, separators=(",", ":")).encode("utf-8")
        return self._status_request(MessageType.IO_SPEC, payload)

    def model_timeout(self, size: int) -> float:
        """Upload time at the line rate, doubled, on top of the request timeout."""
        assert self.channel is not None
        return self.timeout + 2.0 * size / self.channel.transport.line_rate

    def upload_model(self, path: Path) -> bool:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read compiled model {path}: {os_reason(exc)}"
            ) from exc
        return self.upload_model_bytes(data)

    # called with (bytes the target has read, model size) during a model upload; set by
    # whoever shows progress (the harness), None: nobody watches (protocols/upload_progress)
    upload_progress: Callable[[int, int], None] | None = None

    def upload_model_bytes(self, data: bytes) -> bool:
        if len(data) > self.max_message_size:
            raise ConfigurationError(
                f"model of {len(data)} bytes exceeds max_message_size={self.max_message_size}"
            )
        if self.channel is None:
            raise ConnectionLostError("not connected", self.describe_target(), MessageType.MODEL)
        timeout = self.model_timeout(len(data))
        if self.upload_progress is None:
            return self._status_request(MessageType.MODEL, data, timeout=timeout)
        from kenning_hil.protocols.upload_progress import UploadWatch

        with UploadWatch(self.channel.transport, len(data), self.upload_progress):
            return self._status_request(MessageType.MODEL, data, timeout=timeout)

    def upload_runtime(self, path: Path) -> bool:
        data = Path(path).read_bytes()
        if self.channel is None:
            raise ConnectionLostError("not connected", self.describe_target(), MessageType.RUNTIME)
        payload = len(data).to_bytes(4, "little") + data
        return self._status_request(
            MessageType.RUNTIME, payload, timeout=self.model_timeout(len(payload))
        )

    def upload_input(self, data: bytes) -> bool:
        return self._check_status(self._exchange(_DATA, data, 0, self.timeout), _DATA)

    def request_processing(self, get_time_func: Callable[[], float] = time.perf_counter) -> bool:
        start = get_time_func()
        answer = self._exchange(_PROCESS, b"", 0, self.process_timeout)
        self.last_processing_time = get_time_func() - start
        return self._check_status(answer, _PROCESS)

    def download_output(self) -> tuple[bool, bytes | None]:
        answer = self._exchange(_OUTPUT, b"", 0, self.timeout)
        if answer.flags & _SUCCESS_OR_FAIL != _SUCCESS:
            return False, None
        return True, answer.payload

    def download_statistics(self, final: bool = False) -> Measurements:
        """The target's STATS (JSON or 48-byte records) as Measurements; empty when the
        target has none or refuses."""
        answer = self._exchange(MessageType.STATS, b"", 0, self.timeout)
        measurements = Measurements()
        if not answer.success or not answer.payload:
            return measurements
        try:
            measurements.update_measurements(decode_stats(answer.payload))
        except StatsFormatError as exc:
            raise ProtocolError(str(exc), self.target_name, MessageType.STATS) from exc
        return measurements

    # -- server ----------------------------------------------------------------------------

    def receive_message(self, timeout: float | None = None) -> tuple[ServerStatus, Message | None]:
        """Server side: waits for the next request the runtime must serve.

        Returns (DATA_READY, request), (NOTHING, None) on timeout or after handling
        something itself, (CLIENT_CONNECTED / CLIENT_DISCONNECTED, None) at session
        boundaries, or (DATA_INVALID, None) after answering corrupt or unusable input.
        """
        self._current = None
        channel = self.channel
        if channel is None:
            return self.wait_for_client(timeout)
        try:
            if channel.quiet:
                # the fast path (the steady state): one read that is one whole request,
                # decoded in one step; anything else is decoded as every other read
                data = channel.transport.receive(timeout)
                if not data:
                    return _NOTHING, None
                event = channel.take(data)
                if event is None:
                    event = channel.receive(timeout)
            else:
                event = channel.receive(timeout)
            if event is None:
                return _NOTHING, None
            if self._resend_wait is not None:
                self._resend_input(event)
            if type(event) is Corruption:
                self._answer_corruption(event)
                return _DATA_INVALID, None
            flow = event.flow_control
            if flow == _REQUEST:
                mtype = event.message_type
                if mtype == _PING:
                    return self._serve_ping(event)
                if self.ping_sessions and not self._session_open:
                    self._deny(mtype, "no session: send a connect PING first")
                    return _DATA_INVALID, None
                self._current = event
                if mtype != _IO_SPEC:
                    return _DATA_READY, event
                if _is_packed_io_spec(event):
                    try:
                        event.payload = _packed_io_spec_to_json(event.payload)
                    except ConfigurationError as exc:
                        self.request_failure(str(exc))
                        return ServerStatus.DATA_INVALID, None
                    # tells the runtime the spec is positional (the struct has no names)
                    event.flags |= _SERIALIZED
                return _DATA_READY, event
            if flow == _RETRANSMIT:
                self._resend_last_answer(event.message_type)
            elif flow == _ACKNOWLEDGE:
                pass  # answering an acknowledgement would start a ping-pong
            elif event.message_type == _LOGS:
                self._record_logs(event.payload)
            else:
                self._deny(event.message_type, f"unexpected {event!r}", acknowledge=True)
                return ServerStatus.DATA_INVALID, None
            return ServerStatus.NOTHING, None
        except TransportClosedError as exc:
            log.info("client %s disconnected: %s", channel.name, exc.reason)
            self._drop_client()
            return ServerStatus.CLIENT_DISCONNECTED, None

    def gather_data(self, timeout: float | None = None) -> tuple[ServerStatus, Message | None]:
        return self.receive_message(timeout)

    def wait_for_client(self, timeout: float | None) -> tuple[ServerStatus, None]:
        """TCP: accepts the next client. Other transports are always 'connected'."""
        return ServerStatus.NOTHING, None

    def _drop_client(self) -> None:
        channel, self.channel = self.channel, None
        self._session_open = False
        self._last_answer_frames = None
        if channel is not None:
            channel.close()

    def _serve_ping(self, ping: Message) -> tuple[ServerStatus, None]:
        if ping.payload:
            self._deny(_PING, f"PING must carry no payload, got {len(ping.payload)} bytes")
            return ServerStatus.DATA_INVALID, None
        connect = bool(ping.flags & _SUCCESS)
        disconnect = bool(ping.flags & _FAIL)
        self._send_answer(_PING, _SUCCESS | _IS_KENNING)
        if connect:
            # a connect (or restart) at any time ends the old session first
            was_open, self._session_open = self._session_open, True
            log.info("session %s on %s", "restarted" if was_open else "opened", self.target_name)
            return ServerStatus.CLIENT_CONNECTED, None
        if disconnect:
            self._session_open = False
            log.info("session closed on %s", self.target_name)
            return ServerStatus.CLIENT_DISCONNECTED, None
        return ServerStatus.NOTHING, None  # a plain PING: liveness check

    def request_success(self, data: bytes | None = b"") -> bool:
        """Answers the request being served with OK (Kenning-style: the finished action
        byte for uploads and PROCESS, `data` for OUTPUT/STATS)."""
        current = self._current
        if current is None:
            return False
        self._current = None
        mtype = current.message_type
        frames = self._ok_frames.get(mtype)
        if frames is not None and self.channel is not None:  # status answers, encoded once
            self._last_answer_frames = (mtype, frames)
            try:
                for frame in frames:
                    self.channel.transport.send(frame)
            except TransportClosedError as exc:
                log.info("client %s gone while answering: %s", self.target_name, exc.reason)
                self._drop_client()
                return False
            return True
        payload = _STATUS_ACTIONS.get(mtype, data or b"")
        sent = self._send_answer(mtype, _SUCCESS | _IS_KENNING, payload)
        if mtype in _STATUS_ACTIONS and self._last_answer_frames is not None:
            self._ok_frames[mtype] = self._last_answer_frames[1]
        return sent

    def request_failure(self, reason: str = "") -> bool:
        """Answers the request being served with ERROR; `reason` goes to the host as LOGS."""
        current = self._current
        if current is None:
            return False
        self._current = None
        return self._deny(current.message_type, reason)

    def _deny(self, message_type: int, reason: str, acknowledge: bool = False) -> bool:
        """FAIL answer: a TRANSMISSION of the request's type (with the action byte for status
        requests), or a negative ACKNOWLEDGE for what is not a known request."""
        if reason:
            log.info("refusing %s from %s: %s", message_type_name(message_type),
                     self.target_name, reason)
            self.send_logs(f"{message_type_name(message_type)} refused: {reason}")
        known = message_type in STATUS_ACTIONS or message_type in (
            MessageType.OUTPUT, MessageType.STATS, MessageType.PING
        )
        if acknowledge or not known:
            return self._send_answer(message_type, _FAIL | _IS_KENNING, b"", _ACKNOWLEDGE)
        return self._send_answer(
            message_type, _FAIL | _IS_KENNING, _STATUS_ACTIONS.get(message_type, b"")
        )

    def send_logs(self, text: str) -> bool:
        """Sends a LOGS transmission (the host records it and keeps waiting)."""
        if self.channel is None:
            return False
        try:
            self.channel.send(Message(_LOGS, text.encode("utf-8"), 0, _TRANSMISSION))
        except TransportClosedError:
            return False
        return True

    def _send_answer(
        self, message_type: int, flags: int, payload: bytes = b"", flow: int = _TRANSMISSION
    ) -> bool:
        channel = self.channel
        if channel is None:
            return False
        if len(payload) <= 1:  # status answers: a handful of distinct frames, encoded once
            key = (message_type, flags, payload, flow, channel.max_frame_size)
            frames = self._constant_frames.get(key)
            if frames is None:
                frames = channel.encode(Message(message_type, payload, flags, flow))
                self._constant_frames[key] = frames
        elif len(payload) <= channel.max_frame_size - channel.header_size:  # OUTPUT, STATS
            frames = [encode_frame(message_type, flow, flags | _CHUNK_FLAGS, payload,
                                   compute_checksum=channel.compute_checksum,
                                   header=channel.header)]
        else:
            frames = channel.encode(Message(message_type, payload, flags, flow))
        self._last_answer_frames = (message_type, frames)
        try:
            for frame in frames:
                channel.transport.send(frame)
        except TransportClosedError as exc:
            log.info("client %s gone while answering: %s", channel.name, exc.reason)
            self._drop_client()
            return False
        return True

    def _resend_last_answer(self, message_type: int) -> None:
        last = self._last_answer_frames
        if last is None or last[0] != message_type:
            self._deny(message_type, "nothing to retransmit", acknowledge=True)
            return
        assert self.channel is not None
        try:
            self.channel.send_frames(last[1])
        except TransportClosedError:
            self._drop_client()

    def _answer_corruption(self, corruption: Corruption) -> None:
        """A request that arrived whole but with a bad checksum is asked for again; a frame
        with a readable header gets a negative ACKNOWLEDGE of its type; bytes that were not
        a frame at all get only a LOGS line (there is no type to answer). The reason always
        goes to the host as LOGS, and to the server log as one line naming the client."""
        if corruption.kind == "checksum" and corruption.flow_control == _REQUEST:
            assert self.channel is not None
            log.info("asking %s to retransmit %s: %s", self.target_name,
                     message_type_name(corruption.message_type), corruption)
            self.send_logs(f"corrupt input: {corruption}; asking for retransmission")
            try:
                self.channel.send(
                    Message(corruption.message_type, b"", 0, _RETRANSMIT),
                    count=WHOLE_TRANSMISSION,
                )
            except TransportClosedError:
                self._drop_client()
                return
            if self.resend_wait is not None:
                self._resend_wait = _ResendWait(corruption.message_type,
                                                f"corrupt input: {corruption}",
                                                time.monotonic() + self.resend_wait)
            return
        dropped = " (connection dropped)" if self.drop_on_corruption else ""
        if corruption.kind == "garbage" or corruption.message_type > MAX_PLAUSIBLE_TYPE:
            log.info("refusing bytes from %s: %s%s", self.target_name, corruption, dropped)
            self.send_logs(f"corrupt input: {corruption}")
        else:
            self._deny(
                corruption.message_type, f"corrupt input: {corruption}{dropped}", acknowledge=True
            )
        if self.drop_on_corruption:
            self._drop_client()

    def _resend_input(self, event: Message | Corruption) -> None:
        """Input while a request asked for again is awaited: a request (its resend, or the
        host moved on) ends the wait; anything else starts it again (the line is not
        quiet)."""
        if type(event) is not Corruption and event.flow_control == _REQUEST:
            self._resend_wait = None
        else:
            self._resend_wait.deadline = time.monotonic() + self.resend_wait

    def _await_resend(self, timeout: float | None) -> float | None | bool:
        """Server, while a request asked for again is awaited: once the line has been quiet
        for `resend_wait` seconds without a new request, answers it FAIL with the reason and
        returns True; else returns the part of `timeout` to wait, so that the FAIL is not
        late."""
        wait = self._resend_wait
        left = wait.deadline - time.monotonic()
        if left > 0:
            return left if timeout is None or timeout > left else timeout
        if not self.channel.quiet:
            return timeout  # a partial frame: its stall timeout decides first
        self._resend_wait = None
        log.info("no retransmission of %s from %s in %.0f s: failing it", message_type_name(
            wait.message_type), self.target_name, self.resend_wait)
        self._deny(wait.message_type, f"{wait.reason}; no retransmission came")
        return True

    #: drop the connection after corrupt input (TCP: the stream can no longer be trusted)
    drop_on_corruption = False

    def initialize_server(self) -> bool:
        raise NotImplementedError

    def close_server(self) -> None:
        """Stops serving: closes the client connection and the listening endpoint."""
        self._drop_client()


def _is_packed_io_spec(message: Message) -> bool:
    """The packed struct, flagged SERIALIZED by our host; Kenning's UART host sends it without
    the flag, so a 356-byte payload that is not a JSON object is taken for it too."""
    if message.flags & Flag.SERIALIZED:
        return True
    return len(message.payload) == IOSPEC_STRUCT_SIZE and message.payload[:1] != b"{"


def _packed_io_spec_to_json(payload: bytes) -> bytes:
    """The runtime reads io specs as JSON: unpack the struct (shapes and dtypes of the model's
    own tensors, no quantisation parameters, so tensors travel raw)."""
    return json.dumps(unpack_io_spec(payload)).encode("utf-8")


class NetworkProtocol(BytesProtocol):
    """The protocol over TCP: Kenning's handshake byte, 1 MiB frames, JSON io spec/stats."""

    arguments_structure = {
        "host": {
            "description": "Target server address (client) or address to listen on (server)",
            "type": str,
            "default": "127.0.0.1",
        },
        "port": {
            "description": "TCP port (0 on the server: any free port)",
            "type": int,
            "default": 12345,
        },
        "max_frame_size": {
            "description": "Largest frame in bytes, header included",
            "type": int,
            "default": TCP_MAX_FRAME_SIZE,
        },
        "allow": {
            "description": "Server: networks (CIDR) whose clients are accepted; a connection "
            "from elsewhere is closed at accept (none: any client, allowed only when "
            "listening on a loopback address)",
            "type": str,
            "is_list": True,
            "nullable": True,
            "default": None,
        },
    }

    drop_on_corruption = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 12345,
        max_frame_size: int = TCP_MAX_FRAME_SIZE,
        allow: list[str] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        from kenning_hil.protocols.peers import AllowList

        self.allow = AllowList.parse(allow) if allow is not None else None
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"NetworkProtocol: port must be 0-65535, got {port}")
        if max_frame_size < 13:
            raise ConfigurationError(
                f"NetworkProtocol: max_frame_size must exceed the 12-byte header, "
                f"got {max_frame_size}"
            )
        self.host = host
        self.port = port
        self.max_frame_size = max_frame_size
        self.listener = None

    def describe_target(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def open_client_transport(self) -> Transport:
        from kenning_hil.protocols.tcp import connect

        return connect(self.host, self.port, self.timeout, self.max_frame_size)

    def initialize_server(self) -> bool:
        from kenning_hil.protocols.peers import is_loopback_host
        from kenning_hil.protocols.tcp import TCPListener

        if self.allow is None and not is_loopback_host(self.host):
            raise ConfigurationError(
                f"NetworkProtocol: {self.host or repr(self.host)} is not a loopback address: name "
                f"the clients that may connect (`allow`; `kenning-hil serve --allow "
                f"CIDR[,CIDR...]`, or --allow-any); the wire protocol has no authentication"
            )
        self._role = "server"
        self.listener = TCPListener(self.host, self.port, self.max_frame_size, allow=self.allow)
        self.port = self.listener.port
        return True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def wait_for_client(self, timeout: float | None) -> tuple[ServerStatus, None]:
        if self.listener is None:
            raise ProtocolError("server not initialised", self.describe_target())
        connection = self.listener.accept(timeout)
        if connection is None:
            return ServerStatus.NOTHING, None
        log.info("client %s connected", connection.name)
        self.channel = self._make_channel(connection)
        self._session_open = True
        return ServerStatus.CLIENT_CONNECTED, None

    def serve_connection(self, sock, peer: str) -> None:
        """Server side: serves a client socket accepted elsewhere, its handshake sent (the
        runtime worker serves the connections its server accepted and handed over)."""
        from kenning_hil.protocols.tcp import TCPConnection

        self._role = "server"
        self.channel = self._make_channel(TCPConnection(sock, peer, self.max_frame_size))
        self._session_open = True

    def fail_request(self, connection: Transport, message_type: int, reason: str) -> bool:
        """Server side: answers a request of `message_type` on `connection` with FAIL and the
        reason, whoever read the request (the server answers for a runtime worker that died
        or was killed serving it). False when the client is gone (the connection is then
        closed)."""
        kept, self.channel = self.channel, self._make_channel(connection)
        try:
            return self._deny(message_type, reason)
        finally:
            self.channel = kept

    def close_server(self) -> None:
        super().close_server()
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class UARTProtocol(BytesProtocol):
    """The protocol over a serial line: 136-byte frames, PING sessions, the packed io spec,
    48-byte STATS records. `port` is a device path or a pyserial URL (``socket://``,
    ``rfc2217://``, ``loop://``)."""

    arguments_structure = {
        "port": {
            "description": "Serial device path or pyserial URL",
            "type": str,
            "required": True,
            # --port is the TCP port's flag; both fill the same `port` parameter
            "argparse_name": "--serial",
        },
        "baudrate": {"description": "Line rate in baud", "type": int, "default": 115200},
        "max_frame_size": {
            "description": "Largest frame in bytes, header included",
            "type": int,
            "default": UART_MAX_FRAME_SIZE,
        },
        "frame_timeout": {"default": 0.5},
        "connect_attempts": {
            "description": "Connect PINGs sent before giving up (Kenning's host: 5)",
            "type": int,
            "default": 5,
        },
        "connect_timeout": {
            "description": "Seconds to wait for the answer to each connect PING",
            "type": float,
            "default": 1.0,
        },
    }

    default_max_frame_size = UART_MAX_FRAME_SIZE
    serialized_io_spec = True
    default_host_quantization = True
    ping_sessions = True
    # every UART host computes the checksum, and stray zeros before a frame make false
    # headers whose checksum byte is 0x00 (`FrameDecoder`)
    trust_zero_checksum = False
    resend_wait = RESEND_WAIT_SECONDS
    # A serial line has no frame boundaries: what is left of the damaged frame in the
    # target's decoder could swallow the start of the resent request (mostly-zero headers
    # and an XOR checksum make shifted headers look valid). One maximum frame of 0xFF bytes,
    # which cannot start a header, flushes it, so the resend starts on a frame boundary.
    resend_preamble = b"\xff" * UART_MAX_FRAME_SIZE

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        max_frame_size: int = UART_MAX_FRAME_SIZE,
        frame_timeout: float = 0.5,
        connect_attempts: int = 5,
        connect_timeout: float = 1.0,
        **kwargs,
    ):
        super().__init__(frame_timeout=frame_timeout, **kwargs)
        if connect_attempts < 1 or connect_timeout <= 0:
            raise ConfigurationError(
                f"UARTProtocol: connect_attempts must be >= 1 and connect_timeout > 0, got "
                f"{connect_attempts} and {connect_timeout}"
            )
        self.connect_attempts = connect_attempts
        self.connect_timeout = connect_timeout
        if baudrate <= 0:
            raise ConfigurationError(f"UARTProtocol: baudrate must be positive, got {baudrate}")
        if max_frame_size < 13:
            raise ConfigurationError(
                f"UARTProtocol: max_frame_size must exceed the 12-byte header, got {max_frame_size}"
            )
        self.port = port
        self.baudrate = baudrate
        self.max_frame_size = max_frame_size

    def describe_target(self) -> str:
        return self.port

    def open_client_transport(self) -> Transport:
        from kenning_hil.protocols.uart import SerialTransport

        return SerialTransport(self.port, self.baudrate, self.max_frame_size)

    def initialize_server(self) -> bool:
        self._role = "server"
        self.channel = self._make_channel(self.open_client_transport())
        return True

    @property
    def address(self) -> str:
        return self.port

    def receive_message(self, timeout: float | None = None) -> tuple[ServerStatus, Message | None]:
        if self.channel is None:
            # the device went away: a serial server has no listener to fall back to
            raise ConnectionLostError("serial port closed or gone", self.port)
        if self._resend_wait is not None:
            timeout = self._await_resend(timeout)
            if timeout is True:
                return ServerStatus.DATA_INVALID, None
        return super().receive_message(timeout)

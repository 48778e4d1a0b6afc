"""WorkerRuntime: the target server's runtime with model loading and inference in a worker
process under a memory cap, so that a model that allocates too much, runs too long or
crashes a runtime's native code costs one FAIL answer, not the server.

The worker (a Python process running `_worker_main`, started with the server and kept warm)
holds the real runtime. Over TCP it serves whole connections: the server process (the
supervisor) accepts a client (the --allow check and the handshake are the listener's), hands
the socket to the worker (``C`` below, SCM_RIGHTS), and waits while the worker runs the
session on it: decoding, session order, io spec, model checks and load, DATA/PROCESS/OUTPUT,
STATS. An inference then involves the two processes a raw socket exchange has. Before each
request the worker stores its type and start time in a shared word (one 8-byte store, no
system call: ``start_us << 8 | type``, 0 between requests). The supervisor's wait on the
socket pair (poll) wakes at least every SERVER_POLL_SECONDS and at the in-flight request's
deadline: a worker that dies (the pair's end), exceeds --request-timeout on a request, or
sends anything but the 13-byte end of a session is killed; the supervisor, which still holds
the client's socket, answers FAIL with the reason for the request in flight, starts a fresh
worker and hands it the connection (a worker that died between requests ends the session).
Meanwhile it turns other clients away as busy.

Over a serial line (and from the library) the server process keeps the protocol, the session
and the io spec, and sends each request's model work to the worker:

- request: ``<cI`` op, length of the inline payload that follows. ``R`` run: the input is in
  the input buffer and the length is its size (DATA was copied there, size-checked, when it
  arrived); ``M`` the io spec JSON's length (4 bytes, little-endian), the JSON (or
  ``null``), then the model bytes; ``S`` io spec JSON; ``T`` STATS (the runtime's own
  `upload_stats`); ``N`` a new session; ``U`` unload; ``B`` new buffers (their two file
  descriptors follow in one SCM_RIGHTS byte); ``C`` serve a connection (the peer's name;
  its socket follows in one SCM_RIGHTS byte); ``I`` (first, once) what to build, JSON.
- answer: ``<cQI`` status, value (R: the run time in ns), length. ``\\x02``: R's output is in
  the output buffer (length bytes); ``\\x00``: the result follows inline (the model's own io
  spec as JSON, STATS, or an output larger than the output buffer; C: the session ended);
  ``\\x01``: an error, one line, follows.
- two shared-memory buffers (memfd, mapped by both sides) carry the tensors.

The supervisor never unpickles what the worker sends (a worker running a hostile model is
not trusted either): answers are raw bytes and JSON, their lengths checked against the
buffers and `ANSWER_LIMIT`; while the worker serves a connection only the fixed-size words
are read from it. A compromised worker serving its client could answer it anything, which
is no worse than without a worker: the client trusts the server's answers anyway.

Memory: the worker sets RLIMIT_DATA (heap and private anonymous mappings, which is where
model tensors live; the shared buffers are not counted) to `max_memory` before importing any
framework. An allocation beyond it fails inside the runtime (a FAIL naming the cap) or kills
the worker, which is then restarted as above.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import (
    ConfigurationError,
    KenningHILError,
    ModelLoadError,
    ModelNotLoadedError,
    one_line,
)
from kenning_hil.core.iospec import tensor_shape
from kenning_hil.core.model import split_tensors_from_bytes, wire_dtype
from kenning_hil.core.protocol import ServerSession, ServerStatus, message_type_name
from kenning_hil.core.runtime import SERVER_POLL_SECONDS, Runtime

log = logging.getLogger("kenning_hil.serve")

# the worker imports the same kenning_hil as the server, wherever the server found it
_ROOT = str(Path(__file__).resolve().parents[2])
_LAUNCH = (
    "import sys; sys.path.insert(0, sys.argv[3]); "
    "from kenning_hil.runtimes.worker import _worker_main; "
    "_worker_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4]))"
)
_REQUEST = struct.Struct("<cI")
_ANSWER = struct.Struct("<cQI")
_OK, _ERROR, _OK_IN_BUFFER = b"\x00", b"\x01", b"\x02"
_INIT, _MODEL, _SPEC, _RUN, _STATS, _SESSION, _UNLOAD, _BUFFERS, _CONNECTION = (
    b"I", b"M", b"S", b"R", b"T", b"N", b"U", b"B", b"C"
)
_SESSION_ENDED = _ANSWER.pack(_OK, 0, 0)
_SESSION_ENDING = 0xFF
"""The shared word's type while the worker ends a session (its client left): no request."""
_PEER_LIMIT = 256
STARTUP_TIMEOUT = 120.0
"""Seconds a new worker may take to import its runtime and say it is ready."""
ANSWER_LIMIT = 1 << 30
"""Largest inline answer the server reads from a worker (a worker is not trusted either)."""
MIN_BUFFER = 64 << 10
"""Smallest shared buffer: most models' tensors fit, so buffers are made once."""
_INLINE_SEND = 1 << 16
_EMPTY = memoryview(b"")


class WorkerRequestError(KenningHILError):
    """The worker could not serve a request: its runtime failed, or it died or hung."""


class _ChannelClosed(Exception):
    """The other end of the channel closed: the worker died (or the server went away)."""


class _MalformedAnswer(Exception):
    """The worker's answer breaks the channel's format (a worker is not trusted either)."""


def physical_memory() -> int:
    """Bytes of RAM in this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_max_memory() -> int:
    """Half of the machine's RAM: a model cannot push the host into swap or the OOM killer."""
    return physical_memory() // 2


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}


def parse_memory(text: str) -> int:
    """'1GiB', '512MiB', '2G', '1073741824' -> bytes (binary units); ValueError otherwise."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(number):]
    if unit not in _UNITS or not number:
        raise ValueError(f"expected a size such as 1GiB or 512MiB, got {text!r}")
    size = int(float(number) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"must be positive, got {text!r}")
    return size


def describe_memory(size: int) -> str:
    return f"{size / (1 << 30):.2f} GiB" if size >= 1 << 30 else f"{size / (1 << 20):.0f} MiB"


# --- both sides ---------------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, view: memoryview, deadline: float | None = None) -> None:
    """Fills `view` from `sock`; _ChannelClosed at its end. With a deadline, a trickle of
    bytes cannot stretch a read past it (each recv is bounded by the socket's SO_RCVTIMEO)."""
    got, size = 0, len(view)
    while got < size:
        count = sock.recv_into(view[got:] if got else view)
        if not count:
            raise _ChannelClosed("end of channel")
        got += count
        if got < size and deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("deadline")


def _send(sock: socket.socket, header: bytes, payload: bytes | memoryview = b"") -> None:
    if len(payload) < _INLINE_SEND:
        sock.sendall(header + payload if payload else header)
    else:
        sock.sendall(header)
        sock.sendall(payload)


def _shared_buffer(size: int) -> tuple[int, mmap.mmap]:
    """A shared-memory file of `size` bytes (no name in any file system) and its mapping."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kenning-hil-worker", os.MFD_CLOEXEC)
    else:  # no memfd: an unlinked temporary file
        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


# --- the worker process -------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """The kernel kills this worker when the server exits, even mid-inference (after exec,
    in the worker's own main thread, so loading libc here is safe)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the server exited before the prctl
        os._exit(1)


def _worker_main(fd: int, parent: int, word_fd: int) -> None:
    """The worker process: builds the runtime the first request names and serves the
    server's requests (or the client connections it hands over) until the channel closes."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    sock = socket.socket(fileno=fd)
    header = bytearray(_REQUEST.size)
    header_view = memoryview(header)
    try:
        _recv_exact(sock, header_view)
        op, length = _REQUEST.unpack(header)
        init = bytearray(length)
        _recv_exact(sock, memoryview(init))
    except (_ChannelClosed, OSError):
        return
    setup = json.loads(init)
    if setup.get("log_level") is not None:  # the server's log, in its format
        from kenning_hil.runtimes.serve import LOG_FORMAT

        logging.basicConfig(level=setup["log_level"], format=LOG_FORMAT)
    word_map = mmap.mmap(word_fd, mmap.PAGESIZE)
    os.close(word_fd)
    word = memoryview(word_map).cast("Q")
    max_memory = setup["max_memory"]
    if max_memory is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (max_memory, max_memory))
    sys.path[:] = setup["sys_path"]  # dotted runtime paths resolve as in the server
    from kenning_hil.blocks.registry import resolve_class

    try:
        runtime = resolve_class("runtime", setup["runtime"], Runtime).from_json(
            setup["parameters"]
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which exits with it
        reason = _reason(exc).encode("utf-8", "replace")
        _send(sock, _ANSWER.pack(_ERROR, 0, len(reason)), reason)
        return
    runtime.allow_native_models = bool(setup.get("allow_native_models"))
    sock.sendall(_ANSWER.pack(_OK, 0, 0))
    cap = describe_memory(max_memory or 0)
    protocol = None
    inputs: memoryview | None = None
    outputs: mmap.mmap | None = None
    output_size = 0
    clock = time.perf_counter_ns
    pack = _ANSWER.pack
    while True:
        try:
            _recv_exact(sock, header_view)
            op, length = _REQUEST.unpack(header)
            payload = None
            if op != _RUN and length:
                payload = memoryview(bytearray(length))
                _recv_exact(sock, payload)
        except (_ChannelClosed, OSError):
            return
        try:
            if op == _RUN:
                if inputs is None or length > len(inputs):
                    raise WorkerRequestError("worker: input larger than its shared buffer")
                runtime.prepare_input(inputs[:length])
                # the runtime's own PROCESS handler: it times run() into its STATS
                steps = runtime._target_steps
                start = clock()
                runtime._process_request(b"")
                elapsed = steps[-1] if steps else clock() - start
                result = runtime.upload_output(b"")
                size = len(result)
                if size <= output_size:
                    outputs[:size] = result
                    sock.sendall(pack(_OK_IN_BUFFER, elapsed, size))
                else:
                    _send(sock, pack(_OK, elapsed, size), result)
                continue
            if op == _CONNECTION:
                _, fds, _, _ = socket.recv_fds(sock, 1, 1)
                if len(fds) != 1:
                    raise WorkerRequestError("worker: expected a connection")
                if protocol is None:
                    protocol = resolve_class("protocol", setup["protocol"]).from_json(
                        setup["protocol_parameters"]
                    )
                    runtime.protocol = protocol
                peer = bytes(payload or b"").decode("utf-8", "replace")
                _serve_connection(runtime, protocol, socket.socket(fileno=fds[0]), peer, word,
                                  cap)
                sock.sendall(_SESSION_ENDED)
                continue
            if op == _BUFFERS:
                _, fds, _, _ = socket.recv_fds(sock, 1, 2)
                if len(fds) != 2:
                    raise WorkerRequestError("worker: expected two buffers")
                # the old mappings go with their last reference (a runtime may still hold
                # arrays over the old input)
                maps = [mmap.mmap(fd, os.fstat(fd).st_size) for fd in fds]
                for fd in fds:
                    os.close(fd)
                inputs = memoryview(maps[0]).toreadonly()
                outputs, output_size = maps[1], len(maps[1])
                answer = b""
            elif op == _STATS:
                answer = runtime.upload_stats(b"")
            elif op == _SESSION:
                runtime._target_steps, runtime._target_step_starts = [], []
                answer = b""
            elif op == _MODEL:
                end = 4 + int.from_bytes(payload[:4], "little")
                _set_spec(runtime, json.loads(bytes(payload[4:end])))
                runtime.prepare_model(bytes(payload[end:]))
                answer = json.dumps(runtime.get_io_specification_from_model()).encode()
            elif op == _SPEC:
                _set_spec(runtime, json.loads(bytes(payload)))
                answer = b""
            elif op == _UNLOAD:
                unload = getattr(runtime, "unload_model", None)
                if unload is not None:
                    unload()
                _set_spec(runtime, None)
                answer = b""
            else:
                raise WorkerRequestError(f"worker: unknown request {op!r}")
        except BaseException as exc:  # noqa: BLE001 - every failure is an answer
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            reason = _reason(exc)
            if isinstance(exc, MemoryError) or "alloc" in reason.lower():
                reason += f" (the worker's memory cap is {cap})"
            data = reason.encode("utf-8", "replace")
            try:
                _send(sock, pack(_ERROR, 0, len(data)), data)
            except OSError:
                return
            continue
        try:
            _send(sock, pack(_OK, 0, len(answer)), answer)
        except OSError:
            return


def _serve_connection(runtime: Runtime, protocol: Any, client: socket.socket, peer: str,
                      word: memoryview, cap: str) -> None:
    """Serves one client connection the server accepted, until the client leaves: the
    protocol, the session order and the runtime all in this process, so an inference costs
    the two processes a raw socket exchange has. Before each request the type and start of
    it go into the shared word (a store, no system call), for the server's timeout and for
    its FAIL answer should this process die or be killed."""
    protocol.serve_connection(client, peer)
    _clear_before_answering(protocol, word)
    session = ServerSession()
    handlers = {
        mtype: _noting_the_cap(handler, cap)
        for mtype, handler in runtime._server_handlers().items()
    }
    runtime.start_server_session()
    runtime.inference_session_start()
    receive, serve, now = protocol.receive_message, runtime._serve_request, time.monotonic_ns
    ready, disconnected = ServerStatus.DATA_READY, ServerStatus.CLIENT_DISCONNECTED
    try:
        while True:
            status, message = receive(SERVER_POLL_SECONDS)
            if status is ready and message is not None:
                word[0] = (now() // 1000) << 8 | (message.message_type & 0xFF)
                serve(protocol, session, handlers, message)
                word[0] = 0
            elif status is disconnected:
                return
    finally:
        # the client left: the server does not turn the next one away meanwhile
        word[0] = (now() // 1000) << 8 | _SESSION_ENDING
        runtime._stop_server_statistics()
        runtime.start_server_session()  # the model of the client that left is freed
        word[0] = 0


def _clear_before_answering(protocol: Any, word: memoryview) -> None:
    """The protocol's answers clear the shared word first: a worker that dies after answering
    must not have the server answer the same request again (a stray FAIL would be read as
    the answer to the client's next request). One that dies while answering ends the session
    instead of failing that request."""
    cls = type(protocol)
    success, failure = cls.request_success, cls.request_failure

    def request_success(data: bytes | None = b"") -> bool:
        word[0] = 0
        return success(protocol, data)

    def request_failure(reason: str = "") -> bool:
        word[0] = 0
        return failure(protocol, reason)

    protocol.request_success, protocol.request_failure = request_success, request_failure


def _noting_the_cap(handler: Any, cap: str) -> Any:
    """`handler`, with the worker's memory cap named in an allocation failure."""

    def handle(argument: Any) -> Any:
        try:
            return handler(argument)
        except Exception as exc:
            reason = _reason(exc)
            if isinstance(exc, MemoryError) or "alloc" in reason.lower():
                raise WorkerRequestError(f"{reason} (the worker's memory cap is {cap})") \
                    from None
            raise

    return handle


def _set_spec(runtime: Runtime, spec: dict | None) -> None:
    if spec is None:
        runtime.io_specification = runtime.input_spec = runtime.output_spec = None
    else:
        runtime.read_io_specification(spec)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc, 500)}"


# --- the server side ----------------------------------------------------------------------------


class WorkerRuntime(Runtime):
    """Serves `runtime_type` (a registered name or dotted path) from a worker process.

    Server side only: it has no local path (`prepare_model(None)` is an error)."""

    def __init__(
        self,
        runtime_type: str,
        parameters: dict | None = None,
        protocol: Any = None,
        max_memory: int | None = None,
        request_timeout: float = 300.0,
    ):
        parameters = dict(parameters or {})
        # the server process samples the session's system statistics, unless told not to
        super().__init__(protocol, bool(parameters.get("disable_performance_measurements")))
        from kenning_hil.blocks.registry import resolve_class

        self.runtime_class = resolve_class("runtime", runtime_type, Runtime)
        self.runtime_type = runtime_type
        self.parameters = parameters
        # the checks of received models run here, on an instance that never loads a model
        self.checker = self.runtime_class.from_json(self.parameters)
        self.loads_native_code = self.runtime_class.loads_native_code
        self.max_memory = max_memory
        self.request_timeout = request_timeout
        self.worker: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._answer = bytearray(_ANSWER.size)
        self._answer_view = memoryview(self._answer)
        self._model_spec: dict | None = None
        # the shared buffers: input (DATA is copied here) and output (the worker's answer)
        self._inputs: mmap.mmap | None = None
        self._outputs: mmap.mmap | None = None
        self._input_size = 0
        self._output_size = 0
        self._input_length: int | None = None
        self._output_length = 0
        self._output_inline: bytes | None = None
        self._has_output = False
        # bytes per sample of the io spec's inputs and outputs, fixed batch (None: any)
        self._sample_in = self._sample_out = 0
        self._fixed_batch: int | None = None
        self._worker_step = 0
        # the worker's word: the request it serves and since when (microseconds << 8 | type)
        self._word: memoryview | None = None

    # --- the worker ---------------------------------------------------------------------------

    @property
    def worker_pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else None

    def start_worker(self) -> None:
        """Starts a fresh worker and waits until its runtime is built."""
        self.stop_worker()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        word_fd, word_map = _shared_buffer(mmap.PAGESIZE)
        try:
            worker = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, str(theirs.fileno()), str(os.getpid()), _ROOT,
                 str(word_fd)],
                pass_fds=(theirs.fileno(), word_fd),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
            os.close(word_fd)
        self.worker, self._sock = worker, ours
        self._word = memoryview(word_map).cast("Q")
        setup = {
            "runtime": self.runtime_type, "parameters": self.parameters,
            "max_memory": self.max_memory, "sys_path": sys.path,
            "allow_native_models": self.allow_native_models,
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
        setup.update(_protocol_setup(self.protocol))
        setup = json.dumps(setup).encode()
        ours.settimeout(STARTUP_TIMEOUT)
        try:
            _send(ours, _REQUEST.pack(_INIT, len(setup)), setup)
            status, _, _, payload = self._read_answer(time.monotonic() + STARTUP_TIMEOUT)
        except (TimeoutError, BlockingIOError):
            self.stop_worker()
            raise ConfigurationError(
                f"runtime worker for {self.runtime_type} not ready within {STARTUP_TIMEOUT} s"
            ) from None
        except (_ChannelClosed, _MalformedAnswer, OSError):
            code = _wait(worker, 5.0)
            self.stop_worker()
            raise ConfigurationError(
                f"runtime worker for {self.runtime_type} exited at start ({_exit(code)})"
            ) from None
        if status != _OK:
            self.stop_worker()
            raise ConfigurationError(bytes(payload).decode("utf-8", "replace"))
        # from here on blocking reads and writes, bounded by the kernel (one syscall each)
        ours.settimeout(None)
        seconds = max(self.request_timeout, 0.001)
        timeout = struct.pack("ll", int(seconds), int(seconds % 1 * 1e6))
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        self._input_size = self._output_size = 0  # a new worker has no buffers yet
        cap = describe_memory(self.max_memory) if self.max_memory else "none"
        log.info("runtime worker pid %d started (memory cap %s)", worker.pid, cap)

    def stop_worker(self) -> None:
        worker, sock = self.worker, self._sock
        self.worker = self._sock = None
        if sock is not None:
            sock.close()  # an idle worker sees the end of the channel and exits
        if worker is not None and _wait(worker, 1.0) is None:
            worker.kill()
            _wait(worker, 5.0)

    def _restart(self, reason: str) -> WorkerRequestError:
        """Replaces a dead or hung worker; the error for the request that met it."""
        worker = self.worker
        if worker is not None and worker.poll() is None:
            worker.kill()
            _wait(worker, 5.0)
        log.warning("runtime worker: %s; restarting it", reason)
        self._model_spec = self._output_inline = None
        self._input_length, self._has_output = None, False
        try:
            self.start_worker()
        except KenningHILError as exc:
            reason += f"; the new worker failed too: {one_line(exc)}"
        return WorkerRequestError(f"{reason}; the worker was restarted (load the model again)")

    def _read_answer(self, deadline: float | None = None) -> tuple[bytes, int, int, memoryview]:
        """(status, value, length, inline payload) of the worker's next answer."""
        sock = self._sock
        _recv_exact(sock, self._answer_view, deadline)
        status, value, length = _ANSWER.unpack(self._answer)
        if status == _OK_IN_BUFFER:
            if length > self._output_size:
                raise _MalformedAnswer(
                    f"an output of {length} bytes in its {self._output_size}-byte buffer"
                )
            return status, value, length, _EMPTY
        if status not in (_OK, _ERROR) or length > ANSWER_LIMIT:
            raise _MalformedAnswer(f"a malformed answer (status {status!r}, {length} bytes)")
        if not length:
            return status, value, 0, _EMPTY
        payload = memoryview(bytearray(length))
        _recv_exact(sock, payload, deadline or time.monotonic() + self.request_timeout)
        return status, value, length, payload

    def _exchange(self, header: bytes, payload: bytes | memoryview, what: str,
                  fds: list[int] | None = None) -> tuple[bytes, int, int, memoryview]:
        """Sends one request and reads its answer (status, value, length, inline payload); a
        dead, hung or misbehaving worker is replaced and the request fails
        (WorkerRequestError) with the reason, as does an error the worker answers."""
        if self._sock is None:
            self.start_worker()
        sock = self._sock
        try:
            _send(sock, header, payload)
            if fds is not None:
                socket.send_fds(sock, [b"F"], fds)
            answer = self._read_answer()
        except (TimeoutError, BlockingIOError):
            raise self._restart(
                f"runtime worker did not finish {what} within {self.request_timeout:g} s "
                f"(--request-timeout): killed"
            ) from None
        except _MalformedAnswer as exc:
            raise self._restart(f"runtime worker sent {exc} during {what}") from None
        except (_ChannelClosed, OSError):
            code = _wait(self.worker, 2.0)
            cap = (
                f", memory cap {describe_memory(self.max_memory)}" if self.max_memory else ""
            )
            raise self._restart(f"runtime worker died during {what} ({_exit(code)}{cap})") \
                from None
        if answer[0] == _ERROR:
            raise WorkerRequestError(bytes(answer[3]).decode("utf-8", "replace"))
        return answer

    def _request(self, op: bytes, payload: bytes, what: str) -> memoryview:
        return self._exchange(_REQUEST.pack(op, len(payload)), payload, what)[3]

    def _buffer_limit(self) -> int:
        return max(MIN_BUFFER, getattr(self.protocol, "max_message_size", None) or 64 << 20)

    def _ensure_buffers(self, input_size: int, output_size: int) -> None:
        """Gives the worker larger shared buffers when these sizes do not fit (rarely: they
        only grow, from MIN_BUFFER, to the largest batch a client sent)."""
        if input_size <= self._input_size and output_size <= self._output_size:
            return
        if self._sock is None:
            self.start_worker()
        sizes = [max(MIN_BUFFER, input_size, self._input_size),
                 max(MIN_BUFFER, output_size, self._output_size)]
        sizes = [-(-size // mmap.PAGESIZE) * mmap.PAGESIZE for size in sizes]
        made = [_shared_buffer(size) for size in sizes]
        try:
            self._exchange(_REQUEST.pack(_BUFFERS, 0), b"", "DATA", [fd for fd, _ in made])
        finally:
            for fd, _ in made:
                os.close(fd)
        for old in (self._inputs, self._outputs):
            if old is not None:
                old.close()
        (_, self._inputs), (_, self._outputs) = made
        self._input_size, self._output_size = sizes

    # --- the Runtime API, server side ----------------------------------------------------------

    def check_received_model(self, data: bytes) -> None:
        self.checker.allow_native_models = self.allow_native_models
        self.checker.check_received_model(data)

    def prepare_model(self, input_data: bytes | None) -> bool:
        if input_data is None:
            raise ModelLoadError("WorkerRuntime serves received models only (no model_path)")
        spec = json.dumps(self.io_specification).encode()
        self._model_spec = None
        header = len(spec).to_bytes(4, "little") + spec
        answer = self._request(_MODEL, header + bytes(input_data), "MODEL")
        self._model_spec = json.loads(bytes(answer))
        return True

    def get_io_specification_from_model(self) -> dict | None:
        return self._model_spec

    def read_io_specification(self, io_spec: dict) -> None:
        super().read_io_specification(io_spec)
        self._sample_in = _sample_bytes(self.input_spec)
        self._sample_out = _sample_bytes(self.output_spec)
        batches = {e["shape"][0] if e["shape"] else 1 for e in self.input_spec} - {-1}
        self._fixed_batch = batches.pop() if len(batches) == 1 else (0 if batches else None)
        self._request(_SPEC, json.dumps(self.io_specification).encode(), "IO_SPEC")

    def unload_model(self) -> None:
        """Frees the worker's model between sessions. Called outside any request (a client
        came or went), so it never raises: a worker that fails here is restarted."""
        self.io_specification = self.input_spec = self.output_spec = None
        self._model_spec = self._output_inline = None
        self._input_length, self._has_output = None, False
        if self._sock is not None:
            try:
                self._request(_UNLOAD, b"", "unload")
            except KenningHILError as exc:
                log.warning("runtime worker: unloading the model failed: %s", one_line(exc))

    def prepare_input(self, input_data: bytes) -> bool:
        """DATA: checked against the io spec here (a wrong size is a FAIL at DATA, as without
        a worker) and copied into the shared input buffer for PROCESS."""
        self._require_io_specification()
        size = len(input_data)
        sample = self._sample_in
        batch = size // sample if sample else 0
        if not batch or size % sample or self._fixed_batch not in (None, batch):
            # the reason, with the expected sizes
            split_tensors_from_bytes(input_data, self.input_spec, "WorkerRuntime input")
        # the output buffer stays within what one message may carry (the client chose the
        # batch); a larger output travels inline
        output = min(batch * self._sample_out, self._buffer_limit())
        if size > self._input_size or output > self._output_size:
            self._ensure_buffers(size, output)
        self._input_length, self._has_output = None, False
        self._inputs[:size] = input_data
        self._input_length = size
        return True

    def load_input(self, input_data: list) -> bool:
        raise ModelNotLoadedError("WorkerRuntime takes input bytes (prepare_input)")

    def run(self) -> None:
        if self._input_length is None:
            raise ModelNotLoadedError("WorkerRuntime: no input loaded (prepare_input)")
        self._has_output = False
        status, self._worker_step, self._output_length, answer = self._exchange(
            _REQUEST.pack(_RUN, self._input_length), b"", "PROCESS"
        )
        self._output_inline = None if status == _OK_IN_BUFFER else bytes(answer)
        self._has_output = True

    def _process_request(self, payload: bytes) -> bool:
        # target_inference_step is the worker's own time around run(), without the channel
        start = time.perf_counter_ns()
        self.run()
        self._target_steps.append(self._worker_step)
        self._target_step_starts.append(start)
        return True

    def inference_session_start(self) -> None:
        """A client connected: the worker's runtime starts a fresh session too (its
        inference times, which its STATS report). Outside any request: never raises."""
        super().inference_session_start()
        if self._sock is not None:
            try:
                self._request(_SESSION, b"", "session start")
            except KenningHILError as exc:
                log.warning("runtime worker: starting a session failed: %s", one_line(exc))

    def upload_stats(self, input_data: bytes) -> bytes:
        """The runtime's own STATS from the worker (its inference times and whatever it adds,
        e.g. TFLite Micro's arena use) with this process's system statistics."""
        stats = json.loads(super().upload_stats(input_data))
        worker = json.loads(bytes(self._request(_STATS, b"", "STATS")))
        if not isinstance(worker, dict):
            raise WorkerRequestError("runtime worker: STATS is not a JSON object")
        stats.update(worker)
        return json.dumps(stats, separators=(",", ":")).encode("utf-8")

    def extract_raw_output(self) -> list:
        raise ModelNotLoadedError("WorkerRuntime answers output bytes (upload_output)")

    def upload_output(self, input_data: bytes) -> bytes:
        if not self._has_output:
            raise ModelNotLoadedError("WorkerRuntime: no output yet (run)")
        if self._output_inline is not None:
            return self._output_inline
        return self._outputs[:self._output_length]

    def run_server(self) -> None:
        """Over TCP the worker serves each whole connection this process accepted (see
        `_supervise`); over a serial line this process serves the protocol and sends each
        request's model work to the worker."""
        protocol = self._require_protocol("run_server")
        if not self._server_prepared:
            self.prepare_server()
        try:
            if self._sock is None:
                self.start_worker()
            if _protocol_setup(protocol) and getattr(protocol, "listener", None) is not None:
                self._supervise(protocol)
            else:
                super().run_server()
        finally:
            self.stop_worker()

    # --- TCP: the worker serves the connection, this process supervises it ---------------------

    def _supervise(self, protocol: Any) -> None:
        """Accepts clients (the --allow check and the handshake are the listener's) and hands
        each connection to the warm worker, which serves the whole session on it; this process
        waits on the worker meanwhile, turning other clients away as busy."""
        listener = protocol.listener
        self._serving = True
        try:
            while self._serving:
                connection = listener.accept(SERVER_POLL_SECONDS)
                if connection is None:
                    continue
                log.info("client %s connected", connection.name)
                try:
                    self._hand_over(protocol, listener, connection)
                finally:
                    connection.close()
        finally:
            self._serving = False
            protocol.close_server()

    def _hand_over(self, protocol: Any, listener: Any, connection: Any) -> None:
        """Lets the worker serve `connection` until the session ends. A worker that dies, hangs
        past --request-timeout or sends anything but the end of the session is killed; the
        request it was serving gets a FAIL with the reason (this process still holds the
        connection) and a fresh worker takes the session on. One that died between requests
        ends the session."""
        peer = connection.name.encode("utf-8", "replace")[:_PEER_LIMIT]
        while self._serving:
            if self._sock is None:
                try:
                    self.start_worker()
                except KenningHILError as exc:
                    log.error("runtime worker: %s; client %s closed", one_line(exc),
                              connection.name)
                    return
            try:
                _send(self._sock, _REQUEST.pack(_CONNECTION, len(peer)), peer)
                socket.send_fds(self._sock, [b"F"], [connection.fileno()])
            except OSError:
                pass  # a dead worker: found below
            failure = self._watch_session(listener, connection)
            if failure is None:
                return
            mtype, reason = failure
            error = self._restart(reason)
            if not mtype or not self._serving:
                return
            if not protocol.fail_request(connection, mtype, f"{type(error).__name__}: {error}"):
                return

    def _watch_session(self, listener: Any, connection: Any) -> tuple[int, str] | None:
        """Waits while the worker serves `connection`: None when the session ended (or the
        server stops), else (type of the request in flight or 0, why the worker must go).
        From the worker only fixed-size words are read (a worker is not trusted either)."""
        pair, word, limit = self._sock, self._word, self.request_timeout
        pair_fd = pair.fileno()
        poller = select.poll()
        poller.register(pair_fd, select.POLLIN)
        poller.register(listener.fileno(), select.POLLIN)
        # a client connecting is turned away as busy once the session has gone on for
        # SERVER_POLL_SECONDS after it came (as the server loop does), not at once and not
        # while the session ends; nor once the served client has closed, which a worker not
        # run for a while (a loaded machine) may not have noticed yet: the listener keeps
        # that client to be served next
        knocked = None
        while True:
            now = time.monotonic()
            mtype, started = _in_flight(word)
            ending = mtype == _SESSION_ENDING
            if knocked is not None and now - knocked >= SERVER_POLL_SECONDS and not ending:
                listener.refuse_pending(connection)  # one client at a time
                poller.register(listener.fileno(), select.POLLIN)
                knocked = None
            if not self._serving:  # SIGTERM: the session ends with the server
                self.worker.kill()
                return None
            wait = SERVER_POLL_SECONDS
            if knocked is not None and not ending:
                wait = max(0.001, min(wait, knocked + SERVER_POLL_SECONDS - now))
            if mtype:
                left = started + limit - now
                if left <= 0:
                    return (0 if ending else mtype), (
                        f"runtime worker did not finish {_doing(mtype)} within "
                        f"{limit:g} s (--request-timeout): killed"
                    )
                wait = min(wait, left)
            for fd, _ in poller.poll(wait * 1000):
                if fd != pair_fd:
                    poller.unregister(fd)
                    knocked = now
                    continue
                try:
                    data = pair.recv(_ANSWER.size + 1, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data == _SESSION_ENDED:
                    return None
                mtype = _in_flight(word)[0]
                during = f"during {_doing(mtype)}" if mtype else "between requests"
                if mtype == _SESSION_ENDING:
                    mtype = 0  # no request to answer
                if data:
                    return mtype, (
                        f"runtime worker sent {len(data)} bytes that are not the end of the "
                        f"session {during}"
                    )
                code = _wait(self.worker, 2.0)
                cap = f", memory cap {describe_memory(self.max_memory)}" \
                    if self.max_memory else ""
                return mtype, f"runtime worker died {during} ({_exit(code)}{cap})"


def _doing(mtype: int) -> str:
    return "the end of the session" if mtype == _SESSION_ENDING else message_type_name(mtype)


def _in_flight(word: memoryview) -> tuple[int, float]:
    """(type, monotonic start in seconds) of the request the worker serves, (0, 0) when none.
    Read until two reads agree: a read during the worker's store may mix old and new bytes."""
    value = word[0]
    while (again := word[0]) != value:
        value = again
    return value & 0xFF, (value >> 8) / 1e6


def _protocol_setup(protocol: Any) -> dict:
    """What the worker needs to serve connections of `protocol` itself: its class and
    parameters (the address and allow list stay with the server). Empty for protocols whose
    connections cannot be handed over (a serial line)."""
    if not hasattr(protocol, "serve_connection"):
        return {}
    from kenning_hil.core.args import get_arguments_structure

    parameters = {}
    for name in get_arguments_structure(type(protocol)):
        if name in ("host", "port", "allow") or not hasattr(protocol, name):
            continue
        value = getattr(protocol, name)
        parameters[name] = value.value if isinstance(value, Enum) else value
    cls = type(protocol)
    return {"protocol": f"{cls.__module__}.{cls.__qualname__}",
            "protocol_parameters": parameters}


def _sample_bytes(entries: list[dict]) -> int:
    """Bytes of one sample of these tensors, as they travel (wire dtypes)."""
    return sum(
        math.prod(tensor_shape(e, batch=1)[1:]) * wire_dtype(e).itemsize for e in entries
    )


def _wait(worker: subprocess.Popen | None, seconds: float) -> int | None:
    """The worker's exit status once it has exited within `seconds`, else None."""
    if worker is None:
        return None
    try:
        return worker.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def _exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


"""WorkerRuntime: the target server's runtime with model loading and inference in a worker
process under a memory cap, so that a model that allocates too much, runs too long or
crashes a runtime's native code costs one FAIL answer, not the server.

The server process keeps the protocol, the session, the io specification and the checks of
a received model (`check_received_model`, run on a second instance of the runtime that never
loads anything); the worker (a `spawn`ed process, started at server start and kept warm)
holds the real runtime. One pipe connects them; each request is one message and one answer:

- parent -> worker: one op byte and its payload: ``M`` the length of the io spec JSON (4
  bytes, little-endian), the JSON (or ``null``), then the model bytes; ``S`` io spec JSON;
  ``R`` input bytes (prepare_input, the runtime's PROCESS handler, upload_output in one
  round trip); ``T`` STATS (the runtime's own `upload_stats`); ``N`` a new session;
  ``U`` unload.
- worker -> parent: ``\\x00`` + result (M: the model's own io spec as JSON; R: 8 bytes of
  run time in ns, little-endian, then the output bytes) or ``\\x01`` + the error, one line.

The parent never unpickles what the worker sends (a worker running a hostile model is not
trusted either): answers are raw bytes and JSON. DATA is checked against the io spec in the
parent (a wrong size is a FAIL at DATA, as without a worker) and sent with PROCESS.

Memory: the worker sets RLIMIT_DATA (heap and private anonymous mappings, which is where
model tensors live) to `max_memory` before importing any framework. An allocation beyond it
fails inside the runtime (a FAIL naming the cap) or kills the worker; a worker that dies
(any signal) or does not answer within `request_timeout` is killed, the request gets a
FAIL with the reason, and a fresh worker is started for the next session.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
import signal
import time
from typing import Any

from kenning_hil.core.errors import (
    ConfigurationError,
    KenningHILError,
    ModelLoadError,
    ModelNotLoadedError,
    one_line,
)
from kenning_hil.core.model import split_tensors_from_bytes
from kenning_hil.core.runtime import Runtime

log = logging.getLogger("kenning_hil.serve")

_OK, _ERROR = b"\x00", b"\x01"
_MODEL, _SPEC, _RUN, _STATS, _SESSION, _UNLOAD = b"M", b"S", b"R", b"T", b"N", b"U"
STARTUP_TIMEOUT = 120.0
"""Seconds a new worker may take to import its runtime and say it is ready."""


class WorkerRequestError(KenningHILError):
    """The worker could not serve a request: its runtime failed, or it died or hung."""


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


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(conn: Any, runtime_type: str, parameters: dict, max_memory: int | None) -> None:
    """The worker process: builds the runtime and serves the parent's requests until EOF."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    if max_memory is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (max_memory, max_memory))
    from kenning_hil.blocks.registry import resolve_class

    try:
        runtime = resolve_class("runtime", runtime_type, Runtime).from_json(parameters)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which exits with it
        conn.send_bytes(_ERROR + _reason(exc).encode())
        return
    conn.send_bytes(_OK)
    clock = time.perf_counter_ns
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        op, payload = request[:1], memoryview(request)[1:]
        try:
            if op == _RUN:
                runtime.prepare_input(payload)
                # the runtime's own PROCESS handler: it times run() into its STATS
                steps = runtime._target_steps
                start = clock()
                runtime._process_request(b"")
                elapsed = steps[-1] if steps else clock() - start
                answer = elapsed.to_bytes(8, "little") + runtime.upload_output(b"")
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
                reason += f" (the worker's memory cap is {describe_memory(max_memory or 0)})"
            conn.send_bytes(_ERROR + reason.encode("utf-8", "replace"))
            continue
        conn.send_bytes(_OK + answer)


def _set_spec(runtime: Runtime, spec: dict | None) -> None:
    if spec is None:
        runtime.io_specification = runtime.input_spec = runtime.output_spec = None
    else:
        runtime.read_io_specification(spec)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc, 500)}"


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
        super().__init__(protocol)
        from kenning_hil.blocks.registry import resolve_class

        self.runtime_class = resolve_class("runtime", runtime_type, Runtime)
        self.runtime_type = runtime_type
        self.parameters = dict(parameters or {})
        # the checks of received models run here, on an instance that never loads a model
        self.checker = self.runtime_class.from_json(self.parameters)
        self.loads_native_code = self.runtime_class.loads_native_code
        self.max_memory = max_memory
        self.request_timeout = request_timeout
        self.worker: Any = None
        self._conn: Any = None
        self._model_spec: dict | None = None
        self._input: bytes | None = None
        self._output: bytes | None = None
        self._worker_step = 0

    # --- the worker ---------------------------------------------------------------------------

    @property
    def worker_pid(self) -> int | None:
        return self.worker.pid if self.worker is not None else None

    def start_worker(self) -> None:
        """Starts a fresh worker and waits until its runtime is built."""
        self.stop_worker()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        worker = context.Process(
            target=_worker_main,
            args=(child, self.runtime_type, self.parameters, self.max_memory),
            name="kenning-hil-runtime-worker",
            daemon=True,
        )
        worker.start()
        child.close()
        self.worker, self._conn = worker, parent
        if not parent.poll(STARTUP_TIMEOUT):
            self.stop_worker()
            raise ConfigurationError(
                f"runtime worker for {self.runtime_type} not ready within {STARTUP_TIMEOUT} s"
            )
        try:
            answer = parent.recv_bytes()
        except (EOFError, OSError):
            code = worker.exitcode
            self.stop_worker()
            raise ConfigurationError(
                f"runtime worker for {self.runtime_type} exited at start ({_exit(code)})"
            ) from None
        if answer[:1] != _OK:
            self.stop_worker()
            raise ConfigurationError(answer[1:].decode("utf-8", "replace"))
        cap = describe_memory(self.max_memory) if self.max_memory else "none"
        log.info("runtime worker pid %d started (memory cap %s)", worker.pid, cap)

    def stop_worker(self) -> None:
        worker, conn = self.worker, self._conn
        self.worker = self._conn = None
        if conn is not None:
            conn.close()  # an idle worker sees EOF and exits
        if worker is not None:
            worker.join(1.0)
            if worker.exitcode is None:
                worker.kill()
                worker.join(5.0)
            worker.close()

    def _restart(self, reason: str) -> WorkerRequestError:
        """Replaces a dead or hung worker; the error for the request that met it."""
        worker = self.worker
        if worker is not None and worker.exitcode is None:
            worker.kill()
            worker.join(5.0)
        log.warning("runtime worker: %s; restarting it", reason)
        self._model_spec = self._output = self._input = None
        try:
            self.start_worker()
        except KenningHILError as exc:
            reason += f"; the new worker failed too: {one_line(exc)}"
        return WorkerRequestError(f"{reason}; the worker was restarted (load the model again)")

    def _request(self, op: bytes, payload: bytes, what: str) -> memoryview:
        if self._conn is None:
            self.start_worker()
        conn = self._conn
        try:
            conn.send_bytes(op + payload if len(payload) < 1 << 16 else b"".join((op, payload)))
            if not conn.poll(self.request_timeout):
                raise self._restart(
                    f"runtime worker did not finish {what} within {self.request_timeout:g} s "
                    f"(--request-timeout): killed"
                )
            answer = conn.recv_bytes()
        except (EOFError, OSError, BrokenPipeError):
            worker = self.worker
            if worker is not None:
                worker.join(2.0)
            code = worker.exitcode if worker is not None else None
            cap = (
                f", memory cap {describe_memory(self.max_memory)}" if self.max_memory else ""
            )
            raise self._restart(f"runtime worker died during {what} ({_exit(code)}{cap})") \
                from None
        if answer[:1] != _OK:
            raise WorkerRequestError(answer[1:].decode("utf-8", "replace"))
        return memoryview(answer)[1:]

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
        self._request(_SPEC, json.dumps(self.io_specification).encode(), "IO_SPEC")

    def unload_model(self) -> None:
        """Frees the worker's model between sessions. Called outside any request (a client
        came or went), so it never raises: a worker that fails here is restarted."""
        self.io_specification = self.input_spec = self.output_spec = None
        self._model_spec = self._input = self._output = None
        if self._conn is not None:
            try:
                self._request(_UNLOAD, b"", "unload")
            except KenningHILError as exc:
                log.warning("runtime worker: unloading the model failed: %s", one_line(exc))

    def prepare_input(self, input_data: bytes) -> bool:
        self._require_io_specification()
        # the size check of DATA, here: a wrong size is a FAIL at DATA, as without a worker
        split_tensors_from_bytes(input_data, self.input_spec, "WorkerRuntime input")
        self._input, self._output = bytes(input_data), None
        return True

    def load_input(self, input_data: list) -> bool:
        raise ModelNotLoadedError("WorkerRuntime takes input bytes (prepare_input)")

    def run(self) -> None:
        if self._input is None:
            raise ModelNotLoadedError("WorkerRuntime: no input loaded (prepare_input)")
        answer = self._request(_RUN, self._input, "PROCESS")
        self._worker_step = int.from_bytes(answer[:8], "little")
        self._output = bytes(answer[8:])

    def _process_request(self, payload: bytes) -> bool:
        # target_inference_step is the worker's own time around run(), without the pipe
        start = time.perf_counter_ns()
        self.run()
        self._target_steps.append(self._worker_step)
        self._target_step_starts.append(start)
        return True

    def inference_session_start(self) -> None:
        """A client connected: the worker's runtime starts a fresh session too (its
        inference times, which its STATS report). Outside any request: never raises."""
        super().inference_session_start()
        if self._conn is not None:
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
        if self._output is None:
            raise ModelNotLoadedError("WorkerRuntime: no output yet (run)")
        return self._output

    def run_server(self) -> None:
        try:
            if self._conn is None:
                self.start_worker()
            super().run_server()
        finally:
            self.stop_worker()


def _exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"

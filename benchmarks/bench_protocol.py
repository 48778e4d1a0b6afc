#!/usr/bin/env python3
"""Per-inference protocol overhead over TCP loopback, and UART upload throughput over a pty.

TCP: one inference = DATA (3,136-byte input) -> PROCESS -> OUTPUT (40-byte output), against
`kenning-hil serve --runtime echo` (a runtime that does no work) in its own process. Next to
it, measured in the same run and interleaved with it, a raw-socket exchange with the same
three round trips and byte counts (3,148 -> 13, 12 -> 13, 12 -> 52 bytes, TCP_NODELAY), its
server also a Python process of its own. Reports p50 and p99 in microseconds; the last line
is the ratio of the p50s. For context the exchange is then measured again with client and
servers confined to one core: on a VM, a request/response between processes on different
idle cores pays a wake-up per message, which costs the protocol (more Python work between
messages, so the other core has gone idle) far more than the raw exchange.

The issue's goal (protocol p50 <= 2x raw) is about the protocol path, so the main server is
`--no-worker` (echo runs in the server process anyway). What the runtime worker of a default
`serve` adds (the model in a process of its own, which serves the whole connection the
server accepted and handed over) is measured next to it, interleaved in the same rounds: the
same echo runtime behind `WorkerRuntime`, as `serve` builds it for every isolated runtime.

UART: a MODEL upload through `UARTProtocol` over a socat pty pair at 115200 baud (124-byte
chunks in 136-byte frames), against the line-rate limit of 11,520 B/s. A pty moves bytes as
fast as the processes do and ignores the baud rate, so the measured rate says what the
protocol stack sustains, not what a real 115200 line would give.

    .venv/bin/python benchmarks/bench_protocol.py [--samples N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.protocols.bytes_protocol import NetworkProtocol, UARTProtocol  # noqa: E402
from kenning_hil.targets.process import (  # noqa: E402
    server_command,
    start_logged,
    stop,
    wait_for_line,
)

# 28x28 float32 in, 10 float32 out: 3,136 and 40 bytes, as in the issue
SPEC = {
    "input": [{"name": "x", "shape": [1, 28, 28], "dtype": "float32"}],
    "output": [{"name": "y", "shape": [1, 10], "dtype": "float32"}],
}
INPUT = bytes(3136)
RAW_SIZES = ((3148, 13), (12, 13), (12, 52))

RAW_SERVER = r"""
import socket, sys
sizes = ((3148, 13), (12, 13), (12, 52))
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = bytearray(65536)
view = memoryview(buf)
answers = [bytes(n) for _, n in sizes]
while True:
    for (want, _), answer in zip(sizes, answers):
        got = 0
        while got < want:
            n = conn.recv_into(view[got:want])
            if not n:
                sys.exit(0)
            got += n
        conn.sendall(answer)
"""


# `serve` with the runtime worker, for a runtime that would otherwise run in-process (echo)
WORKER_SERVER = r"""
from kenning_hil.blocks.registry import resolve_class
from kenning_hil.runtimes.worker import WorkerRuntime, default_max_memory
protocol = resolve_class("protocol", "tcp").from_json({"host": "127.0.0.1", "port": 0})
runtime = WorkerRuntime("echo", {"disable_performance_measurements": True}, protocol=protocol,
                        max_memory=default_max_memory())
runtime.prepare_server()
runtime.start_worker()
print(f"listening on {protocol.address}", flush=True)
runtime.run_server()
"""


def percentile_us(samples_ns: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns, dtype=np.int64), q)) / 1e3


class RawClient:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests = [bytes(n) for n, _ in RAW_SIZES]
        self.view = memoryview(bytearray(65536))

    def inference(self) -> None:
        sock, view = self.sock, self.view
        for request, (_, want) in zip(self.requests, RAW_SIZES):
            sock.sendall(request)
            got = 0
            while got < want:
                got += sock.recv_into(view[got:want])


def protocol_inference(client: NetworkProtocol) -> None:
    if not (client.upload_input(INPUT) and client.request_processing()):
        raise RuntimeError("echo server refused a request")
    ok, output = client.download_output()
    if not ok or len(output) != 40:
        raise RuntimeError(f"unexpected OUTPUT answer: {ok}, {len(output or b'')} bytes")


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (Linux /proc; clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class CPUMeter:
    """Adds up the user and system CPU time of this process and of another one with its
    child processes as they are when the meter is made (a server's runtime worker)."""

    def __init__(self, other_pid: int):
        import psutil

        self.other_pids = [other_pid] + [c.pid for c in psutil.Process(other_pid).children()]
        self.totals = [0.0, 0.0, 0.0, 0.0]  # own user, own system, other user, other system

    def _now(self) -> tuple[float, ...]:
        own = os.times()
        other = [process_cpu_seconds(pid) for pid in self.other_pids]
        return (own.user, own.system, sum(u for u, _ in other), sum(s for _, s in other))

    def __enter__(self):
        self._start = self._now()
        return self

    def __exit__(self, *exc):
        now = self._now()
        self.totals = [t + b - a for t, a, b in zip(self.totals, self._start, now)]

    def describe(self, count: int) -> str:
        us = [t / count * 1e6 for t in self.totals]
        return (
            f"client {us[0]:.0f} user + {us[1]:.0f} sys, "
            f"server {us[2]:.0f} user + {us[3]:.0f} sys us per inference"
        )


def timed(function, count: int) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(count):
        start = clock()
        function()
        out.append(clock() - start)
    return out


def _connect(server: subprocess.Popen, log: Path, what: str) -> NetworkProtocol:
    address = wait_for_line(server, log, r"listening on (\S+)", 60, what).group(1)
    host, port = address.rsplit(":", 1)
    client = NetworkProtocol(host=host, port=int(port))
    client.initialize_client()
    assert client.upload_io_specification_dict(SPEC) and client.upload_model_bytes(b"-")
    return client


def bench_tcp(samples: int, rounds: int, workdir: Path, worker: bool = True) -> float:
    """Prints the exchanges' latencies and CPU; returns the p50 ratio protocol / raw (the
    protocol path: no worker)."""
    raw_server = subprocess.Popen(
        [sys.executable, "-c", RAW_SERVER], stdout=subprocess.PIPE, text=True
    )
    stamp = time.monotonic_ns()  # one log per call: a fresh port line
    log = workdir / f"serve-tcp-{stamp}.log"
    server = start_logged(
        server_command(
            "--runtime",
            "echo",
            "--runtime-parameters",
            '{"disable_performance_measurements": true}',
            "--port",
            "0",
            "--log-level",
            "WARNING",
            "--no-worker",
        ),
        log,
    )
    worker_log = workdir / f"serve-worker-{stamp}.log"
    worker_server = (
        start_logged([sys.executable, "-c", WORKER_SERVER], worker_log) if worker else None
    )
    try:
        raw = RawClient(int(raw_server.stdout.readline()))
        client = _connect(server, log, "echo server")
        worker_client = (_connect(worker_server, worker_log, "echo server with worker")
                         if worker_server is not None else None)
        # warm up every path, then interleave blocks so that machine noise hits all alike
        timed(raw.inference, 200)
        timed(lambda: protocol_inference(client), 200)
        variants = [("raw socket exchange", raw.inference, raw_server.pid),
                    ("kenning-hil protocol", lambda: protocol_inference(client), server.pid)]
        if worker_client is not None:
            timed(lambda: protocol_inference(worker_client), 200)
            variants.append(("protocol + runtime worker",
                             lambda: protocol_inference(worker_client), worker_server.pid))
        samples_ns: list[list[int]] = [[] for _ in variants]
        meters = [CPUMeter(pid) for _, _, pid in variants]
        block = max(1, samples // rounds)
        for _ in range(rounds):
            for (_, function, _), meter, out in zip(variants, meters, samples_ns):
                with meter:
                    out += timed(function, block)
        client.disconnect()
        if worker_client is not None:
            worker_client.disconnect()
        raw.sock.close()
    finally:
        stop(server)
        if worker_server is not None:
            stop(worker_server)
        raw_server.kill()
        raw_server.wait()
    p50 = [percentile_us(out, 50) for out in samples_ns]
    p99 = [percentile_us(out, 99) for out in samples_ns]
    print(f"TCP loopback, {len(samples_ns[0])} inferences each (DATA 3,136 B + PROCESS + "
          f"OUTPUT 40 B)")
    for (name, _, _), a, b in zip(variants, p50, p99):
        print(f"  {name:26s}: p50 {a:8.1f} us   p99 {b:8.1f} us")
    print(f"  protocol overhead per inference at p50: {p50[1] - p50[0]:.1f} us "
          f"(ratio {p50[1] / p50[0]:.2f})")
    if len(p50) > 2:
        print(f"  runtime worker adds at p50: {p50[2] - p50[1]:.1f} us "
              f"(ratio to raw {p50[2] / p50[0]:.2f})")
    for (name, _, _), meter, out in zip(variants, meters, samples_ns):
        print(f"  CPU, {name:26s}: {meter.describe(len(out))}")
    if len(p50) > 2:
        print("  (a server's CPU figures include its runtime worker's process)")
    return p50[1] / p50[0]


def bench_uart(model_bytes: int, workdir: Path) -> None:
    if shutil.which("socat") is None:
        print("UART over a pty: skipped (socat is not installed)")
        return
    server_end, client_end = workdir / "pty-server", workdir / "pty-client"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={server_end}", f"pty,raw,echo=0,link={client_end}"],
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        deadline = time.monotonic() + 10
        while not (server_end.exists() and client_end.exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.01)
        log = workdir / "serve-uart.log"
        server = start_logged(
            server_command(
                "--runtime", "echo", "--serial", str(server_end), "--log-level", "WARNING"
            ),
            log,
        )
        wait_for_line(server, log, r"listening on", 60, "echo server on a pty")
        client = UARTProtocol(port=str(client_end), baudrate=115200)
        client.initialize_client()
        assert client.upload_io_specification_dict(SPEC)
        model = bytes(range(256)) * (model_bytes // 256)
        timeout = client.model_timeout(len(model))
        start = time.perf_counter()
        assert client.upload_model_bytes(model)
        seconds = time.perf_counter() - start
        client.disconnect()
    finally:
        if server is not None:
            stop(server)
        socat.terminate()
        socat.wait(5)
    line_rate = 115200 / 10
    payload_rate = line_rate * 124 / 136  # 12 header bytes in every 136-byte frame
    measured = len(model) / seconds
    print(f"UART MODEL upload over a pty at 115200 baud: {len(model)} bytes in {seconds:.3f} s")
    print(f"  measured payload throughput: {measured:,.0f} B/s")
    print(
        f"  line-rate limit: {line_rate:,.0f} B/s raw, {payload_rate:,.0f} B/s of payload in "
        f"124-byte chunks; measured = {measured / line_rate:.1f}x the line rate"
    )
    print(
        "  (a pty ignores the baud rate; on a real 115200 line this upload takes at least "
        f"{len(model) / payload_rate:.1f} s, and the host's timeout for it is scaled to "
        f"{timeout:.1f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000, help="inferences per variant")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved blocks")
    parser.add_argument("--model-bytes", type=int, default=64 * 1024, help="UART upload size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bench_uart(args.model_bytes, workdir)
        ratio = bench_tcp(args.samples, args.rounds, workdir)
        one_core = None
        if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
            # the servers started by bench_tcp inherit this affinity
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            print("context: the same exchanges with client and servers on one core")
            one_core = bench_tcp(args.samples // 2, max(1, args.rounds // 2), workdir)
    if one_core is not None:
        print(f"context: ratio on one core {one_core:.2f} (across cores {ratio:.2f})")
    print(json.dumps({"protocol_overhead_ratio": round(ratio, 3)}))
    print(f"protocol overhead ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

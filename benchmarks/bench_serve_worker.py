#!/usr/bin/env python3
"""What the runtime worker of `kenning-hil serve` (issue 26: model loading and inference in
a process of its own under a memory cap) costs per inference.

Two servers of the digits model on ONNX Runtime (`num_threads: 1`), one with the worker (the
default) and one with `--no-worker`, each in its own process; one client measures DATA ->
PROCESS -> OUTPUT for one sample (64 float32 in, 10 out: 256 and 40 bytes), alternating
between the two servers in rounds so that machine load hits both alike. Reports p50 and
p99 in microseconds of both, the worker's added p50 in microseconds and as a ratio, and the
CPU time each server (with its worker) spent per inference, read from the kernel's
scheduler statistics (/proc/PID/schedstat: exact, unlike tick-based CPU times) with the time
its processes waited for a CPU (machine load). The last line is the ratio of the p50s.

    .venv/bin/python benchmarks/bench_serve_worker.py [--samples N] [--rounds R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.core.iospec import io_spec_path, load_io_specification  # noqa: E402
from kenning_hil.protocols.bytes_protocol import NetworkProtocol  # noqa: E402
from kenning_hil.targets.process import (  # noqa: E402
    server_command,
    start_logged,
    stop,
    wait_for_line,
)

MODEL = REPO / "models" / "digits" / "digits-mlp.onnx"
LISTENING = r"listening on (?P<host>[^\s:]+):(?P<port>\d+)"


def start(workdir: Path, name: str, *extra: str):
    log = workdir / f"{name}.log"
    proc = start_logged(
        server_command(
            "--runtime", "onnxruntime", "--port", "0", "--log-level", "WARNING",
            "--runtime-parameters", '{"num_threads": 1}', *extra,
        ),
        log,
    )
    match = wait_for_line(proc, log, LISTENING, 120.0, name, offset=proc.log_offset)
    return proc, match.group("host"), int(match.group("port"))


def connect(host: str, port: int, spec: dict) -> NetworkProtocol:
    client = NetworkProtocol(host=host, port=port, timeout=30.0)
    client.initialize_client()
    assert client.upload_io_specification_dict(spec)
    assert client.upload_model(MODEL), client.refusal_reason()
    return client


def server_processes(proc) -> list[int]:
    """The server's pid and its children's (the runtime worker)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [proc.pid, *(int(pid) for pid in children.read_text().split())]


def scheduler_ns(pids: list[int]) -> tuple[int, int]:
    """(ns on a CPU, ns waiting for one) of these processes' main threads so far."""
    on_cpu = waiting = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
        on_cpu, waiting = on_cpu + int(fields[0]), waiting + int(fields[1])
    return on_cpu, waiting


def inference_ns(client: NetworkProtocol, data: bytes) -> int:
    start = time.perf_counter_ns()
    assert client.upload_input(data)
    assert client.request_processing()
    ok, raw = client.download_output()
    assert ok and raw is not None and len(raw) == 40
    return time.perf_counter_ns() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000, help="inferences per server")
    parser.add_argument("--rounds", type=int, default=20, help="alternations between servers")
    args = parser.parse_args()
    spec = load_io_specification(io_spec_path(MODEL))
    if spec is None:
        print(f"no io spec beside {MODEL}", file=sys.stderr)
        return 1
    data = np.random.default_rng(0).random((1, 64), dtype=np.float32).tobytes()
    with tempfile.TemporaryDirectory(prefix="bench-serve-worker-") as tmp:
        workdir = Path(tmp)
        servers = {
            "worker": start(workdir, "worker"),
            "in-process": start(workdir, "in-process", "--no-worker"),
        }
        try:
            clients = {name: connect(host, port, spec) for name, (_, host, port) in servers.items()}
            for client in clients.values():  # warm-up
                for _ in range(100):
                    inference_ns(client, data)
            pids = {name: server_processes(proc) for name, (proc, _, _) in servers.items()}
            times: dict[str, list[int]] = {name: [] for name in clients}
            cpu = {name: [0, 0] for name in clients}
            per_round = max(1, args.samples // args.rounds)
            for _ in range(args.rounds):
                for name, client in clients.items():
                    before = scheduler_ns(pids[name])
                    times[name].extend(inference_ns(client, data) for _ in range(per_round))
                    after = scheduler_ns(pids[name])
                    cpu[name] = [t + b - a for t, a, b in zip(cpu[name], before, after)]
            for client in clients.values():
                client.disconnect()
        finally:
            for proc, _, _ in servers.values():
                stop(proc)
    p50 = {name: float(np.percentile(t, 50)) / 1e3 for name, t in times.items()}
    p99 = {name: float(np.percentile(t, 99)) / 1e3 for name, t in times.items()}
    for name in times:
        print(f"{name:>10}: p50 {p50[name]:7.1f} us, p99 {p99[name]:7.1f} us "
              f"({len(times[name])} inferences, DATA -> PROCESS -> OUTPUT)")
    for name in times:
        count = len(times[name])
        print(f"{name:>10}: CPU {cpu[name][0] / count / 1e3:6.1f} us per inference in "
              f"{len(pids[name])} process(es), {cpu[name][1] / count / 1e3:6.1f} us waiting for a "
              f"CPU")
    added = p50["worker"] - p50["in-process"]
    print(f"worker adds {added:.1f} us per inference at p50")
    print(f"worker / in-process p50: {p50['worker'] / p50['in-process']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Hostile traffic against a live target server (issue 16): `kenning-hil serve` over TCP,
one connection per case, cases of every `kenning_hil.protocols.hostile.CATEGORIES` (random
bytes, random headers, oversize lengths, truncated frames, wrong-order frames, malicious
models, absurd io specs, mutated sessions), a well-formed session after every 70 cases.

Prints per server: cases and frames sent, crashes, hangs (> 2 s without an answer or a
close), malformed answers, good sessions passed/failed, the server's RSS (with its runtime
worker) at the start, after the first 1,000 cases and at the end, and the tracebacks in its
log. Targets: 0 crashes, 0 hangs, 0 good sessions failed, RSS growth <= 5 MB after the first
1,000 cases, 0 tracebacks; the exit code is 1 when one is missed.

    .venv/bin/python benchmarks/bench_server_fuzz.py [--cases 10000] [--onnx-cases 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.protocols.bytes_protocol import NetworkProtocol  # noqa: E402
from kenning_hil.protocols.hostile import GoodSession, fuzz_tcp_server  # noqa: E402
from kenning_hil.targets.process import (  # noqa: E402
    server_command,
    start_logged,
    stop,
    wait_for_line,
)

GROWTH_LIMIT = 5_000_000


def onnx_model(path: Path) -> bytes:
    """float32 [batch, 8] -> Gemm -> float32 [batch, 3] ('x' -> 'y'), built with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.arange(24, dtype=np.float32).reshape(3, 8) / 24
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path.read_bytes()


def good_sessions(workdir: Path) -> dict[str, GoodSession]:
    sessions = {
        "echo": GoodSession(
            {
                "input": [{"name": "x", "shape": [1, 16], "dtype": "float32"}],
                "output": [{"name": "y", "shape": [1, 4], "dtype": "int8"}],
            },
            b"model bytes " * 30,
            bytes(range(64)),
        )
    }
    try:
        model = onnx_model(workdir / "gemm.onnx")
    except ImportError:
        return sessions
    sessions["onnxruntime"] = GoodSession(
        {
            "input": [{"name": "x", "shape": [1, 8], "dtype": "float32"}],
            "output": [{"name": "y", "shape": [1, 3], "dtype": "float32"}],
        },
        model,
        bytes(32),
    )
    return sessions


def fuzz_server(runtime: str, good: GoodSession, cases: int, workdir: Path, seed: int) -> bool:
    log = workdir / f"serve-{runtime}.log"
    proc = start_logged(server_command("--runtime", runtime, "--port", "0"), log)
    try:
        match = wait_for_line(proc, log, r"listening on (?P<address>\S+)", 60.0, "serve")
        host, port = match.group("address").rsplit(":", 1)

        def good_session() -> None:
            client = NetworkProtocol(host=host, port=int(port), timeout=5.0)
            client.initialize_client()
            try:
                for step, ok in (
                    ("IO_SPEC", lambda: client.upload_io_specification_dict(good.io_spec)),
                    ("MODEL", lambda: client.upload_model_bytes(good.model)),
                    ("DATA", lambda: client.upload_input(good.sample)),
                    ("PROCESS", client.request_processing),
                    ("OUTPUT", lambda: client.download_output()[0]),
                ):
                    if not ok():
                        raise AssertionError(f"{step} refused: {client.refusal_reason()}")
            finally:
                client.disconnect()

        start = time.monotonic()
        report = fuzz_tcp_server(
            host, int(port), cases, good, good_session, seed=seed, pid=proc.pid,
            progress=lambda r: print(f"  {r.cases} cases, {time.monotonic() - start:.0f} s",
                                     flush=True),
        )
        seconds = time.monotonic() - start
    finally:
        stop(proc)
    tracebacks = log.read_text(errors="replace").count("Traceback")
    print(f"serve --runtime {runtime}: {cases} cases in {seconds:.0f} s")
    for line in report.lines():
        print(f"  {line}")
    print(f"  tracebacks in the server log: {tracebacks}")
    growth = report.growth_after_warmup
    return (
        report.crashes == 0
        and report.hangs == 0
        and report.good_failed == 0
        and report.malformed_answers == 0
        and tracebacks == 0
        and (growth is None or cases <= 1_000 or growth <= GROWTH_LIMIT)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases against the echo server")
    parser.add_argument("--onnx-cases", type=int, default=3_000,
                        help="cases against the ONNX Runtime server (0: skip)")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-server-fuzz-") as tmp:
        workdir = Path(tmp)
        sessions = good_sessions(workdir)
        results = {"echo": fuzz_server("echo", sessions["echo"], args.cases, workdir, args.seed)}
        if args.onnx_cases and "onnxruntime" in sessions:
            results["onnxruntime"] = fuzz_server(
                "onnxruntime", sessions["onnxruntime"], args.onnx_cases, workdir, args.seed
            )
    met = all(results.values())
    print("server fuzz: targets " + ("met" if met else "MISSED") + " ("
          + ", ".join(f"{k}: {'ok' if v else 'missed'}" for k, v in results.items()) + ")")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

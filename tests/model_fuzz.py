"""The structural model fuzzer (issue 26): mutated models (`kenning_hil/formats/mutation.py`:
well-formed protobuf / flatbuffer containers with fields changed) sent to a real
`kenning-hil serve`, each followed by a session with the good model that must give the good
model's output. Used by tests/runtimes/test_serve_model_fuzz.py and
benchmarks/bench_model_fuzz.py (>= 2,000 models per runtime)."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kenning_hil.core.errors import KenningHILError
from kenning_hil.core.model import per_sample_shape, wire_dtype
from kenning_hil.protocols.bytes_protocol import NetworkProtocol
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line

LISTENING = r"listening on (?P<host>[^\s:]+):(?P<port>\d+)"


@dataclass
class FuzzReport:
    runtime: str
    models: int = 0
    outcomes: Counter = field(default_factory=Counter)
    server_deaths: int = 0
    good_sessions_failed: list[str] = field(default_factory=list)
    worker_restarts: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.runtime}: {self.models} mutated models in {self.seconds:.0f} s ({kinds}); "
            f"server deaths {self.server_deaths}, good sessions failed "
            f"{len(self.good_sessions_failed)}, worker restarts {self.worker_restarts}"
        )


def one_sample(spec: dict) -> bytes:
    """Bytes of one sample of zeros for the io spec's inputs (in the wire dtypes)."""
    return b"".join(
        np.zeros(per_sample_shape(e), dtype=wire_dtype(e)).tobytes() for e in spec["input"]
    )


def _session(host: str, port: int, spec: dict, model: bytes, sample: bytes) -> tuple[str, bytes]:
    """(how far the session got, the output when it got one)."""
    protocol = NetworkProtocol(host=host, port=port, timeout=60.0)
    try:
        protocol.initialize_client()
        if not protocol.upload_io_specification_dict(spec):
            return "io spec refused", b""
        if not protocol.upload_model_bytes(model):
            return "model refused", b""
        if not protocol.upload_input(sample):
            return "data refused", b""
        if not protocol.request_processing():
            return "run failed", b""
        ok, raw = protocol.download_output()
        return ("ran", raw or b"") if ok else ("output refused", b"")
    except KenningHILError as exc:
        return f"client error {type(exc).__name__}", b""
    finally:
        try:
            protocol.disconnect()
        except KenningHILError:
            pass


def fuzz_server(
    runtime: str,
    good_model: bytes,
    spec: dict,
    mutate: Callable[[bytes, random.Random], bytes],
    count: int,
    workdir: Path,
    seed: int = 0,
    progress: Callable[[int, FuzzReport], None] | None = None,
) -> FuzzReport:
    """Serves `runtime` (worker memory cap 1 GiB, 20 s per request), sends `count` mutated
    models, each followed by a good session whose output must equal the first one's."""
    log = workdir / f"fuzz-{runtime}-{time.monotonic_ns()}.log"
    proc = start_logged(
        server_command(
            "--runtime", runtime, "--port", "0", "--max-memory", "1GiB",
            "--request-timeout", "20", "--log-level", "WARNING",
            "--runtime-parameters", '{"num_threads": 1}' if runtime == "onnxruntime" else "{}",
        ),
        log,
    )
    report = FuzzReport(runtime)
    start = time.monotonic()
    try:
        match = wait_for_line(proc, log, LISTENING, 120.0, "serve", offset=proc.log_offset)
        host, port = match.group("host"), int(match.group("port"))
        sample = one_sample(spec)
        stage, expected = _session(host, port, spec, good_model, sample)
        if stage != "ran":
            raise AssertionError(f"the good model does not run on {runtime}: {stage}")
        rng = random.Random(seed)
        for index in range(count):
            model = mutate(good_model, rng)
            stage, _ = _session(host, port, spec, model, sample)
            report.outcomes[stage] += 1
            report.models += 1
            if proc.poll() is not None:
                report.server_deaths += 1
                break
            stage, output = _session(host, port, spec, good_model, sample)
            if stage != "ran" or output != expected:
                report.good_sessions_failed.append(f"after model {index}: {stage}")
            if progress is not None:
                progress(index, report)
    finally:
        report.seconds = time.monotonic() - start
        stop(proc)
        report.worker_restarts = len(re.findall(r"restarting it", log.read_text(errors="replace")))
    return report

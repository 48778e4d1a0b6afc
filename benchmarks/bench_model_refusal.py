#!/usr/bin/env python3
"""A float32 model on an int8-only board: refused on the host before upload (#23) against the
board's own refusal after the upload, measured in the same run.

Host: `Harness.run` of a 1 MB float32 CONV_2D/FULLY_CONNECTED model on qemu-m4, which the
qemu kind refuses from the firmware's operator table before any board is taken (median of 5).
Board: the same kind of model, 64 KiB, uploaded to a booted qemu-m4 over its emulated UART
through the `protocol` (IO_SPEC, MODEL) until the firmware answers `unsupported tensor type
FLOAT32`; the 1 MB time is extrapolated from its bytes per second. The last line is the
ratio (goal: the host refuses in under 1 s).

    .venv/bin/python benchmarks/bench_model_refusal.py
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.formats.tflite_flatbuffer import read_tflite_file  # noqa: E402
from kenning_hil.run.compile_cache import CompileCache  # noqa: E402
from kenning_hil.run.harness import Harness  # noqa: E402
from kenning_hil.run.outcome import Incompatible  # noqa: E402
from kenning_hil.targets import SessionManager, Target  # noqa: E402
from kenning_hil.targets.catalog import TargetCatalog  # noqa: E402
from tests.targets.test_model_refusal import float_conv_model  # noqa: E402

BIG = 1 << 18  # float weights: a 1 MB model
SMALL = 1 << 14  # 64 KiB


def main() -> int:
    target = Target(TargetCatalog([REPO / "targets"]).get("qemu-m4"))
    work = Path(tempfile.mkdtemp(prefix="bench-refusal-"))
    try:
        big = float_conv_model(work / "big.tflite", extra_weights=BIG)
        small = float_conv_model(work / "small.tflite", extra_weights=SMALL)
        sessions = SessionManager(work / "w", work / "locks", 120)
        harness = Harness(sessions, CompileCache(work / "cache"), work / "results")
        times = []
        message = ""
        for round_ in range(5):
            request = harness.request(big, "random", samples=5)
            start = time.perf_counter()
            try:
                harness.run(target, request, f"bench::{round_}")
            except Incompatible as exc:
                message = str(exc)
            times.append(time.perf_counter() - start)
        host = statistics.median(times)
        print(f"host refusal of {big.stat().st_size} B: {host * 1e3:.1f} ms (median of 5), "
              f"boots {sessions.boots}, uploads {harness.uploads}: {message}")
        available, reason = target.availability()
        if not available or shutil.which("qemu-system-arm") is None:
            print(f"board refusal not measured: {reason}")
            print(f"host refusal {host * 1e3:.1f} ms (goal < 1000 ms)")
            return 0
        with sessions.use(target) as session:
            protocol = session.protocol
            spec = read_tflite_file(small).io_specification()
            start = time.perf_counter()
            protocol.upload_io_specification_dict(spec)
            accepted = protocol.upload_model(small)
            board = time.perf_counter() - start
            reason = protocol.refusal_reason()
        sessions.close_all()
        rate = small.stat().st_size / board
        estimate = big.stat().st_size / rate
        print(f"board refusal of {small.stat().st_size} B after upload: {board:.1f} s "
              f"({rate / 1024:.1f} KiB/s; accepted={accepted}): {reason}")
        print(f"host refusal {host * 1e3:.1f} ms vs board refusal of the 1 MB model after "
              f"upload ~{estimate:.0f} s: {estimate / host:.0f}x faster (goal < 1000 ms)")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

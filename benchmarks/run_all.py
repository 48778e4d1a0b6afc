#!/usr/bin/env python3
"""Runs every `benchmarks/bench_*.py` in turn, streaming its output, and ends with a summary
(each benchmark's last line, its exit code and wall time). Exit code: 1 if any failed.

The plugin benchmark runs last, so `make bench` ends with its board-pool wall-time ratio.

    .venv/bin/python benchmarks/run_all.py [NAME_SUBSTRING ...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RUN_LAST = "bench_plugin.py"


def main(argv: list[str] | None = None) -> int:
    filters = sys.argv[1:] if argv is None else argv
    benches = sorted(BENCH_DIR.glob("bench_*.py"), key=lambda b: (b.name == RUN_LAST, b.name))
    if filters:
        benches = [b for b in benches if any(f in b.name for f in filters)]
    if not benches:
        print(f"no benchmarks matched in {BENCH_DIR}", file=sys.stderr)
        return 1
    results = []
    for bench in benches:
        print(f"=== {bench.name}", flush=True)
        start = time.perf_counter()
        last = ""
        with subprocess.Popen(
            [sys.executable, "-u", str(bench)],
            cwd=BENCH_DIR.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        ) as process:
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if line.strip():
                    last = line.strip()
        results.append((bench.name, process.returncode, time.perf_counter() - start, last))
    print("=== summary")
    for name, code, seconds, last in results:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"{name}: {status}, {seconds:.1f} s: {last}")
    return 1 if any(code != 0 for _, code, _, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())

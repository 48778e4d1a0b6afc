#!/usr/bin/env python3
"""Plugin benchmarks.

1. Collection time of a generated suite of 10,000 combinations (100 models x 100 optimizer
   chains on one target): pytest's own collection time and the wall time of the whole
   `pytest --collect-only` process. Goal: collection <= 3 s.
2. Board pool speed-up: one suite run on a 2-instance host target pool, with
   `pytest -n 2` against `pytest -n 0` (whole-process wall times, best of REPEATS).
   Goal: ratio <= 0.6. The suite runs the digits MLP over all 1,797 digits per test through
   a local `kenning-hil serve` per instance, so each test keeps about one core busy (the
   client and the server take turns); the ratio therefore needs two free cores.
   For context it also times `-n 0` confined to one core: on a VM, a request/response
   exchange between two processes on different idle cores pays a wake-up on each message,
   which the one-core run (and the busy cores of the `-n 2` run) mostly avoid.

Last line: the pool ratio.

    .venv/bin/python benchmarks/bench_plugin.py [--tests N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "digits" / "digits-mlp.onnx"
PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]


def pytest_run(project: Path, *args: str, cpus: set[int] | None = None) -> tuple[float, str]:
    # bytecode caching on, as on a lab machine: without it every worker process recompiles
    # (and pytest re-rewrites) every module it imports, which the warm-up run cannot amortise
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    done = subprocess.run([*PYTEST, *args], cwd=project, capture_output=True, text=True,
                          env=env, preexec_fn=pin)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-2000:])
        raise SystemExit(f"pytest {' '.join(args)} failed with code {done.returncode}")
    return wall, done.stdout


def make_project(root: Path) -> None:
    (root / "targets").mkdir(parents=True)
    (root / "suites").mkdir()
    (root / "pytest.ini").write_text(
        f"[pytest]\nhil_lock_dir = {root / 'locks'}\nhil_report = results\n"
    )
    (root / "targets" / "pool2.yaml").write_text(
        "kind: host\nruntime: onnxruntime\nruntime_parameters: {num_threads: 1}\ninstances: 2\n"
    )


def bench_collection(root: Path) -> float:
    models = {f"m{i:03d}": {"model": str(MODEL)} for i in range(100)}
    chains = {
        f"c{j:03d}": [{"type": "onnxruntime-quant",
                       "parameters": {"calibration_max_samples": j + 1}}]
        for j in range(100)
    }
    suite = {"dataset": "digits", "thresholds": {"accuracy": 0.9}, "models": models,
             "optimizers": chains}
    (root / "suites" / "big.yaml").write_text(yaml.safe_dump(suite))
    wall, out = pytest_run(root, "--collect-only", "-q", "suites/big.yaml", "--target=pool2")
    match = re.search(r"(\d+) tests collected in ([\d.]+)s", out)
    if not match or int(match.group(1)) != 10_000:
        raise SystemExit(f"expected 10000 tests collected, got: {out.splitlines()[-1:]}")
    collection = float(match.group(2))
    print(f"collection of 10,000 suite combinations: {collection:.2f} s "
          f"(whole `pytest --collect-only` process: {wall:.2f} s; goal <= 3 s)")
    return collection


def bench_pool(root: Path, tests: int, repeats: int) -> float:
    models = {f"digits-{i:02d}": {"model": str(MODEL)} for i in range(tests)}
    suite = {"dataset": {"type": "digits", "parameters": {"subset": "all"}},
             "thresholds": {"accuracy": 0.9}, "models": models}
    (root / "suites" / "pool.yaml").write_text(yaml.safe_dump(suite))
    args = ("suites/pool.yaml", "--target=pool2", "-q")
    pytest_run(root, *args)  # warm-up: file caches, the dataset, bytecode
    serial, parallel, one_core = [], [], []
    for _ in range(repeats):
        serial.append(pytest_run(root, *args, "-p", "xdist", "-n", "0")[0])
        parallel.append(pytest_run(root, *args, "-p", "xdist", "-n", "2")[0])
        one_core.append(pytest_run(root, *args, "-p", "xdist", "-n", "0", cpus={0})[0])
    best_serial, best_parallel = min(serial), min(parallel)
    print(f"suite of {tests} tests (1,797 digits each) on a 2-instance pool: "
          f"-n 0 {best_serial:.2f} s, -n 2 {best_parallel:.2f} s "
          f"(best of {repeats}; all: -n 0 {', '.join(f'{s:.2f}' for s in serial)}; "
          f"-n 2 {', '.join(f'{p:.2f}' for p in parallel)})")
    print(f"context: -n 0 confined to one core {min(one_core):.2f} s; -n 2 against it "
          f"{best_parallel / min(one_core):.2f} (cross-core wake-ups cost the plain -n 0 "
          f"run {best_serial / min(one_core):.2f}x)")
    print(f"cpu cores: {os.cpu_count()}, load average: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return best_parallel / best_serial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=24, help="tests in the pool suite")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-plugin-") as tmp:
        root = Path(tmp)
        make_project(root)
        bench_collection(root)
        ratio = bench_pool(root, args.tests, args.repeats)
    print(f"pool wall-time ratio -n 2 / -n 0: {ratio:.2f} (goal <= 0.6)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Host-latency baselines on a loaded machine: load alone must flag nothing, a runtime 2x
slower must be flagged every time.

Real timings on this machine: the digits MLP on ONNX Runtime in the real target server
(`python -m kenning_hil.runtimes.serve`, over TCP), latency as the server reports it
(`target_inference_step`, one per sample, 359 samples a run). A baseline is recorded on the
machine as it is; then `--runs` runs with stress-ng keeping every core busy (one CPU hog per
core and one worker sweeping 128 MiB of memory, which evicts caches as a QEMU or compiler
job does; plus whatever else shares the machine) are judged against it, first
with the same runtime, then with one 2x slower (each inference also waits out as long again
as its own run took). Each run is judged by the library's default comparison (the 10th
percentile's 95% CI against the baseline's p10, default tolerance 10% + 20 us) and, for
comparison, by the median CI the plugin used before.

    .venv/bin/python benchmarks/bench_baseline_load.py [--runs 10] [--no-stress]

The last line: flagged runs under load alone, and flagged runs of the 2x slower runtime.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.runtimes.onnxruntime import ONNXRuntime  # noqa: E402

MODEL = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
LISTENING = r"listening on (?P<host>[^\s:]+):(?P<port>\d+)"


class TwiceAsSlowONNXRuntime(ONNXRuntime):
    """ONNX Runtime made 2x slower: after each inference it spins for as long again as the
    inference took (a stand-in for a real regression; the server imports it by class path)."""

    def run(self) -> None:
        start = time.perf_counter_ns()
        super().run()
        until = 2 * time.perf_counter_ns() - start
        while time.perf_counter_ns() < until:
            pass


def one_run(runtime: str, workdir: Path) -> list[float]:
    """Latency samples (seconds) of one run of the digits test split on a fresh server."""
    from kenning_hil.datasets.digits import DigitsDataset
    from kenning_hil.modelwrappers.onnx import ONNXWrapper
    from kenning_hil.protocols.bytes_protocol import NetworkProtocol
    from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line

    log = workdir / f"serve-{time.monotonic_ns()}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])))
    proc = start_logged(server_command("--runtime", runtime, "--host", "127.0.0.1",
                                       "--port", "0"), log, env=env)
    try:
        match = wait_for_line(proc, log, LISTENING, 60.0, "target server")
        protocol = NetworkProtocol(host=match.group("host"), port=int(match.group("port")),
                                   timeout=60.0)
        dataset = DigitsDataset(subset="test", batch_size=1)
        wrapper = ONNXWrapper(MODEL, dataset)
        client = ONNXRuntime(protocol=protocol)
        measurements = client.run_client(dataset, wrapper, MODEL)
        steps = measurements.get_values("target_inference_step")
        return [ns / 1e9 for ns in steps]
    finally:
        stop(proc)


def judge(stored: dict, samples: list[float]) -> tuple[bool, bool]:
    """(flagged by the default p10 comparison, flagged by the old median comparison)."""
    from kenning_hil.judge.baselines import compare_to_baseline

    new = compare_to_baseline(stored, {}, samples)
    old = compare_to_baseline({"metrics": {"latency.p50": stored["metrics"]["latency.p50"]}},
                              {}, samples)
    return bool(new.regressions), bool(old.regressions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-stress", action="store_true", help="leave the machine as it is")
    parser.add_argument("--stress", default="--cpu {cores} --cpu-method matrixprod --vm 1 "
                        "--vm-bytes 128M", help="stress-ng arguments ({cores}: this machine's)")
    args = parser.parse_args(argv)
    from kenning_hil.judge.baselines import baseline_record

    stress = None if args.no_stress else shutil.which("stress-ng")
    if stress is None and not args.no_stress:
        print("bench_baseline_load: stress-ng not installed (Debian: apt-get install stress-ng;"
              " scripts/test-under-load.sh installs it)", file=sys.stderr)
        return 1
    slower = f"{Path(__file__).stem}.TwiceAsSlowONNXRuntime"
    cores = os.cpu_count() or 1

    def us(x: float) -> str:
        return f"{x * 1e6:8.1f} us"

    def p10(x: list[float]) -> float:
        return statistics.quantiles(x, n=10, method="inclusive")[0]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        one_run("onnxruntime", workdir)  # warm-up: imports, page cache
        base = one_run("onnxruntime", workdir)
        stored = baseline_record({"latency.p50": statistics.median(base)}, "host-onnxruntime",
                                 len(base), "target_inference_step", latency_samples=base)
        print(f"baseline (no added load): p10 {us(p10(base))}  median "
              f"{us(statistics.median(base))}  over {len(base)} samples")
        hog = None
        if stress:
            hog = subprocess.Popen([stress, *args.stress.format(cores=cores).split(),
                                    "--timeout", "0", "--quiet"])
            time.sleep(1.0)
        counts = {}
        try:
            for label, runtime in (("same runtime, loaded", "onnxruntime"),
                                   ("2x slower runtime, loaded", slower)):
                flagged = old_flagged = 0
                for i in range(args.runs):
                    samples = one_run(runtime, workdir)
                    new, old = judge(stored, samples)
                    flagged += new
                    old_flagged += old
                    print(f"{label:27s} run {i + 1:2d}: p10 {us(p10(samples))}  median "
                          f"{us(statistics.median(samples))}  ratio p10 "
                          f"{p10(samples) / p10(base):5.2f}x median "
                          f"{statistics.median(samples) / statistics.median(base):5.2f}x  "
                          f"{'FLAGGED' if new else 'passed '} (median rule: "
                          f"{'flagged' if old else 'passed'})", flush=True)
                counts[label] = (flagged, old_flagged)
        finally:
            if hog is not None:
                hog.terminate()
                hog.wait()
    load, slow = counts["same runtime, loaded"], counts["2x slower runtime, loaded"]
    under = f"stress-ng {args.stress.format(cores=cores)}" if stress else "no added load"
    print(f"median rule (before): load alone flagged {load[1]}/{args.runs}, 2x slower flagged "
          f"{slow[1]}/{args.runs}")
    print(f"p10 rule under {under}: load alone flagged {load[0]}/{args.runs} (goal 0), 2x "
          f"slower runtime flagged {slow[0]}/{args.runs} (goal {args.runs})")
    return 0 if load[0] == 0 and slow[0] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())

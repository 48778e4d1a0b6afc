#!/usr/bin/env python3
"""The structural model fuzzer (issue 26) at full size: 2,000 mutated models per runtime
(ONNX Runtime: the digits ONNX model through `mutate_protobuf`; LiteRT: its int8 TFLite build
through `mutate_tflite`) sent to a real `kenning-hil serve` (runtime worker, 1 GiB cap), each
followed by a session with the good model that must give the good model's output. Prints one
line per runtime (outcomes, server deaths, failed good sessions, worker restarts); exit
status 1 when the server died or a good session failed.

    .venv/bin/python benchmarks/bench_model_fuzz.py [--models N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.formats.mutation import mutate_protobuf, mutate_tflite  # noqa: E402
from tests.model_fuzz import fuzz_server  # noqa: E402

DIGITS = REPO / "models" / "digits" / "digits-mlp.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2000, help="mutated models per runtime")
    parser.add_argument("--seed", type=int, default=26)
    args = parser.parse_args()
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-model-fuzz-") as tmp:
        workdir = Path(tmp)
        spec = json.loads(DIGITS.with_name(DIGITS.name + ".json").read_text())
        reports.append(fuzz_server("onnxruntime", DIGITS.read_bytes(), spec, mutate_protobuf,
                                   args.models, workdir, seed=args.seed))
        print(reports[-1].line(), flush=True)
        from kenning_hil.datasets.digits import DigitsDataset
        from kenning_hil.optimizers.tflite import TFLiteCompiler

        tflite = workdir / "digits-int8.tflite"
        TFLiteCompiler(DigitsDataset(), tflite).compile(DIGITS)
        spec = json.loads(tflite.with_name(tflite.name + ".json").read_text())
        reports.append(fuzz_server("litert", tflite.read_bytes(), spec, mutate_tflite,
                                   args.models, workdir, seed=args.seed))
        print(reports[-1].line(), flush=True)
    for report in reports:
        for failure in report.good_sessions_failed[:5]:
            print(f"  {report.runtime}: good session failed {failure}")
    bad = sum(r.server_deaths + len(r.good_sessions_failed) for r in reports)
    total = sum(r.models for r in reports)
    print(f"model fuzz: {total} mutated models, {sum(r.server_deaths for r in reports)} server "
          f"deaths, {sum(len(r.good_sessions_failed) for r in reports)} failed good sessions, "
          f"{sum(r.worker_restarts for r in reports)} worker restarts")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

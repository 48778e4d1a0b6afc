#!/usr/bin/env python3
"""Guest instructions per inference of the MLPerf Tiny int8 models on the QEMU boards
(`-icount shift=0`: the firmware's timer counts instructions) against the goals of issue 18,
with the firmware's code size, peak arena bytes, the upload time over the emulated UART and a
bit-exactness check against LiteRT's reference kernels, all through the project's host side
(UARTProtocol). Each run also goes through a QEMU TCG plugin (firmware/tools/
insn_profile_plugin.c) and prints where the interpreter's instructions go, per function.

Goals (issue 18): on the Cortex-M4 (mps2-an386) below the best published MLPerf Tiny cycle
counts on a Cortex-M4 (X-CUBE-AI 9.0, Plumerai): KWS 5.2 M, VWW 10.7 M, IC 19.8 M, AD 0.49 M;
on the Cortex-M55 (mps3-an547) the Helium result (TFLM + CMSIS-NN on a Cortex-M85): KWS 1.7 M,
VWW 6.4 M, IC 4.1 M, AD 0.25 M. TFLite Micro's reference kernels take (mps2-an386, same models)
KWS 42.2 M, VWW 99.3 M, IC 105.7 M, AD 1.95 M instructions.

    .venv/bin/python benchmarks/bench_firmware_instructions.py [--boards mps2-an386 mps3-an547]
        [--models kws vww ic ad] [--no-profile]

Models come from the models path ($KENNING_HIL_MODELS, default ../shared/models).
"""

from __future__ import annotations

import argparse
import bisect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kenning_hil.datasets.mlperf_tiny import (  # noqa: E402
    MLPERF_TINY_MODELS,
    mlperf_tiny_model_path,
)
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file  # noqa: E402
from kenning_hil.protocols.bytes_protocol import UARTProtocol  # noqa: E402
from kenning_hil.protocols.stats import unpack_stat_records  # noqa: E402
from kenning_hil.sim.firmware_build import build_firmware  # noqa: E402
from kenning_hil.sim.qemu import QemuInstance  # noqa: E402

TFLM_REFERENCE = {"kws": 42.2e6, "vww": 99.3e6, "ic": 105.7e6, "ad": 1.95e6}
GOALS = {
    "mps2-an386": {"kws": 5.2e6, "vww": 10.7e6, "ic": 19.8e6, "ad": 0.49e6},
    "mps3-an547": {"kws": 1.7e6, "vww": 6.4e6, "ic": 4.1e6, "ad": 0.25e6},
}


def litert_reference(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def function_ranges(elf: Path) -> list[tuple[int, int, str, str]]:
    """(start, end, name, source file) of the ELF's functions, by address."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", "-n", "-l", "--defined-only", str(elf)],
                         check=True, capture_output=True, text=True).stdout
    ranges = []
    for line in out.splitlines():
        fields, _, where = line.partition("\t")
        parts = fields.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            start = int(parts[0], 16) & ~1  # Thumb bit
            ranges.append((start, start + int(parts[1], 16), parts[3], where))
    return ranges


def code_size(elf: Path) -> int:
    """The firmware's text bytes (arm-none-eabi-size)."""
    out = subprocess.run(["arm-none-eabi-size", str(elf)], check=True, capture_output=True,
                         text=True).stdout
    return int(out.splitlines()[1].split()[0])


def profile_by_function(elf: Path, profile: Path) -> dict[str, int]:
    """Instructions per interpreter function (sources under firmware/interp/: they run only
    during inference) from the plugin's "address count" lines."""
    ranges = function_ranges(elf)
    starts = [r[0] for r in ranges]
    totals: dict[str, int] = {}
    for line in profile.read_text().splitlines():
        addr_hex, count = line.split()
        addr = int(addr_hex, 16)
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < ranges[i][1] and "/interp/" in ranges[i][3]:
            name = f"{ranges[i][2]} ({Path(ranges[i][3].split(':')[0]).name})"
            totals[name] = totals.get(name, 0) + int(count)
    return totals


def profile_plugin() -> Path:
    subprocess.run(["make", "-s", "-C", str(REPO / "firmware"), "profile-plugin"], check=True)
    return REPO / "firmware" / "build" / "host" / "insn_profile_plugin.so"


def print_profile(board: str, model: str, totals: dict[str, int], limit: int = 8) -> None:
    total = sum(totals.values())
    print(f"    {model} on {board}, interpreter functions (loading included; "
          f"{total / 1e6:.2f} M):")
    for name, n in sorted(totals.items(), key=lambda kv: -kv[1])[:limit]:
        print(f"      {n / 1e6:8.3f} M  {100 * n / total:5.1f} %  {name}")


def measure(board: str, elf: Path, path: Path, seed: int, plugin: Path | None = None) -> dict:
    spec = read_tflite_file(path).io_specification()
    x = np.random.default_rng(seed).integers(-128, 128, size=spec["input"][0]["shape"],
                                             dtype=np.int8)
    tmp = tempfile.TemporaryDirectory(prefix="khil-profile-")
    profile = Path(tmp.name) / "profile.txt"
    extra = ["-plugin", f"{plugin},out={profile}"] if plugin else []
    with QemuInstance(board, elf, extra_args=extra) as qemu:
        protocol = UARTProtocol(port=qemu.url, timeout=300.0, process_timeout=300.0)
        protocol.initialize_client()
        try:
            protocol.upload_io_specification_dict(spec)
            start = time.perf_counter()
            loaded = protocol.upload_model(path)
            upload = time.perf_counter() - start
            if not (loaded and protocol.upload_input(x.tobytes())
                    and protocol.request_processing()):
                raise RuntimeError(f"{path.name} on {board}: {protocol.refusal_reason()}")
            _, out = protocol.download_output()
            protocol.download_statistics()
            stats = {n: v for n, _, v in unpack_stat_records(protocol.last_answer.payload)}
        finally:
            protocol.disconnect()
    # QEMU writes the plugin's profile at exit (SIGTERM from the context manager).
    totals = profile_by_function(elf, profile) if plugin else None
    tmp.cleanup()
    expected = litert_reference(path, x)
    exact = np.array_equal(np.frombuffer(out, np.int8).reshape(expected.shape), expected)
    return {"instructions": stats["target_inference_instructions"],
            "peak": stats["peak_allocated"], "upload": upload, "exact": exact,
            "size": path.stat().st_size, "profile": totals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", nargs="+", default=["mps2-an386", "mps3-an547"])
    parser.add_argument("--models", nargs="+", default=[m.name for m in MLPERF_TINY_MODELS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-dir", type=Path,
                        help="use <dir>/<board>/kenning-hil.elf instead of building")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the per-function breakdown (TCG plugin)")
    args = parser.parse_args()
    plugin = None if args.no_profile else profile_plugin()
    models = [m for m in MLPERF_TINY_MODELS if m.name in args.models]
    print("| board | model | instructions | goal | ratio to goal | vs TFLM ref (M4) | code (text) "
          "| peak arena | upload | bit-exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    met: dict[str, list[str]] = {}  # per board, the models at or below their goal
    for board in args.boards:
        if args.build_dir:
            elf = args.build_dir / board / "kenning-hil.elf"
        else:
            elf = build_firmware(board)
        for model in models:
            path = mlperf_tiny_model_path(model)
            if not path.is_file():
                print(f"| {board} | {model.name} | model absent: {path} | | | | | | | |")
                continue
            r = measure(board, elf, path, args.seed, plugin)
            ok &= r["exact"]
            n = r["instructions"]
            goal = GOALS.get(board, {}).get(model.name)
            met.setdefault(board, [])
            if goal and n <= goal:
                met[board].append(model.name)
            goal_cells = (f"{goal / 1e6:.2f} M | {n / goal:.2f}x" if goal else " | ")
            print(f"| {board} | {model.name} | {n / 1e6:.3f} M | {goal_cells} | "
                  f"{n / TFLM_REFERENCE[model.name]:.2f}x | {code_size(elf)} B | "
                  f"{r['peak']} B | {r['size']} B in {r['upload']:.1f} s "
                  f"({r['size'] / r['upload'] / 1e3:.1f} kB/s) | {'yes' if r['exact'] else 'NO'} |",
                  flush=True)
            if r["profile"]:
                print_profile(board, model.name, r["profile"])
    print("goals met: " + "; ".join(f"{b} {len(m)} of {len(models)} ({', '.join(m) or '-'})"
                                     for b, m in met.items())
          + ("" if ok else "; NOT bit-exact"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The kernels' prepared requantisation (khil_rq_apply: one 64-bit sum and a shift; khil_rqo with
the output offset folded in) against the gemmlowp MultiplyByQuantizedMultiplier form (khil_mbqm)
it replaces, and FULLY_CONNECTED's fast double rounding against the exact 85-bit one: every
shift, edge accumulators, exact and near ties and random cases, in a small C program built with
the host compiler (the ARM assembly forms are checked by the kernel and MLPerf Tiny models on the
QEMU boards)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import FIRMWARE_DIR

CHECK_SOURCE = Path(__file__).with_name("khil_requant_check.c")


def test_prepared_requantisation_equals_gemmlowp_form(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    exe = tmp_path / "khil_requant_check"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                    f"-I{FIRMWARE_DIR / 'interp'}", str(CHECK_SOURCE),
                    str(FIRMWARE_DIR / "interp" / "khil_quant.c"), "-lm", "-o", str(exe)],
                   check=True)
    result = subprocess.run([str(exe), "5000000"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok")

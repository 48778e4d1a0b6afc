"""MLPerf Tiny columns: a result record's footprint (arena peak, RAM against the target's,
firmware code against its flash, bit-exactness against the reference) and the terminal table
showing those columns only when some row has them."""

import shutil
import subprocess
from pathlib import Path

import pytest

from kenning_hil.report.footprint import of_limit, read_footprint, size_text
from kenning_hil.report.summary import SummaryRow, format_table
from kenning_hil.sim.elf_arch import image_size

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware" / "build" / "mps2-an386" / "kenning-hil.elf"

# the fields of a qemu-m4 result record (Harness.write) that the footprint reads
RECORD = {
    "test": "kws[qemu-m4]", "target": "qemu-m4", "compiled_size": 53936, "ram": 22136,
    "measurements": {"peak_allocated": 22136},
    "session": {"firmware": str(FIRMWARE)},
    "comparison": {"reference": "host-litert-ref", "samples": 50, "exact_samples": 49},
}


def test_footprint_of_a_board_record():
    found = read_footprint(RECORD, ram=3584 << 10, flash=4 << 20)
    assert found.arena_peak == 22136
    assert found.ram_used == 53936 + 22136  # the uploaded model and the arena share the region
    assert found.bit_exact == "49/50 vs host-litert-ref"
    assert of_limit(found.ram_used, found.ram_limit) == "74.3 KiB of 3.5 MiB (2%)"
    assert of_limit(1000, None) == "1000 B" and of_limit(None, 10) is None
    assert size_text(3 << 20) == "3.0 MiB"


def test_a_host_record_has_no_footprint():
    found = read_footprint({"compiled_size": 19770, "measurements": {}, "session": {}})
    assert (found.arena_peak, found.ram_used, found.code_size, found.bit_exact) == (
        None, None, None, None)


def test_peak_from_the_measurements_when_the_record_has_none():
    found = read_footprint({"compiled_size": 100, "measurements": {"peak_allocated": [5, 9]}})
    assert (found.arena_peak, found.ram_used) == (9, 109)


def test_firmware_image_size_is_what_size_reports():
    if not FIRMWARE.is_file() or shutil.which("arm-none-eabi-size") is None:
        pytest.skip(f"needs the built firmware {FIRMWARE} and arm-none-eabi-size")
    # text + data: the loadable segments, what is flashed
    text, data = subprocess.run(["arm-none-eabi-size", str(FIRMWARE)], capture_output=True,
                                text=True, check=True).stdout.splitlines()[1].split()[:2]
    assert image_size(FIRMWARE) == int(text) + int(data)
    assert image_size(REPO / "README.md") is None


def test_table_shows_footprint_columns_only_when_a_row_has_them():
    host = SummaryRow(test="t[host-onnxruntime]", target="host-onnxruntime", outcome="passed",
                      compiled_size=19770)
    assert "arena peak" not in format_table([host])
    board = SummaryRow(test="t[qemu-m4]", target="qemu-m4", outcome="passed",
                       compiled_size=53936)
    board.add_footprint(read_footprint(RECORD, ram=3584 << 10, flash=4 << 20))
    lines = format_table([host, board]).splitlines()
    columns = ["size", "arena peak", "RAM (model + arena)", "code", "bit-exact", "result"]
    places = [lines[0].index(column) for column in columns]
    assert places == sorted(places) and lines[0].endswith("result")
    assert "21.6 KiB" in lines[2] and "74.3 KiB of 3.5 MiB (2%)" in lines[2]
    assert "49/50 vs host-litert-ref" in lines[2]
    assert lines[1].split()[-2:] == ["-", "passed"]  # the host row: no footprint

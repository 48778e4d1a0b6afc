"""The reference firmware reached through `kind: serial` (its QEMU UART as a pyserial
``socket://`` URL, as a lab reaches a board through a serial server): a session that
runs twice keeps the firmware's snapshot statistics (arena peak, last-inference count) in
both results, while per-inference series stay cut to each run's own samples."""

from __future__ import annotations

import pytest

from kenning_hil.run.compile_cache import CompileCache
from kenning_hil.run.harness import Harness
from kenning_hil.sim.qemu import QemuInstance
from kenning_hil.targets import SessionManager, Target
from kenning_hil.targets.description import parse_target

from .conftest import require_simulation
from .test_qemu_target import fc_model

pytestmark = pytest.mark.sim


@pytest.fixture
def board_url(firmware_elf):
    require_simulation()
    with QemuInstance("mps2-an386", firmware_elf("mps2-an386")) as board:
        yield board.url


def test_second_run_in_a_session_keeps_the_firmware_snapshot_statistics(board_url, tmp_path):
    model = fc_model(tmp_path / "fc-int8.tflite")
    target = Target(parse_target(
        {"kind": "serial", "port": board_url, "formats": ["tflite"],
         "timeouts": {"request": 60}},
        "board.yaml", "board",
    ))
    sessions = SessionManager(tmp_path / "work", tmp_path / "locks", 60, workers=1)
    harness = Harness(sessions, CompileCache(tmp_path / "cache"), tmp_path / "results")
    request = harness.request(model, "random", samples=4)
    try:
        first = harness.run(target, request, "serial-fw::first")
        second = harness.run(target, request, "serial-fw::second")
    finally:
        sessions.close_all()
    assert sessions.boots == 1  # one connection, two runs on it
    for result in (first, second):
        assert result.samples == 4
        assert result.ram is not None and result.ram > 0
        stats = result.measurements.to_dict()
        assert len(stats["peak_allocated"]) == 1, stats["peak_allocated"]
        assert len(stats["inference_count"]) == 1
    assert second.ram == first.ram
    # the firmware counts inferences since the model was loaded: 4, then 8
    assert first.measurements.get("inference_count") == [4]
    assert second.measurements.get("inference_count") == [8]

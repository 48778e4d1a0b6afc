"""`kenning-hil run` (the pipeline's RunResult) reports the latency `hil.run` reports: from
the first measured of LATENCY_SOURCES, so a QEMU board's instruction counts, or the host-timed
round trip where the board keeps only a last-inference count. Real QEMU, real firmware, the
pipeline's own run over the board's UART protocol."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.blocks.entries import build_block
from kenning_hil.cli.run import format_summary
from kenning_hil.core.dataset import Dataset
from kenning_hil.core.measurements import (
    LAST_INSTRUCTIONS,
    PROTOCOL_STEP,
    TARGET_INSTRUCTIONS,
    TARGET_STEP,
    Latency,
)
from kenning_hil.core.model import ModelWrapper
from kenning_hil.core.runtime import Runtime
from kenning_hil.protocols.session import SessionProtocol
from kenning_hil.run.pipeline import Pipeline
from kenning_hil.targets import SessionManager, Target, load_target_file

from .conftest import require_simulation
from .test_qemu_target import fc_model

pytestmark = pytest.mark.sim
SAMPLES = 4


@pytest.fixture(scope="module", autouse=True)
def _simulation():
    require_simulation()


@pytest.fixture
def sessions(tmp_path):
    manager = SessionManager(tmp_path / "work", lock_dir=tmp_path / "locks", default_timeout=120)
    yield manager
    manager.close_all()


@pytest.mark.parametrize(
    "timing, source, unit",
    [("", TARGET_INSTRUCTIONS, "instructions"), ("timing: protocol\n", PROTOCOL_STEP, "s")],
    ids=["instructions", "protocol"],
)
def test_run_result_latency_from_instruction_counts_or_round_trip(
    tmp_path, sessions, timing, source, unit
):
    model = fc_model(tmp_path / "fc-int8.tflite")
    description = tmp_path / "board.yaml"
    description.write_text(f"kind: qemu\nname: board\nmachine: mps2-an386\n{timing}")
    target = Target(load_target_file(description))
    wrapper = build_block("model_wrapper", {"type": "tflite", "parameters": {
        "model_path": str(model)}}, ModelWrapper, "model_wrapper")
    dataset = build_block("dataset", {"type": "random", "parameters": {
        "io_specification": wrapper.get_io_specification(), "samples": SAMPLES}},
        Dataset, "dataset")
    with sessions.use(target) as session:
        protocol = SessionProtocol(session, "fc-int8")
        # the client side of a TFLite runtime, as a scenario for this board would name it
        runtime = build_block("runtime", {"type": "tflm"}, Runtime, "runtime", protocol=protocol)
        result = Pipeline(dataset, wrapper, runtime, [], protocol, "fc").run()

    measurements = result.measurements
    assert TARGET_STEP not in measurements  # a QEMU board counts, it does not time
    latency = result.latency
    assert latency is not None and (latency.source, latency.unit) == (source, unit)
    assert latency.count == SAMPLES
    expected = np.asarray(measurements[source], dtype=np.float64) / (1e9 if unit == "s" else 1)
    assert latency.samples == tuple(expected)
    assert 0 < latency.min <= latency.p50 <= latency.max
    if unit == "instructions":
        assert latency.min >= 100  # two FULLY_CONNECTED layers are thousands of instructions
    else:
        assert LAST_INSTRUCTIONS in measurements and TARGET_INSTRUCTIONS not in measurements
    # the hil fixture's Result derives it from the same measurements the same way
    assert Latency.from_measurements(measurements.to_dict()) == latency

    summary = result.summary()
    assert summary["latency"]["source"] == source and summary["latency"]["unit"] == unit
    printed = format_summary(summary, tmp_path / "measurements.json")
    assert f"(from {source})" in printed
    assert (" instructions, p95: " in printed) == (unit == "instructions")

"""One qemu-m4 board session used through the `protocol` fixture and then by `hil.run` (#23
finding 3): the run's measurements are its own (``latency.count == samples``, not the
inferences made directly before it), and each refusal names its own cause only, not the
refusals before it."""

from __future__ import annotations

import pytest

from .conftest import require_simulation
from .test_qemu_target import fc_model, project, replace_operator, run  # noqa: F401

pytestmark = pytest.mark.sim
pytest_plugins = ["pytester"]

MIXED = """
from pathlib import Path

from kenning_hil.formats.tflite_flatbuffer import read_tflite_file

FC, TANH, GARBAGE = Path({fc!r}), Path({tanh!r}), Path({garbage!r})


def test_protocol_then_hil_run(protocol, hil):
    assert protocol.upload_io_specification_dict(read_tflite_file(FC).io_specification())
    reasons = []
    for refused in (GARBAGE, TANH):
        assert not protocol.upload_model(refused)
        reasons.append(protocol.refusal_reason())
    assert protocol.upload_model(FC), protocol.refusal_reason()
    for _ in range(7):  # measured by the board, but no part of the run below
        assert protocol.upload_input(bytes(256)) and protocol.request_processing()
        assert protocol.download_output()[0]
    print("REASONS", reasons)
    garbage, tanh = reasons
    assert "identifier" in garbage and "TANH" not in garbage
    assert "TANH" in tanh and "identifier" not in tanh
    assert all(reason.count("MODEL refused") == 1 for reason in reasons), reasons

    result = hil.run(model=str(FC), dataset={{"type": "random", "parameters": {{"samples": 10}}}})
    assert result.samples == 10
    assert result.latency.unit == "instructions" and result.latency.count == 10
"""


@pytest.fixture(scope="module", autouse=True)
def _simulation():
    require_simulation()


def test_protocol_fixture_use_does_not_leak_into_hil_run(project, tmp_path):  # noqa: F811
    fc = fc_model(tmp_path / "fc-int8.tflite")
    tanh = tmp_path / "tanh.tflite"
    tanh.write_bytes(replace_operator(fc.read_bytes(), "SOFTMAX", "TANH"))
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x10\x00\x00\x00????" + bytes(56))
    project.makepyfile(test_mixed=MIXED.format(fc=str(fc), tanh=str(tanh),
                                               garbage=str(garbage)))
    result = run(project, "--target=qemu-m4", "-s")
    result.assert_outcomes(passed=1)

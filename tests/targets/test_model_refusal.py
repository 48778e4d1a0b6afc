"""A model the board cannot run is refused on the host before upload (#23 finding 2): the
qemu kind reads the compiled `.tflite` against the firmware's operator table and memory, and
the harness reports it as not applicable (Incompatible: a skip) with the board's own message,
without booting QEMU or sending a byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kenning_hil.run.outcome import Incompatible
from kenning_hil.targets import Target
from kenning_hil.targets.catalog import TargetCatalog
from kenning_hil.targets.description import parse_target
from tests.firmware import khil_tflite_builder as tb

REPO = Path(__file__).resolve().parents[2]


def float_conv_model(path: Path, channels: int = 4, extra_weights: int = 0) -> Path:
    """A float32 CONV_2D then FULLY_CONNECTED model (`extra_weights` float weights make it
    large, as an unquantised export is)."""
    b = tb.TFLiteBuilder()
    x = b.tensor((1, 8, 8, 1), dtype=np.float32)
    f = b.tensor((channels, 3, 3, 1), dtype=np.float32, data=np.ones((channels, 3, 3, 1)))
    y = b.tensor((1, 8, 8, channels), dtype=np.float32)
    b.op(tb.CONV_2D, [x, f, -1], [y], tb.conv_options())
    flat = b.tensor((1, 64 * channels), dtype=np.float32)
    shape = b.tensor((2,), dtype=np.int32, data=np.array([1, 64 * channels]))
    b.op(tb.RESHAPE, [y, shape], [flat], tb.reshape_options([1, 64 * channels]))
    units = max(1, extra_weights // (64 * channels))
    w = b.tensor((units, 64 * channels), dtype=np.float32,
                 data=np.zeros((units, 64 * channels)))
    out = b.tensor((1, units), dtype=np.float32)
    b.op(tb.FULLY_CONNECTED, [flat, w, -1], [out], tb.fully_connected_options())
    path.write_bytes(b.build([x], [out]))
    return path


def qemu_m4() -> Target:
    return Target(TargetCatalog([REPO / "targets"]).get("qemu-m4"))


def test_a_float_model_is_refused_on_the_host_with_the_boards_message(harness, tmp_path):
    model = float_conv_model(tmp_path / "float-conv.tflite", extra_weights=1 << 18)
    assert model.stat().st_size > 1_000_000  # the 1 MB float model of the issue
    request = harness.request(model, "random", samples=5)
    with pytest.raises(Incompatible) as info:
        harness.run(qemu_m4(), request, "refusal::float")
    message = str(info.value)
    assert ("MODEL refused: unsupported tensor type FLOAT32 for CONV_2D input (op 0)"
            in message)
    assert "nothing uploaded" in message
    assert harness.sessions.boots == 0 and harness.uploads == 0  # no QEMU, no upload


def test_an_unsupported_operator_and_a_model_too_large_for_the_arena(tmp_path):
    b = tb.TFLiteBuilder()
    q = {"scale": 0.1, "zero_point": 0}
    x = b.tensor((1, 8), **q)
    y = b.tensor((1, 8), **q)
    b.op(tb.MUL, [x, x], [y], [(0, "u8", 0)])
    mul = tmp_path / "mul.tflite"
    mul.write_bytes(b.build([x], [y]))
    assert qemu_m4().model_refusal(mul) == (
        "MODEL refused: unsupported operator MUL (builtin 18) in subgraph 0 op 0")

    b = tb.TFLiteBuilder()
    x = b.tensor((1, 1024, 1024), **q)  # 1 MiB in, 1 MiB out: with the model, 2 MiB at once
    y = b.tensor((1, 1024 * 1024), **q)
    shape = b.tensor((2,), dtype=np.int32, data=np.array([1, 1024 * 1024]))
    b.op(tb.RESHAPE, [x, shape], [y], tb.reshape_options([1, 1024 * 1024]))
    z = b.tensor((1, 1024 * 1024), **q)
    b.op(tb.SOFTMAX, [y], [z], tb.softmax_options())
    big = tmp_path / "big.tflite"
    big.write_bytes(b.build([x], [z]))
    small_board = Target(parse_target({
        "kind": "qemu", "machine": "mps2-an386", "runtime": "firmware-int8",
        "memory": {"ram": "1MiB"},
    }, str(tmp_path / "small.yaml"), "small"))
    refusal = small_board.model_refusal(big)
    assert refusal is not None and refusal.startswith("MODEL refused: model needs at least ")
    arena = (1 << 20) - 16 * -(-big.stat().st_size // 16)
    assert refusal.endswith(f"arena bytes, arena has {arena}")
    assert qemu_m4().model_refusal(big) is None  # 3.5 MiB: fits


def test_int8_models_the_firmware_runs_pass(models_dir):
    target = qemu_m4()
    for name in ("kws_ref_model.tflite", "vww_96_int8.tflite", "ad01_int8.tflite",
                 "pretrainedResnet_quant.tflite"):
        path = Path(models_dir) / "mlperf_tiny" / name
        if not path.is_file():
            pytest.skip(f"MLPerf Tiny model {path} not present")
        assert target.model_refusal(path) is None, name


def test_a_model_the_board_refuses_is_not_applicable_at_collection(harness, tmp_path):
    """Without optimizers the model file is what would be uploaded: the collection-time check
    (Harness.not_applicable, which leaves such suite combinations out) refuses it too."""
    model = float_conv_model(tmp_path / "float-conv.tflite")
    refused = harness.not_applicable(qemu_m4(), harness.request(model, "random"))
    assert refused is not None and refused.check == "model"
    assert "MODEL refused: unsupported tensor type FLOAT32 for CONV_2D input (op 0)" in str(
        refused)
    # through an optimizer the uploaded model is known only once compiled: left to the run
    quantised = harness.request(model, "random", [{"type": "litert-quant"}])
    assert harness.not_applicable(qemu_m4(), quantised) is None
    assert harness.sessions.boots == 0


def test_any_kind_running_the_reference_firmware_is_checked(tmp_path):
    """`runtime: firmware-int8` names the firmware's interpreter whatever the kind: a board on
    a serial line refuses the same models; other runtimes are not judged here."""
    model = float_conv_model(tmp_path / "float-conv.tflite")
    board = {"kind": "serial", "port": "/dev/ttyACM0", "runtime": "firmware-int8",
             "formats": ["tflite"], "memory": {"ram": "640KiB"}}
    serial = Target(parse_target(board, str(tmp_path / "board.yaml"), "board"))
    assert serial.model_refusal(model) == (
        "MODEL refused: unsupported tensor type FLOAT32 for CONV_2D input (op 0)")
    host = Target(TargetCatalog([REPO / "targets"]).get("host-litert"))
    assert host.model_refusal(model) is None  # LiteRT runs float models

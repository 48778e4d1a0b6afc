"""The host's refusal of a model (kenning_hil/sim/firmware_ops.py) says what the firmware's
loader says: the same C code, built for the host, loads each model and its error message is
compared with the host's, word for word (#23 finding 2). The operator table both read is
firmware/interp/khil_ops.def."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.formats.tflite_flatbuffer import read_tflite_model
from kenning_hil.sim.firmware_ops import (
    ARENA_ALIGN,
    load_refusal,
    peak_activation_bytes,
    supported_operators,
)
from kenning_hil.sim.interp_lib import FirmwareInterpreter, InterpreterLoadError

from . import khil_tflite_builder as tb

Q = {"scale": 0.05, "zero_point": 0}


def fc(dtype=np.int8, bias_dtype=np.int32, second=None) -> bytes:
    """FULLY_CONNECTED (8 -> 4), optionally followed by a `second` operator."""
    b = tb.TFLiteBuilder()
    quant = Q if dtype == np.int8 else {}
    x = b.tensor((1, 8), dtype=dtype, **quant)
    w = b.tensor((4, 8), dtype=dtype, data=np.ones((4, 8)), **quant)
    bias = b.tensor((4,), dtype=bias_dtype, data=np.zeros(4),
                    **({"scale": 0.0025} if bias_dtype == np.int32 else {}))
    y = b.tensor((1, 4), dtype=dtype, **quant)
    b.op(tb.FULLY_CONNECTED, [x, w, bias], [y], tb.fully_connected_options())
    if second == "mul":
        z = b.tensor((1, 4), dtype=dtype, **quant)
        b.op(tb.MUL, [y, y], [z], [(0, "u8", 0)])
        return b.build([x], [z])
    if second == "softmax-float-out":
        z = b.tensor((1, 4), dtype=np.float32)
        b.op(tb.SOFTMAX, [y], [z], tb.softmax_options())
        return b.build([x], [z])
    return b.build([x], [y])


def conv_float() -> bytes:
    b = tb.TFLiteBuilder()
    x = b.tensor((1, 8, 8, 1), dtype=np.float32)
    f = b.tensor((4, 3, 3, 1), dtype=np.float32, data=np.ones((4, 3, 3, 1)))
    y = b.tensor((1, 8, 8, 4), dtype=np.float32)
    b.op(tb.CONV_2D, [x, f, -1], [y], tb.conv_options())
    return b.build([x], [y])


MODELS = {
    "int8 fc": lambda: fc(),
    "float fc": lambda: fc(np.float32, np.float32),
    "int8 fc with a float bias": lambda: fc(bias_dtype=np.float32),
    "unsupported MUL after fc": lambda: fc(second="mul"),
    "softmax with a float output": lambda: fc(second="softmax-float-out"),
    "float conv": conv_float,
}


def board_message(model: bytes, arena: int, library) -> str | None:
    try:
        FirmwareInterpreter(model, arena_size=arena, library=library)
    except InterpreterLoadError as exc:
        return exc.detail
    return None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_host_refusal_is_the_firmware_loaders_message(name, interp_library):
    model = MODELS[name]()
    expected = board_message(model, 1 << 20, interp_library)
    region = -(-len(model) // ARENA_ALIGN) * ARENA_ALIGN + (1 << 20)
    assert load_refusal(model, len(model), region) == expected
    if name != "int8 fc":
        assert expected  # each of these is refused by the board


def test_mlperf_tiny_models_pass_and_the_arena_bound_is_a_lower_bound(
    mlperf_tiny_model, interp_library
):
    model = mlperf_tiny_model.read_bytes()
    assert load_refusal(model, len(model), None) is None
    needed = peak_activation_bytes(read_tflite_model(model))
    assert needed > 0
    # an arena below the host's bound: both refuse; one the board's activations fit: the host
    # accepts (the board also needs room for its records, which the bound leaves out)
    small = needed - 16
    assert board_message(model, small, interp_library) is not None
    region = -(-len(model) // ARENA_ALIGN) * ARENA_ALIGN
    assert load_refusal(model, len(model), region + small) == (
        f"model needs at least {needed} arena bytes, arena has {small}")
    peak = FirmwareInterpreter(model, arena_size=1 << 21, library=interp_library).arena_peak
    assert peak >= needed
    assert load_refusal(model, len(model), region + peak) is None


def test_no_arena_left_is_the_runtimes_message():
    model = fc()
    assert load_refusal(model, len(model), len(model)) == (
        f"model of {len(model)} bytes leaves no tensor arena in the {len(model)}-byte model "
        f"+ arena memory")


def test_the_table_lists_what_the_loader_implements():
    names = {s.name for s in supported_operators().values()}
    assert names == {"ADD", "AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D",
                     "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"}

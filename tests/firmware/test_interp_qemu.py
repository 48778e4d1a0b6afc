"""The interpreter's DSP-extension kernels (assembly inner loops, ACLE intrinsics) run only on
the MCU: the synthetic kernel models of test_interp_kernels.py go through the reference firmware
on the QEMU boards and must match LiteRT's reference kernels exactly, odd shapes included
(K % 4 tails, channel counts not multiple of 4, pixel counts not multiple of 4)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from . import khil_tflite_builder as tb
from .test_interp_kernels import (
    ADD_CASES,
    CONV_CASES,
    DEPTHWISE_CASES,
    POOL_CASES,
    add_model,
    conv_model,
    output_scale_for,
    pool_model,
    run_litert_reference,
)

pytestmark = pytest.mark.sim

BOARDS = ("mps2-an386", "mps3-an547")


@pytest.fixture(scope="module", params=BOARDS)
def board_client(request):
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    pytest.importorskip("ai_edge_litert")
    from kenning_hil.sim.firmware_build import build_firmware
    from kenning_hil.sim.qemu import QemuInstance
    from tests.sim.frame_client import FrameClient

    instance = QemuInstance(request.param, build_firmware(request.param))
    instance.start()
    client = FrameClient(instance.url)
    try:
        assert client.connect().success
        yield client
    finally:
        client.close()
        instance.stop()


def run_on_board(client, model: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    from kenning_hil.core.protocol import MessageType

    answer = client.request(MessageType.MODEL, model, timeout=60)
    assert answer.success, answer.payload
    payload = b"".join(x.tobytes() for x in inputs)
    assert client.request(MessageType.DATA, payload).success
    assert client.request(MessageType.PROCESS, timeout=60).success
    return np.frombuffer(client.request(MessageType.OUTPUT).payload, dtype=np.int8)


def check(client, model: bytes, shapes, seed: int, samples: int = 2) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        inputs = [rng.integers(-128, 127, size=s, endpoint=True, dtype=np.int8) for s in shapes]
        (expected,) = run_litert_reference(model, inputs)
        got = run_on_board(client, model, inputs)
        assert np.array_equal(got, expected.reshape(-1)), (
            f"{int(np.sum(got != expected.reshape(-1)))} of {expected.size} outputs differ"
        )


def test_conv_and_depthwise_on_board(board_client):
    for i, case in enumerate(sorted(CONV_CASES)):
        rng = np.random.default_rng(300 + i)
        check(board_client, conv_model(rng, **CONV_CASES[case]),
              [CONV_CASES[case]["in_shape"]], seed=i)
    for i, case in enumerate(sorted(DEPTHWISE_CASES)):
        rng = np.random.default_rng(400 + i)
        check(board_client, conv_model(rng, depthwise=True, **DEPTHWISE_CASES[case]),
              [DEPTHWISE_CASES[case]["in_shape"]], seed=i)


@pytest.mark.parametrize("depth,units,batches", [(24, 10, 3), (37, 7, 1), (3, 5, 2)])
def test_fully_connected_on_board(board_client, depth, units, batches):
    rng = np.random.default_rng(depth * units)
    b = tb.TFLiteBuilder()
    x = b.tensor((batches, depth), scale=0.04, zero_point=-9)
    w_scales = rng.uniform(0.003, 0.01, size=units)
    w = b.tensor((units, depth), scale=w_scales, zero_point=0,
                 data=rng.integers(-127, 127, size=(units, depth), endpoint=True))
    bias = b.tensor((units,), dtype=np.int32, scale=0.04 * w_scales, zero_point=0,
                    data=rng.integers(-5000, 5000, size=units))
    y = b.tensor((batches, units), scale=output_scale_for(0.04, w_scales, depth), zero_point=3)
    b.op(tb.FULLY_CONNECTED, [x, w, bias], [y], tb.fully_connected_options(tb.RELU))
    check(board_client, b.build([x], [y]), [(batches, depth)], seed=units)


def test_add_on_board(board_client):
    for i, (shape_a, shape_b, activation) in enumerate(ADD_CASES):
        check(board_client, add_model(shape_a, shape_b, activation), [shape_a, shape_b], seed=i)


def test_average_pool_on_board(board_client):
    for i, case in enumerate(POOL_CASES):
        check(board_client, pool_model(*case), [case[0]], seed=i)

"""Whole inference sessions on the QEMU boards: the MLPerf Tiny models uploaded over the
emulated UART, outputs bit-exact with LiteRT's reference kernels, STATS with deterministic
instruction counts."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.core.protocol import Flag, MessageType
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file
from kenning_hil.protocols.iospec_struct import pack_io_spec
from kenning_hil.protocols.stats import unpack_stat_records
from kenning_hil.sim.qemu import QemuInstance

from .frame_client import FrameClient
from .test_host_protocol import litert_reference

pytestmark = pytest.mark.sim

# IC (ResNet-8, 98 kB) adds ADD to what KWS covers. VWW (333 kB) and AD (277 kB) take 10-25 s
# of upload each over the emulated UART; their bit-exactness on both boards is checked once,
# with 20 samples per upload, by test_qemu_target.py's MLPerf Tiny test (slow), not again here.
OTHER_MODELS = ["pretrainedResnet_quant.tflite"]


def stats_of(client: FrameClient) -> dict[str, int]:
    answer = client.request(MessageType.STATS)
    assert answer.success
    return {name: value for name, _, value in unpack_stat_records(answer.payload)}


def run_model(client: FrameClient, model_path, samples: int, seed: int = 0) -> list[int]:
    """Uploads the model, checks `samples` random inputs against LiteRT; returns the
    instruction count of each inference."""
    info = read_tflite_file(model_path)
    spec = info.io_specification()
    assert client.connect().success
    answer = client.request(MessageType.IO_SPEC, pack_io_spec(spec), Flag.SERIALIZED)
    assert answer.success, answer.text
    answer = client.request(MessageType.MODEL, model_path.read_bytes(), timeout=120)
    assert answer.success, answer.text
    shape = spec["input"][0]["shape"]
    rng = np.random.default_rng(seed)
    counts = []
    for _ in range(samples):
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        assert client.request(MessageType.DATA, x.tobytes()).success
        answer = client.request(MessageType.PROCESS, timeout=120)
        assert answer.success, answer.text
        out = client.request(MessageType.OUTPUT).payload
        expected = litert_reference(model_path, x)
        assert np.array_equal(np.frombuffer(out, np.int8).reshape(expected.shape), expected)
        counts.append(stats_of(client)["target_inference_instructions"])
    return counts


def test_kws_bit_exact_with_instruction_counts(board, client, kws_model):
    counts = run_model(client, kws_model, samples=2)
    assert all(1_000_000 < c < 200_000_000 for c in counts), counts
    stats = stats_of(client)
    assert stats["model_size"] == kws_model.stat().st_size
    assert 1_000 < stats["peak_allocated"] < stats["arena_size"]
    assert "target_inference_step" not in stats  # instructions are not time
    assert stats["uart_rx_overruns"] == 0  # no byte lost at full speed


def test_instruction_count_is_deterministic_and_follows_virtual_time(firmware_elf, kws_model):
    """Same input twice: the same count (to one timer tick). With -icount shift=1 each
    instruction takes 2 ns of virtual time, so the firmware's timer reads twice as much:
    the count comes from QEMU's instruction counter, not from wall-clock time."""
    elf = firmware_elf("mps2-an386")
    tick = 40  # 1e9 / 25 MHz: the resolution of the board timer in instructions
    counts = {}
    for shift in (0, 1):
        with QemuInstance("mps2-an386", elf, icount_shift=shift) as board:
            client = FrameClient(board.url)
            try:
                assert client.connect().success
                assert client.request(MessageType.MODEL, kws_model.read_bytes(),
                                      timeout=120).success
                x = np.arange(490, dtype=np.int64).astype(np.int8).tobytes()
                runs = []
                for _ in range(2):
                    assert client.request(MessageType.DATA, x).success
                    assert client.request(MessageType.PROCESS, timeout=120).success
                    runs.append(stats_of(client)["target_inference_instructions"])
                counts[shift] = runs
            finally:
                client.close()
    assert abs(counts[0][0] - counts[0][1]) <= tick
    assert abs(counts[1][0] - counts[1][1]) <= 2 * tick
    assert abs(counts[1][0] - 2 * counts[0][0]) <= 4 * tick


def test_session_through_uart_protocol(board, kws_model, tmp_path):
    """The project's host side (UARTProtocol) drives the firmware end to end."""
    uart = pytest.importorskip("kenning_hil.protocols.bytes_protocol")
    protocol = uart.UARTProtocol(port=board.url, timeout=10.0)
    assert protocol.initialize_client()
    try:
        spec = read_tflite_file(kws_model).io_specification()
        assert protocol.upload_io_specification_dict(spec)
        assert protocol.upload_model(kws_model)
        x = np.random.default_rng(5).integers(-128, 128, size=(1, 49, 10, 1), dtype=np.int8)
        assert protocol.upload_input(x.tobytes())
        assert protocol.request_processing()
        ok, out = protocol.download_output()
        assert ok and np.array_equal(np.frombuffer(out, np.int8),
                                     litert_reference(kws_model, x)[0])
        stats = protocol.download_statistics()
        assert stats
    finally:
        protocol.disconnect()


@pytest.mark.parametrize("model_name", OTHER_MODELS)
def test_other_mlperf_models_bit_exact(board, client, mlperf_dir, model_name):
    path = mlperf_dir / model_name
    if not path.is_file():
        pytest.skip(f"{path} absent")
    counts = run_model(client, path, samples=1)
    assert counts[0] > 100_000


def test_dwt_cycle_counter_build_reports_cycles(kws_model):
    """The hardware timing path (DWT cycle counter, BOARD_TIMING=cycles) builds, runs and
    names its records as cycles and time. QEMU 7.2 does not emulate DWT (CYCCNT reads 0), so
    only real boards give non-zero values."""
    from kenning_hil.sim.firmware_build import FIRMWARE_DIR, build_firmware

    from .conftest import require_simulation

    require_simulation()
    elf = build_firmware("mps2-an386", build_dir=FIRMWARE_DIR / "build" / "mps2-an386-test-dwt",
                         make_vars={
                             "BOARD_TIMER": "dwt", "BOARD_TIMING": "cycles"})
    with QemuInstance("mps2-an386", elf) as board:
        client = FrameClient(board.url)
        try:
            assert client.connect().success
            assert client.request(MessageType.MODEL, kws_model.read_bytes(), timeout=120).success
            assert client.request(MessageType.DATA, bytes(490)).success
            assert client.request(MessageType.PROCESS, timeout=120).success
            stats = stats_of(client)
        finally:
            client.close()
    assert stats["target_inference_cycles"] == 0 and stats["target_inference_step"] == 0
    assert "target_inference_instructions" not in stats

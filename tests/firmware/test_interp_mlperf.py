"""The firmware interpreter against LiteRT's reference kernels on the MLPerf Tiny int8 models:
outputs must be identical for every seeded random input."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.sim.interp_lib import FirmwareInterpreter

SAMPLES = 20


def litert_reference(model_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(
        model_path=str(model_path),
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
    )
    interpreter.allocate_tensors()
    return interpreter


def test_mlperf_tiny_bit_exact_with_litert_reference(mlperf_tiny_model, interp_library,
                                                     record_property):
    reference = litert_reference(mlperf_tiny_model)
    ours = FirmwareInterpreter(mlperf_tiny_model.read_bytes(), library=interp_library)
    (ref_in,) = reference.get_input_details()
    (ref_out,) = reference.get_output_details()
    assert ours.inputs[0].shape == tuple(ref_in["shape"])
    assert ours.outputs[0].shape == tuple(ref_out["shape"])
    assert ours.outputs[0].scale == pytest.approx(ref_out["quantization"][0])
    rng = np.random.default_rng(20261125)
    for sample in range(SAMPLES):
        x = rng.integers(-128, 127, size=ref_in["shape"], endpoint=True, dtype=np.int8)
        reference.set_tensor(ref_in["index"], x)
        reference.invoke()
        expected = reference.get_tensor(ref_out["index"])
        (got,) = ours.run(x)
        assert np.array_equal(got, expected), (
            f"{mlperf_tiny_model.name} sample {sample}: "
            f"{int(np.sum(got != expected))} of {got.size} outputs differ"
        )
    record_property("arena_peak_bytes", ours.arena_peak)


def test_mlperf_tiny_arena_peak_is_reported_and_sufficient(mlperf_tiny_model, interp_library):
    """The reported peak is exactly what the model needs: one byte less must fail cleanly."""
    model = mlperf_tiny_model.read_bytes()
    peak = FirmwareInterpreter(model, library=interp_library).arena_peak
    assert 0 < peak < 128 * 1024
    # The arena is 16-byte aligned inside the buffer ctypes gives, so `peak` may include
    # up to 15 bytes of alignment padding; a buffer of the peak size always suffices.
    FirmwareInterpreter(model, arena_size=peak + 15, library=interp_library)
    with pytest.raises(Exception, match=r"model needs (more than )?\d+ arena bytes"):
        FirmwareInterpreter(model, arena_size=peak - 64, library=interp_library)

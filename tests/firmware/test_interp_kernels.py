"""Each kernel on small synthetic int8 models (padding, strides, dilation, depth multipliers,
grouped convolution, per-tensor and per-channel weights, fused activations, broadcasting,
batches, softmax beta), compared with LiteRT's reference kernels on seeded random inputs."""

from __future__ import annotations

import numpy as np
import pytest

from kenning_hil.sim.interp_lib import FirmwareInterpreter

from . import khil_tflite_builder as tb

SAMPLES = 8


def run_litert_reference(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = litert.Interpreter(
        model_content=model, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def assert_matches_litert(model: bytes, library, seed: int) -> FirmwareInterpreter:
    ours = FirmwareInterpreter(model, library=library)
    rng = np.random.default_rng(seed)
    for _ in range(SAMPLES):
        inputs = [rng.integers(-128, 127, size=spec.shape, endpoint=True, dtype=np.int8)
                  for spec in ours.inputs]
        expected = run_litert_reference(model, inputs)
        got = ours.run(*inputs)
        for e, g in zip(expected, got):
            assert e.shape == g.shape
            assert np.array_equal(e, g), f"{int(np.sum(e != g))} of {e.size} outputs differ"
    return ours


def output_scale_for(in_scale, filter_scales, depth):
    """An output scale that keeps most requantised values inside int8."""
    return float(in_scale * np.max(filter_scales) * np.sqrt(depth) * 74 * 74 / 40)


def conv_model(rng, *, in_shape, filters, kernel, options, per_channel=True, groups=1,
               depthwise=False, multiplier=1, out_scale=None, weight_max=127, bias_max=3000,
               dead_channels=()):
    b = tb.TFLiteBuilder()
    in_scale, in_zp = rng.uniform(0.01, 0.1), int(rng.integers(-30, 30))
    x = b.tensor(in_shape, scale=in_scale, zero_point=in_zp)
    ic = in_shape[3]
    oc = ic * multiplier if depthwise else filters
    fic = ic // groups
    kh, kw = kernel
    f_shape = (1, kh, kw, oc) if depthwise else (oc, kh, kw, fic)
    f_scales = rng.uniform(0.002, 0.02, size=oc if per_channel else 1)
    weights = rng.integers(-weight_max, weight_max, size=f_shape, endpoint=True)
    # output channels with all-zero weights (pruned: the kernel skips their dot products)
    weights[list(dead_channels)] = 0
    w = b.tensor(f_shape, scale=f_scales, zero_point=0, data=weights,
                 quant_dim=3 if depthwise else 0)
    # LiteRT insists on a bias for int8 convolutions.
    bias = b.tensor((oc,), dtype=np.int32, scale=in_scale * f_scales, zero_point=0,
                    data=rng.integers(-bias_max, bias_max, size=oc))
    inputs = [x, w, bias]
    depth = kh * kw * (1 if depthwise else fic)
    padding, stride, dilation = options["padding"], options["stride"], options["dilation"]
    out_hw = []
    for size, k, s, d in zip(in_shape[1:3], kernel, stride, dilation):
        eff = (k - 1) * d + 1
        out_hw.append((size + s - 1) // s if padding == tb.SAME else (size + s - eff) // s)
    # out_scale: a multiple of in_scale * max filter scale (above 0.5: no rounding shift).
    scale = (output_scale_for(in_scale, f_scales, depth) if out_scale is None
             else float(in_scale * np.max(f_scales) * out_scale))
    y = b.tensor((in_shape[0], *out_hw, oc), scale=scale,
                 zero_point=int(rng.integers(-20, 20)))
    if depthwise:
        b.op(tb.DEPTHWISE_CONV_2D, inputs, [y], tb.depthwise_options(
            padding, stride, multiplier, options["activation"], dilation))
    else:
        b.op(tb.CONV_2D, inputs, [y], tb.conv_options(
            padding, stride, options["activation"], dilation))
    return b.build([x], [y])


CONV_CASES = {
    "3x3-same-relu": dict(in_shape=(1, 9, 7, 5), filters=6, kernel=(3, 3),
                          options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1),
                                       activation=tb.RELU)),
    "5x3-valid-stride2": dict(in_shape=(1, 11, 9, 3), filters=4, kernel=(5, 3),
                              options=dict(padding=tb.VALID, stride=(2, 2), dilation=(1, 1),
                                           activation=tb.NONE)),
    "3x3-same-stride2x1-relu6-per-tensor": dict(
        in_shape=(1, 8, 8, 4), filters=5, kernel=(3, 3), per_channel=False,
        options=dict(padding=tb.SAME, stride=(2, 1), dilation=(1, 1), activation=tb.RELU6)),
    "1x1": dict(in_shape=(1, 6, 6, 16), filters=8, kernel=(1, 1),
                        options=dict(padding=tb.VALID, stride=(1, 1), dilation=(1, 1),
                                     activation=tb.NONE)),
    "3x3-dilation2-relu1": dict(in_shape=(1, 10, 10, 3), filters=4, kernel=(3, 3),
                                options=dict(padding=tb.SAME, stride=(1, 1), dilation=(2, 2),
                                             activation=tb.RELU_N1_TO_1)),
    "batch2-4x4-same-stride3": dict(in_shape=(2, 7, 7, 2), filters=3, kernel=(4, 4),
                                    options=dict(padding=tb.SAME, stride=(3, 3),
                                                 dilation=(1, 1), activation=tb.RELU)),
    # K = 72 (a multiple of 8: the channel loop in assembly), pixels a multiple of 4
    "3x3-same-stride2-8ch-relu6": dict(in_shape=(1, 9, 8, 8), filters=12, kernel=(3, 3),
                                       options=dict(padding=tb.SAME, stride=(2, 2),
                                                    dilation=(1, 1), activation=tb.RELU6)),
    "1x1-effective-scale-above-half": dict(in_shape=(1, 5, 3, 4), filters=6, kernel=(1, 1),
                                           out_scale=0.3, weight_max=1, bias_max=50,
                                           options=dict(padding=tb.VALID, stride=(1, 1),
                                                        dilation=(1, 1), activation=tb.NONE)),
    # Helium paths (#18): a 1x1 read straight from the input with a K % 16 tail, 15 pixels
    # and 7 channels; a 1x1 with stride 2 (gathered); 3x3 windows copied a row at a time
    # (K = 216) with effective scales above 1 (a left shift before the multiply).
    "1x1-20ch-7filters-odd-pixels": dict(in_shape=(1, 5, 3, 20), filters=7, kernel=(1, 1),
                                         options=dict(padding=tb.VALID, stride=(1, 1),
                                                      dilation=(1, 1), activation=tb.RELU)),
    "1x1-stride2": dict(in_shape=(1, 7, 7, 16), filters=4, kernel=(1, 1),
                        options=dict(padding=tb.VALID, stride=(2, 2), dilation=(1, 1),
                                     activation=tb.NONE)),
    "3x3-valid-24ch-effective-scale-above-one": dict(
        in_shape=(1, 6, 5, 24), filters=5, kernel=(3, 3), out_scale=0.5, weight_max=1,
        bias_max=50,
        options=dict(padding=tb.VALID, stride=(1, 1), dilation=(1, 1), activation=tb.NONE)),
    # all-zero weight rows (#18): runs of live channels between them, at both ends, with the
    # assembly channel loop (K = 16, pixels a multiple of 4) and with the C one (K = 12, 15
    # pixels), and a layer whose only live channel is the last
    "1x1-16ch-dead-channels": dict(in_shape=(1, 4, 6, 16), filters=13, kernel=(1, 1),
                                   dead_channels=(0, 3, 4, 5, 9, 12),
                                   options=dict(padding=tb.VALID, stride=(1, 1),
                                                dilation=(1, 1), activation=tb.RELU6)),
    "1x1-12ch-dead-channels-odd-pixels": dict(in_shape=(1, 5, 3, 12), filters=6,
                                              kernel=(1, 1), dead_channels=(1, 2, 5),
                                              options=dict(padding=tb.VALID, stride=(1, 1),
                                                           dilation=(1, 1), activation=tb.NONE)),
    "3x3-same-8ch-one-live-channel": dict(in_shape=(1, 6, 6, 8), filters=5, kernel=(3, 3),
                                          dead_channels=(0, 1, 2, 3),
                                          options=dict(padding=tb.SAME, stride=(1, 1),
                                                       dilation=(1, 1), activation=tb.RELU)),
    "grouped-2": dict(in_shape=(1, 5, 5, 4), filters=6, kernel=(3, 3), groups=2,
                      options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1),
                                   activation=tb.NONE)),
}

DEPTHWISE_CASES = {
    "3x3-same-relu6": dict(in_shape=(1, 9, 9, 8), filters=0, kernel=(3, 3),
                           options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1),
                                        activation=tb.RELU6)),
    "3x3-same-stride2-multiplier2": dict(in_shape=(1, 8, 7, 3), filters=0, kernel=(3, 3),
                                         multiplier=2,
                                         options=dict(padding=tb.SAME, stride=(2, 2),
                                                      dilation=(1, 1), activation=tb.NONE)),
    "5x5-valid-per-tensor": dict(in_shape=(1, 9, 9, 4), filters=0, kernel=(5, 5),
                                 per_channel=False,
                                 options=dict(padding=tb.VALID, stride=(1, 1),
                                              dilation=(1, 1), activation=tb.RELU)),
    "3x3-dilation2x1": dict(in_shape=(1, 9, 9, 5), filters=0, kernel=(3, 3),
                            options=dict(padding=tb.SAME, stride=(1, 1), dilation=(2, 1),
                                         activation=tb.NONE)),
    # The packed paths: whole 3x3 windows, border rows/columns, the ch % 4 tail channels.
    "3x3-same-8ch-effective-scale-above-half": dict(
        in_shape=(1, 6, 5, 8), filters=0, kernel=(3, 3), out_scale=0.4, weight_max=1,
        bias_max=50,
        options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1), activation=tb.NONE)),
    "3x3-same-stride2-7ch-relu": dict(in_shape=(1, 10, 9, 7), filters=0, kernel=(3, 3),
                                      options=dict(padding=tb.SAME, stride=(2, 2),
                                                   dilation=(1, 1), activation=tb.RELU)),
    "3x3-valid-stride2-12ch-batch2": dict(in_shape=(2, 9, 8, 12), filters=0, kernel=(3, 3),
                                          options=dict(padding=tb.VALID, stride=(2, 2),
                                                       dilation=(1, 1), activation=tb.NONE)),
    "3x3-same-stride3-8ch": dict(in_shape=(1, 7, 8, 8), filters=0, kernel=(3, 3),
                                 options=dict(padding=tb.SAME, stride=(3, 3),
                                              dilation=(1, 1), activation=tb.RELU)),
    "3x3-same-width2-4ch": dict(in_shape=(1, 5, 2, 4), filters=0, kernel=(3, 3),
                                options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1),
                                             activation=tb.NONE)),
    # The M4's channel-plane kernel (#18): several bands of output rows and several sum
    # passes per band, pixel counts not a multiple of 4 carried across them, odd output
    # widths, a last group of 1 or 2 channels; stride 2 across, stride 2 down only
    "3x3-same-50x41-5ch-bands": dict(in_shape=(1, 50, 41, 5), filters=0, kernel=(3, 3),
                                     options=dict(padding=tb.SAME, stride=(1, 1),
                                                  dilation=(1, 1), activation=tb.RELU6)),
    "3x3-same-stride2-60x37-6ch-bands": dict(in_shape=(1, 60, 37, 6), filters=0,
                                             kernel=(3, 3),
                                             options=dict(padding=tb.SAME, stride=(2, 2),
                                                          dilation=(1, 1),
                                                          activation=tb.NONE)),
    "3x3-valid-stride2x1-6ch": dict(in_shape=(1, 9, 7, 6), filters=0, kernel=(3, 3),
                                    options=dict(padding=tb.VALID, stride=(2, 1),
                                                 dilation=(1, 1), activation=tb.RELU)),
    # Helium's general tap loop on a full group of 8 channels with dilation (input taps
    # 2 pixels apart, weights 1 tap apart)
    "3x3-same-dilation2-16ch": dict(in_shape=(1, 9, 8, 16), filters=0, kernel=(3, 3),
                                    options=dict(padding=tb.SAME, stride=(1, 1),
                                                 dilation=(2, 2), activation=tb.RELU6)),
    "3x3-same-11ch-effective-scale-above-one": dict(
        in_shape=(1, 5, 6, 11), filters=0, kernel=(3, 3), out_scale=0.5, weight_max=1,
        bias_max=50,
        options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1), activation=tb.NONE)),
    "5x3-same-10ch": dict(in_shape=(1, 8, 7, 10), filters=0, kernel=(5, 3),
                          options=dict(padding=tb.SAME, stride=(1, 1), dilation=(1, 1),
                                       activation=tb.RELU6)),
    "3x5-same-stride1x2-9ch": dict(in_shape=(1, 7, 11, 9), filters=0, kernel=(3, 5),
                                   options=dict(padding=tb.SAME, stride=(1, 2),
                                                dilation=(1, 1), activation=tb.NONE)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_2d(case, interp_library):
    rng = np.random.default_rng(100 + sorted(CONV_CASES).index(case))
    model = conv_model(rng, **CONV_CASES[case])
    assert_matches_litert(model, interp_library, seed=1)


@pytest.mark.parametrize("case", sorted(DEPTHWISE_CASES))
def test_depthwise_conv_2d(case, interp_library):
    rng = np.random.default_rng(200 + sorted(DEPTHWISE_CASES).index(case))
    model = conv_model(rng, depthwise=True, **DEPTHWISE_CASES[case])
    assert_matches_litert(model, interp_library, seed=2)


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("activation", [tb.NONE, tb.RELU])
def test_fully_connected_batches(per_channel, activation, interp_library):
    rng = np.random.default_rng(7 + activation + 2 * per_channel)
    b = tb.TFLiteBuilder()
    in_scale = rng.uniform(0.02, 0.08)
    x = b.tensor((3, 24), scale=in_scale, zero_point=int(rng.integers(-40, 40)))
    units = 10
    w_scales = rng.uniform(0.003, 0.01, size=units if per_channel else 1)
    w = b.tensor((units, 24), scale=w_scales, zero_point=0,
                 data=rng.integers(-127, 127, size=(units, 24), endpoint=True))
    bias = b.tensor((units,), dtype=np.int32, scale=in_scale * w_scales, zero_point=0,
                    data=rng.integers(-5000, 5000, size=units))
    y = b.tensor((3, units), scale=output_scale_for(in_scale, w_scales, 24),
                 zero_point=int(rng.integers(-10, 10)))
    b.op(tb.FULLY_CONNECTED, [x, w, bias], [y], tb.fully_connected_options(activation))
    assert_matches_litert(b.build([x], [y]), interp_library, seed=3)


def test_fully_connected_without_bias_on_4d_input(interp_library):
    rng = np.random.default_rng(11)
    b = tb.TFLiteBuilder()
    x = b.tensor((1, 2, 2, 8), scale=0.05, zero_point=-3)
    w = b.tensor((6, 32), scale=0.004, zero_point=0,
                 data=rng.integers(-127, 127, size=(6, 32), endpoint=True))
    y = b.tensor((1, 6), scale=output_scale_for(0.05, [0.004], 32), zero_point=5)
    b.op(tb.FULLY_CONNECTED, [x, w, -1], [y], tb.fully_connected_options())
    assert_matches_litert(b.build([x], [y]), interp_library, seed=4)


POOL_CASES = [
    ((1, 7, 5, 6), tb.VALID, (2, 2), (2, 2), tb.NONE),
    ((1, 7, 5, 6), tb.SAME, (1, 1), (3, 3), tb.NONE),
    ((1, 7, 5, 6), tb.SAME, (2, 1), (3, 2), tb.RELU),
    ((1, 7, 5, 6), tb.VALID, (1, 1), (7, 5), tb.RELU6),
    # windows of 256 cells (four channels per word in int16 pairs) and of 272 (one at a time)
    ((1, 16, 16, 8), tb.VALID, (1, 1), (16, 16), tb.NONE),
    ((1, 17, 16, 8), tb.VALID, (1, 1), (17, 16), tb.NONE),
]


def pool_model(in_shape, padding, stride, size, activation) -> bytes:
    b = tb.TFLiteBuilder()
    x = b.tensor(in_shape, scale=0.05, zero_point=-7)
    out_hw = [
        (n + s - 1) // s if padding == tb.SAME else (n + s - k) // s
        for n, k, s in zip(in_shape[1:3], size, stride)
    ]
    y = b.tensor((in_shape[0], *out_hw, in_shape[3]), scale=0.05, zero_point=-7)
    b.op(tb.AVERAGE_POOL_2D, [x], [y], tb.pool_options(padding, stride, size, activation))
    return b.build([x], [y])


@pytest.mark.parametrize("in_shape,padding,stride,size,activation", POOL_CASES)
def test_average_pool_2d(in_shape, padding, stride, size, activation, interp_library):
    assert_matches_litert(pool_model(in_shape, padding, stride, size, activation),
                          interp_library, seed=5)


def test_average_pool_2d_extreme_sums(interp_library):
    """256 cells of -128 (the int16 pair's most negative sum) and of 127 in one window."""
    model = pool_model((1, 16, 16, 8), tb.VALID, (1, 1), (16, 16), tb.NONE)
    ours = FirmwareInterpreter(model, library=interp_library)
    for value in (-128, 127):
        x = np.full((1, 16, 16, 8), value, dtype=np.int8)
        (expected,) = run_litert_reference(model, [x])
        (got,) = ours.run(x)
        assert np.array_equal(expected, got)


ADD_CASES = [
    ((1, 4, 4, 3), (1, 4, 4, 3), tb.NONE),
    ((1, 4, 4, 3), (1, 4, 4, 3), tb.RELU6),
    ((1, 3, 5, 3), (1, 3, 5, 3), tb.RELU),  # 45 elements: not a multiple of 4
    ((1, 9, 10, 3), (1, 9, 10, 3), tb.RELU6),  # 270: lookup tables, and a tail
    ((1, 8, 8, 4), (1, 8, 8, 4), tb.NONE),  # 256: lookup tables, no tail
    ((1, 4, 4, 3), (1, 1, 1, 3), tb.RELU),
    ((1, 4, 1, 3), (1, 1, 5, 3), tb.NONE),
    ((2, 3), (3,), tb.NONE),
]


def add_model(shape_a, shape_b, activation) -> bytes:
    b = tb.TFLiteBuilder()
    a = b.tensor(shape_a, scale=0.07, zero_point=3)
    c = b.tensor(shape_b, scale=0.031, zero_point=-11)
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    y = b.tensor(out_shape, scale=0.09, zero_point=-2)
    b.op(tb.ADD, [a, c], [y], tb.add_options(activation))
    return b.build([a, c], [y])


@pytest.mark.parametrize("shape_a,shape_b,activation", ADD_CASES)
def test_add(shape_a, shape_b, activation, interp_library):
    assert_matches_litert(add_model(shape_a, shape_b, activation), interp_library, seed=6)


@pytest.mark.parametrize("beta,in_scale", [(1.0, 0.1), (0.5, 0.25), (1.0, 0.0125), (2.0, 1.0)])
def test_reshape_then_softmax(beta, in_scale, interp_library):
    b = tb.TFLiteBuilder()
    x = b.tensor((1, 3, 10), scale=in_scale, zero_point=4)
    shape = b.tensor((2,), dtype=np.int32, data=[3, 10])
    r = b.tensor((3, 10), scale=in_scale, zero_point=4)
    y = b.tensor((3, 10), scale=1 / 256, zero_point=-128)
    b.op(tb.RESHAPE, [x, shape], [r], tb.reshape_options([3, 10]))
    b.op(tb.SOFTMAX, [r], [y], tb.softmax_options(beta))
    ours = assert_matches_litert(b.build([x], [y]), interp_library, seed=7)
    assert ours.outputs[0].shape == (3, 10)


def test_chain_reuses_arena_memory(interp_library):
    """conv -> conv -> add(skip) -> avgpool: planned tensors share memory where lifetimes allow."""
    rng = np.random.default_rng(12)
    b = tb.TFLiteBuilder()
    x = b.tensor((1, 16, 16, 8), scale=0.05, zero_point=0)
    tensors = [x]
    for _ in range(2):
        w = b.tensor((8, 3, 3, 8), scale=[0.01] * 8, zero_point=0,
                     data=rng.integers(-127, 127, size=(8, 3, 3, 8), endpoint=True))
        bias = b.tensor((8,), dtype=np.int32, scale=[0.0005] * 8, zero_point=0,
                        data=rng.integers(-500, 500, size=8))
        y = b.tensor((1, 16, 16, 8), scale=0.05, zero_point=0)
        b.op(tb.CONV_2D, [tensors[-1], w, bias], [y], tb.conv_options(activation=tb.RELU))
        tensors.append(y)
    s = b.tensor((1, 16, 16, 8), scale=0.06, zero_point=-1)
    b.op(tb.ADD, [tensors[-1], x], [s], tb.add_options())
    p = b.tensor((1, 8, 8, 8), scale=0.06, zero_point=-1)
    b.op(tb.AVERAGE_POOL_2D, [s], [p], tb.pool_options(tb.VALID, (2, 2), (2, 2)))
    ours = assert_matches_litert(b.build([x], [p]), interp_library, seed=8)
    # Live at once at most: x (kept for the skip add), one conv output and the next: 3 * 2 KiB,
    # plus a conv's scratch (eight int16 columns of K = 72 and 8 channel records: 1,280 B since
    # #18's 8-pixel GEMM) and the records. Without reuse the four 2 KiB activations plus the
    # pool output would need 8.5 KiB besides.
    activation_bytes = 3 * 16 * 16 * 8
    assert ours.arena_peak < activation_bytes + 2560

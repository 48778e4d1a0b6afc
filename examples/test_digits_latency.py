"""Latency regression test: the digits MLP must stay fast on the target.

    pytest examples/ --target=host-onnxruntime                   # thresholds only
    pytest examples/ --baseline=baselines --update-baseline      # record a baseline
    pytest examples/ --baseline=baselines                        # fail on a regression

Latency is what the target measured (`target_inference_step`) when it reports it, else the
host-timed request round trip; `result.latency.source` says which. Baselines compare the
fast end of the run robustly (the confidence interval of its 10th percentile must clear the
baseline's + tolerance), so a busy machine does not fail the test and a slower model does;
see docs/plugin.md.
"""

MODEL = "models/digits/digits-mlp.onnx"


def test_digits_latency(hil, samples):
    result = hil.run(
        model=MODEL,
        dataset="digits",
        samples=300,
        thresholds={"latency.p95": "20ms", "latency.p50": "5ms"},
        # host latencies are noisy: a regression must exceed +50% and 100 µs
        tolerance={"latency": {"rel": "50%", "abs": "100us"}},
    )
    assert result.latency.count == min(300, samples or 300)  # --samples caps the run
    assert result.latency.p50 <= result.latency.p95 <= result.latency.max

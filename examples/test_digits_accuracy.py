"""Accuracy regression test: the shipped digits MLP, run on each --target.

    pytest examples/ --target=host-onnxruntime

The model travels to the target over the wire protocol (a local `kenning-hil serve` for
host targets) and the held-out digits run through it there. The threshold fails the test
with a readable message when accuracy drops; results land in results/hil/ first.
"""

MODEL = "models/digits/digits-mlp.onnx"  # relative to the project root


def test_digits_accuracy(hil, samples):
    result = hil.run(model=MODEL, dataset="digits", samples=200, thresholds={"accuracy": 0.95})
    # every quality metric the dataset reports is an attribute of the result
    assert result.top_3_accuracy >= 0.98
    # `samples` is the --samples setting: it caps every run, for quick smoke runs
    assert result.samples == min(200, samples or 200)

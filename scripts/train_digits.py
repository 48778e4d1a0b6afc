#!/usr/bin/env python3
"""Trains the shipped digits classifier and writes it as ONNX with its io specification.

    .venv/bin/python scripts/train_digits.py [--output models/digits/digits-mlp.onnx]

An MLP 64 -> 64 (ReLU) -> 10 (softmax), trained with scikit-learn on the train part of the
same seeded, stratified split `DigitsDataset` evaluates on (seed 1234, test fraction 0.2), so
the held-out accuracy it prints is what `kenning-hil run` reports. Deterministic: the same
environment regenerates the same file.

The graph uses only Gemm, Relu and Softmax, which map to FULLY_CONNECTED and SOFTMAX when the
model is quantised for the Cortex-M firmware. Input: float32 [batch, 64], pixels / 16.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from kenning_hil.datasets.digits import DigitsDataset  # noqa: E402
from kenning_hil.modelwrappers.onnx import ONNXWrapper  # noqa: E402

DEFAULT_OUTPUT = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"
HIDDEN_UNITS = 64
TRAIN_SEED = 0
MIN_ACCURACY = 0.95
OPSET = 13
IR_VERSION = 7  # the oldest IR that opset 13 allows: loadable by older runtimes and converters


def train(hidden_units: int, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    train_set = DigitsDataset(subset="train")
    (x_train,), (y_train,) = train_set.get_data()
    classifier = MLPClassifier(
        hidden_layer_sizes=(hidden_units,),
        activation="relu",
        solver="adam",
        alpha=1e-3,
        max_iter=600,
        tol=1e-6,
        n_iter_no_change=30,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # a fixed epoch budget is the point: it keeps training time and result fixed
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    return classifier


def build_onnx(classifier, accuracy: float):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    (w1, w2), (b1, b2) = classifier.coefs_, classifier.intercepts_
    num_classes = w2.shape[1]

    def initializer(name: str, array: np.ndarray):
        return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)

    # Gemm with transB=1 keeps weights as [out, in], the FULLY_CONNECTED weight layout
    nodes = [
        helper.make_node("Gemm", ["pixels", "fc1_weight", "fc1_bias"], ["fc1"], transB=1),
        helper.make_node("Relu", ["fc1"], ["fc1_relu"]),
        helper.make_node("Gemm", ["fc1_relu", "fc2_weight", "fc2_bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", w1.shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", num_classes])],
        initializer=[
            initializer("fc1_weight", w1.T),
            initializer("fc1_bias", b1),
            initializer("fc2_weight", w2.T),
            initializer("fc2_bias", b2),
        ],
    )
    model = helper.make_model(
        graph,
        producer_name="kenning-hil scripts/train_digits.py",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(
            "Digits MLP 64-64-10 (scikit-learn MLPClassifier); input: 8x8 pixels / 16, "
            f"float32 [batch, 64]; held-out accuracy {accuracy:.4f}"
        ),
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--hidden-units", type=int, default=HIDDEN_UNITS)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    args = parser.parse_args(argv)

    import onnx
    import onnxruntime

    classifier = train(args.hidden_units, args.seed)
    test_set = DigitsDataset(subset="test")
    (x_test,), (y_test,) = test_set.get_data()
    sklearn_accuracy = float(np.mean(classifier.predict(x_test) == y_test))

    model = build_onnx(classifier, sklearn_accuracy)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.output))

    # check the exported graph, not just the classifier: same probabilities, same accuracy
    session = onnxruntime.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"pixels": x_test})
    if not np.allclose(probabilities, classifier.predict_proba(x_test), atol=1e-5):
        print("error: ONNX outputs differ from the trained classifier", file=sys.stderr)
        return 1
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y_test))

    wrapper = ONNXWrapper(args.output)
    spec_path = wrapper.save_io_specification()
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"train samples: {len(test_set.train_test_split_representations()[0])}")
    print(f"test samples: {len(y_test)}")
    print(f"held-out accuracy: {accuracy:.4f}")
    print(f"model: {args.output} ({args.output.stat().st_size} bytes, sha256 {digest[:16]})")
    print(f"io spec: {spec_path}")
    if accuracy < MIN_ACCURACY:
        print(f"error: accuracy {accuracy:.4f} is below {MIN_ACCURACY}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

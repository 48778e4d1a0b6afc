"""Fixtures for optimizer and runtime tests: the project's digits model and its int8 builds,
made once per test process by the project's own optimizers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DIGITS_ONNX = REPO_ROOT / "models" / "digits" / "digits-mlp.onnx"


def needs(module: str, extra: str):
    """Skips the calling test when an optional framework is missing, naming the extra."""
    return pytest.importorskip(module, reason=f"needs the '{extra}' extra: pip install "
                               f"'kenning-hil[{extra}]'")


@pytest.fixture(scope="session")
def digits_onnx() -> Path:
    if not DIGITS_ONNX.is_file():
        pytest.skip(f"digits model {DIGITS_ONNX} missing (scripts/train_digits.py makes it)")
    return DIGITS_ONNX


@pytest.fixture(scope="session")
def digits_dataset():
    from kenning_hil.datasets.digits import DigitsDataset

    return DigitsDataset()


@pytest.fixture(scope="session")
def digits_int8_tflite(tmp_path_factory, digits_onnx, digits_dataset) -> Path:
    needs("tensorflow", "tensorflow")
    from kenning_hil.optimizers.tflite import TFLiteCompiler

    path = tmp_path_factory.mktemp("tflite") / "digits-int8.tflite"
    TFLiteCompiler(digits_dataset, path).compile(digits_onnx)
    return path


@pytest.fixture(scope="session")
def digits_int8_onnx(tmp_path_factory, digits_onnx, digits_dataset) -> Path:
    needs("onnxruntime", "onnx")
    from kenning_hil.optimizers.onnxruntime_quant import ONNXRuntimeQuantizer

    path = tmp_path_factory.mktemp("ortq") / "digits-int8.onnx"
    ONNXRuntimeQuantizer(digits_dataset, path).compile(digits_onnx)
    return path


@pytest.fixture(scope="session")
def digits_tvm_library(tmp_path_factory, digits_onnx) -> Path:
    needs("tvm", "tvm")
    from kenning_hil.optimizers.tvm import TVMCompiler

    path = tmp_path_factory.mktemp("tvm") / "digits.so"
    TVMCompiler(None, path, target="llvm").compile(digits_onnx)
    return path

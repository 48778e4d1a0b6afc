"""The digits model fixtures of tests/optimizers, shared with the runtime tests."""

from optimizers.conftest import (  # noqa: F401 - fixtures are used by name
    digits_dataset,
    digits_int8_onnx,
    digits_int8_tflite,
    digits_onnx,
    digits_tvm_library,
)

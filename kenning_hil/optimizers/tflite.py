"""TFLiteCompiler ("tflite"): post-training int8 quantisation to a `.tflite` whose input and
output are int8 too, calibrated on samples drawn from the Dataset.

Source formats and why: the TensorFlow Lite converter is the reference int8 path — it emits
int8 inputs/outputs natively (`inference_input_type`), per-channel weights, and the operator
set TFLite Micro and our firmware run; the MLPerf Tiny models were made with it. ONNX models
(the project's own fp32 models) are translated to a TensorFlow function first
(`onnx_to_tensorflow`); Keras files (`.keras`, `.h5`) and SavedModel directories go to the
converter directly. PyTorch via litert-torch was not chosen: it pulls JAX, transformers and
torchao, and int8 model I/O is not its default path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ModelLoadError, one_line
from kenning_hil.core.iospec import io_spec_path, save_io_specification
from kenning_hil.core.optimizer import CalibratedOptimizer
from kenning_hil.formats.tflite_flatbuffer import read_tflite_model

QUANTIZATION_TYPES = ("int8", "float32")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _tensorflow():
    from kenning_hil.optimizers.onnx_to_tensorflow import import_tensorflow

    return import_tensorflow("the TFLite int8 converter")


def model_format_of(path: Path) -> str:
    """"onnx", "keras" or "saved_model", from the path (a directory is a SavedModel)."""
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelLoadError(f"{path}: directory without saved_model.pb is not a SavedModel")
        return "saved_model"
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix in KERAS_SUFFIXES:
        return "keras"
    raise ModelLoadError(
        f"{path}: cannot tell the model format from the suffix "
        f"(expected .onnx, {', '.join(KERAS_SUFFIXES)} or a SavedModel directory)"
    )


def _keep_source_names(spec: dict, source_spec: dict | None) -> dict:
    """Names single inputs/outputs as the source model did: the converter renames them
    ("serving_default_x:0"), and reports are easier to read with the model's own names."""
    if source_spec is None:
        return spec
    for section in ("input", "output"):
        ours, theirs = spec[section], source_spec.get(section, [])
        if len(ours) == 1 and len(theirs) == 1 and theirs[0].get("name"):
            ours[0]["name"] = theirs[0]["name"]
    return spec


class TFLiteCompiler(CalibratedOptimizer):
    """Converts ONNX, Keras or SavedModel models to (int8-quantised) TensorFlow Lite."""

    input_formats = ["onnx", "keras", "saved_model"]
    output_formats = ["tflite"]

    arguments_structure = {
        "quantization": {
            "description": "int8: full-integer quantisation with int8 input/output; "
            "float32: plain conversion",
            "type": str,
            "enum": list(QUANTIZATION_TYPES),
            "default": "int8",
        },
    }

    def __init__(self, dataset: Any = None, compiled_model_path: Path | None = None,
                 quantization: str = "int8", **calibration: Any):
        super().__init__(dataset, compiled_model_path, **calibration)
        self.quantization = quantization

    def get_framework_and_version(self) -> tuple[str, str]:
        return "tensorflow", _tensorflow().__version__

    def compile(self, input_model_path: Path, io_spec: dict | None = None) -> None:
        input_model_path = Path(input_model_path)
        if not input_model_path.exists():
            raise ModelLoadError(f"TFLiteCompiler: input model {input_model_path} does not exist")
        model_format = model_format_of(input_model_path)
        converter, input_shapes = self._converter(input_model_path, model_format)
        tf = _tensorflow()
        if self.quantization == "int8":
            samples = self.calibration_samples(input_model_path, input_shapes)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: iter(samples)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # the converter raises ConverterError, ValueError, ...
            reason = one_line(exc, 500)
            raise ModelLoadError(
                f"{input_model_path}: TensorFlow Lite conversion failed: {reason}"
            ) from exc
        self.compiled_model_path.parent.mkdir(parents=True, exist_ok=True)
        self.compiled_model_path.write_bytes(flatbuffer)
        spec = read_tflite_model(flatbuffer, self.compiled_model_path).io_specification()
        source_spec = io_spec if io_spec is not None else self.load_io_specification(
            input_model_path
        )
        save_io_specification(
            io_spec_path(self.compiled_model_path), _keep_source_names(spec, source_spec)
        )

    # -- converters ----------------------------------------------------------------------------

    def _converter(self, path: Path, model_format: str) -> tuple[Any, list[list[int]]]:
        """(TFLiteConverter, static input shapes in input order) for the source model."""
        tf = _tensorflow()
        if model_format == "onnx":
            from kenning_hil.formats.onnx import load_onnx_model
            from kenning_hil.optimizers.onnx_to_tensorflow import OnnxToTensorFlow

            translator = OnnxToTensorFlow(load_onnx_model(path), path)
            module = tf.Module()
            module.function = translator.concrete_function()
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [module.function], module
            )
            return converter, [list(s) for s in translator.input_shapes.values()]
        if model_format == "keras":
            try:
                model = tf.keras.models.load_model(path, compile=False)
            except Exception as exc:  # noqa: BLE001 - Keras raises many types for bad files
                raise ModelLoadError(f"{path}: cannot load Keras model: {exc}") from exc
            shapes = [[1 if d is None else int(d) for d in t.shape] for t in model.inputs]
            return tf.lite.TFLiteConverter.from_keras_model(model), shapes
        try:
            loaded = tf.saved_model.load(str(path))
            function = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{path}: cannot load SavedModel: {exc}") from exc
        specs = function.structured_input_signature[1]
        shapes = [
            [1 if d is None else int(d) for d in specs[name].shape] for name in sorted(specs)
        ]
        return tf.lite.TFLiteConverter.from_saved_model(str(path)), shapes

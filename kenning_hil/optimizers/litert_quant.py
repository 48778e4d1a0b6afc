"""LiteRTQuantizer ("litert-quant"): a float `.tflite` quantised to full int8 — int8 inputs
and outputs, int8 activations, per-channel int8 weights, int32 biases — with the LiteRT
project's own quantiser (`ai-edge-quantizer`, recipe ``static_wi8_ai8``), calibrated on
samples drawn from the run's Dataset.

Why this quantiser: most models people bring are float32 `.tflite` exports (the MLPerf Tiny
reference models among them), and no converter input other than the `.tflite` itself may be
at hand. ai-edge-quantizer works on the flatbuffer directly (no TensorFlow needed), its 0.10
release pins ai-edge-litert 2.3.0 (the runtime installed here, so nothing else changes), and
its int8 models keep int8 inputs and outputs with only the original operators: the firmware
runs them without QUANTIZE/DEQUANTIZE. Measured on a conv model exported by TensorFlow's
converter: quantised in ~1 s, outputs bit-exact between the firmware interpreter and LiteRT's
reference kernels, accuracy within 0.3 points of the float model (docs/runtimes.md).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError, InputSizeError, ModelLoadError, one_line
from kenning_hil.core.errors import import_optional as _import_optional
from kenning_hil.core.iospec import io_spec_path, save_io_specification
from kenning_hil.core.optimizer import CalibratedOptimizer
from kenning_hil.formats.tflite_flatbuffer import read_tflite_file, read_tflite_model

PACKAGE = "ai-edge-quantizer"
EXTRA = "litert"  # pyproject extra that installs it


def _quantizer_modules():
    quantizer = _import_optional("ai_edge_quantizer.quantizer", EXTRA, "float TFLite → int8")
    recipe = _import_optional("ai_edge_quantizer.recipe", EXTRA, "float TFLite → int8")
    return quantizer, recipe


class LiteRTQuantizer(CalibratedOptimizer):
    """Float32 TFLite → full-integer int8 TFLite (int8 model inputs and outputs)."""

    input_formats = ["tflite"]
    output_formats = ["tflite"]

    arguments_structure = {}

    def get_framework_and_version(self) -> tuple[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return PACKAGE, version(PACKAGE)
        except PackageNotFoundError:
            _quantizer_modules()  # raises the missing-extra error naming the extra
            return PACKAGE, "unknown"

    def compile(self, input_model_path: Path, io_spec: dict | None = None) -> None:
        input_model_path = Path(input_model_path)
        source = read_tflite_file(input_model_path)  # a missing or broken file: one line
        floats = [t for t in source.inputs + source.outputs if t.dtype == "float32"]
        already = [t.name for t in source.inputs if t.dtype in ("int8", "uint8", "int16")]
        if already and not floats:
            raise ModelLoadError(
                f"{input_model_path}: LiteRTQuantizer takes a float32 model; this one is "
                f"quantised already (input '{already[0]}' is {source.inputs[0].dtype}): run "
                f"it without an optimizer"
            )
        quantizer, recipe = _quantizer_modules()
        data = input_model_path.read_bytes()
        signature, names = self._signature(data, input_model_path)
        shapes = [list(t.shape) for t in source.inputs]
        samples = self.calibration_samples(input_model_path, shapes)
        if len(names) != len(shapes):
            raise InputSizeError(
                f"LiteRTQuantizer: {input_model_path} signature '{signature}' has "
                f"{len(names)} inputs, the model {len(shapes)}"
            )
        feeds = {signature: [dict(zip(names, arrays)) for arrays in samples]}
        try:
            with warnings.catch_warnings():
                # calibration keeps every tensor, which LiteRT warns is for debugging only
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
                engine = quantizer.Quantizer(bytearray(data), recipe.static_wi8_ai8())
                calibration = engine.calibrate(feeds, num_threads=min(os.cpu_count() or 1, 4))
                result = engine.quantize(calibration, enable_progress_report=False)
        except (ConfigurationError, InputSizeError):
            raise
        except Exception as exc:  # noqa: BLE001 - the quantiser raises many types
            raise ModelLoadError(
                f"{input_model_path}: ai-edge-quantizer could not quantise the model: "
                f"{one_line(exc, 500)}"
            ) from exc
        flatbuffer = bytes(result.quantized_model)
        self.compiled_model_path.parent.mkdir(parents=True, exist_ok=True)
        self.compiled_model_path.write_bytes(flatbuffer)
        spec = read_tflite_model(flatbuffer, self.compiled_model_path).io_specification()
        _keep_source_names(spec, io_spec or source.io_specification())
        save_io_specification(io_spec_path(self.compiled_model_path), spec)

    @staticmethod
    def _signature(data: bytes, path: Path) -> tuple[str, list[str]]:
        """(signature key, its input names in the model's input order): the quantiser's
        calibration feeds are keyed by signature. A model without signatures (converted from
        a bare graph) cannot be calibrated by it: say so."""
        interpreter_module = _import_optional(
            "ai_edge_litert.interpreter", EXTRA, "float TFLite → int8")
        interpreter = interpreter_module.Interpreter(model_content=data)
        signatures = interpreter.get_signature_list()
        if not signatures:
            raise ModelLoadError(
                f"{path}: LiteRTQuantizer needs a model with a signature (TensorFlow's "
                f"converter writes 'serving_default'); this one has none"
            )
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        runner = interpreter.get_signature_runner(key)
        by_index = {detail["index"]: name for name, detail in runner.get_input_details().items()}
        order = [detail["index"] for detail in interpreter.get_input_details()]
        return key, [by_index[i] for i in order if i in by_index]


def _keep_source_names(spec: dict, source_spec: dict | None) -> None:
    """Names the quantised model's inputs and outputs as the source spec did, one to one."""
    if not source_spec:
        return
    for section in ("input", "output"):
        ours, theirs = spec[section], source_spec.get(section, [])
        if len(ours) == len(theirs):
            for entry, original in zip(ours, theirs):
                if original.get("name"):
                    entry["name"] = original["name"]

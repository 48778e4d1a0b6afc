"""Kenning's spelling of scenario entries, mapped onto ours: the one alias table.

A Kenning scenario names classes by dotted path (``kenning.runtimes.onnx.ONNXRuntime``) or
by exact class name (``ONNXRuntime``), and parameters by Kenning's JSON keys
(``dataset_root``, ``inference_batch_size``, TFLiteCompiler ``target``, ...). This module
says what each of those is here (facts: ``shared/reference/kenning-scenarios.md``):

- `KENNING_CLASSES`: Kenning class path -> our registry name, per kind;
- `NOT_IMPLEMENTED`: Kenning classes we have no counterpart of, and what we offer instead;
- `PARAMETER_ALIASES`: per class of ours (and its subclasses), Kenning parameter -> how it
  translates (`translate_parameters`), keyed by our class path and looked up along the MRO,
  so a user's own Dataset subclass accepts ``dataset_root`` too;
- `resolve_resource_uri`: ``kenning:///a/b`` against the models path (no downloads).

Our own names stay the documented spelling; aliases are translated where blocks are built
(`blocks.entries.build_block`) and by scenario validation, with the same functions.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KENNING_CLASSES: dict[str, dict[str, str]] = {
    "dataset": {},
    "model_wrapper": {
        "kenning.modelwrappers.frameworks.pytorch.PyTorchWrapper": "torch",
    },
    "optimizer": {
        "kenning.optimizers.tflite.TFLiteCompiler": "tflite",
        "kenning.optimizers.tvm.TVMCompiler": "tvm",
    },
    "runtime": {
        "kenning.runtimes.onnx.ONNXRuntime": "onnxruntime",
        # LiteRT on the host; on a board target the firmware runs the model (`platform`)
        "kenning.runtimes.tflite.TFLiteRuntime": "litert",
        "kenning.runtimes.tvm.TVMRuntime": "tvm",
    },
    "protocol": {
        "kenning.protocols.network.NetworkProtocol": "network",
        "kenning.protocols.uart.UARTProtocol": "uart",
    },
    # KenningFlow runners (a flow file's "type")
    "runner": {
        "kenning.runners.modelruntime_runner.ModelRuntimeRunner": "model-runtime-runner",
    },
}
"""Kenning classes with a counterpart here: the dotted path, and (its last part) the short
name, resolve to our registry name."""

NOT_IMPLEMENTED: dict[str, str] = {
    "kenning.optimizers.onnx.ONNXCompiler":
        "an .onnx model needs no conversion: name it in model_wrapper (ONNXWrapper); "
        "onnxruntime-quant quantises ONNX to ONNX",
    "kenning.runtimes.pytorch.PyTorchRuntime":
        "PyTorchWrapper exports the model to ONNX: use runtime ONNXRuntime",
    "kenning.datasets.pet_dataset.PetDataset":
        "datasets here: digits (DigitsDataset), eembc (EEMBCDataset, MLPerf Tiny), random, "
        "or your own Dataset class (docs/own-classes.md)",
    "kenning.datasets.random_dataset.RandomizedClassificationDataset":
        "random (RandomDataset) makes seeded inputs from an io spec, without labels",
    "kenning.modelwrappers.frameworks.tensorflow.TensorFlowWrapper":
        "convert the Keras model to ONNX or TFLite and use ONNXWrapper or TFLiteWrapper",
    "kenning.optimizers.tensorflow_pruning.TensorFlowPruningOptimizer":
        "prune before exporting the model; optimizers here: tflite, tvm, onnxruntime-quant",
    "kenning.optimizers.tensorflow_clustering.TensorFlowClusteringOptimizer":
        "cluster before exporting the model; optimizers here: tflite, tvm, onnxruntime-quant",
    "kenning.optimizers.iree.IREECompiler": "optimizers here: tflite, tvm, onnxruntime-quant",
    "kenning.runtimes.iree.IREERuntime": "runtimes here: onnxruntime, litert, tflm, tvm",
    "kenning.dataproviders.camera_dataprovider.CameraDataProvider":
        "data providers here: dataset-provider, files-provider (a folder of images, .npy or "
        "EEMBC .bin), tcp-provider (a stream of frames)",
    "kenning.outputcollectors.detection_visualizer.DetectionVisualizer":
        "collectors here: jsonlines, summary, classification-images",
    "kenning.outputcollectors.name_printer.NamePrinter":
        "collectors here: summary (a live line with the last class), jsonlines",
    "kenning.outputcollectors.real_time_visualizers.RealTimeDetectionVisualizer":
        "collectors here: jsonlines, summary, classification-images (no GUI)",
}
"""Kenning classes with no counterpart, and the one-line alternative an error names."""

KENNING_TOP_LEVEL = {
    "platform": "mapped onto a target (a board we describe) or refused",
    "runtime_builder": "the firmware of a board target is built by kenning-hil",
    "report": "the measurements file is written (--output or parameters.measurements[0])",
    "inference_loop": "kenning-hil runs samples in order (Kenning's sequential loops)",
    "automl": "only for Kenning's `kenning automl`",
    "optimization_parameters": "only for Kenning's grid-search runner",
    "dataconverter": "kenning-hil converts with the model's io spec",
}
"""Kenning's top-level keys beyond ours, and what becomes of each here."""


class ParameterProblem(Exception):
    """A Kenning parameter whose value has no meaning here (said as one line)."""


@dataclass(frozen=True)
class Alias:
    """How one Kenning parameter becomes ours: `translate(value)` -> our parameters (empty
    when the value changes nothing here), or ParameterProblem."""

    translate: Callable[[Any], dict[str, Any]]
    ours: str = ""  # the parameter of ours with the same meaning ("" when none)
    # Kenning's name is ours too, with values that mean something else here (a negative
    # timeout): translated although the class has a parameter of that name
    same_name: bool = False


def renamed(ours: str) -> Alias:
    return Alias(lambda value: {ours: value}, ours)


def mapped(ours: str, values: Mapping[Any, Any], why: str = "") -> Alias:
    """A Kenning value -> our value; other values are refused, naming the accepted ones."""

    def translate(value: Any) -> dict[str, Any]:
        if _hashable(value) and value in values:
            return {ours: values[value]}
        accepted = ", ".join(repr(v) for v in values)
        raise ParameterProblem(f"{value!r} is not supported here (accepted: {accepted})"
                               + (f"; {why}" if why else ""))

    return Alias(translate, ours)


def without_effect(*accepted: Any, why: str) -> Alias:
    """A parameter whose `accepted` values are what kenning-hil does anyway; others refused."""

    def translate(value: Any) -> dict[str, Any]:
        if _hashable(value) and value in accepted:
            return {}
        raise ParameterProblem(f"{value!r} is not supported here: {why}")

    return Alias(translate)


def ignored() -> Alias:
    """A parameter that does not change any result here (a read buffer size, training
    options when nothing is trained)."""
    return Alias(lambda value: {})


def _timeout(value: Any) -> dict[str, Any]:
    # Kenning: a negative timeout waits forever; a day is forever for a test
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"timeout": float(value) if value >= 0 else 86400.0}
    raise ParameterProblem(f"must be a number of seconds, got {value!r}")


def _tvm_device(value: Any) -> dict[str, Any]:
    devices = {"cpu": "cpu", "llvm": "cpu", "cuda": "cuda"}
    if isinstance(value, str) and value in devices:
        return {"device": devices[value]}
    raise ParameterProblem(f"device {value!r} is not supported here (accepted: cpu, llvm, cuda)")


_TRAINING = "kenning-hil does not retrain (no quantization-aware training)"

PARAMETER_ALIASES: dict[str, dict[str, Alias]] = {
    "kenning_hil.core.dataset.Dataset": {
        "dataset_root": renamed("root"),
        "inference_batch_size": renamed("batch_size"),
        "reduce_dataset": without_effect(1, 1.0, why="use `kenning-hil run --samples N`"),
    },
    "kenning_hil.core.model.ModelWrapper": {},
    "kenning_hil.core.optimizer.Optimizer": {
        "location": without_effect("host", why="optimizers run on the host here"),
    },
    "kenning_hil.core.optimizer.CalibratedOptimizer": {
        "dataset_percentage": renamed("calibration_percentage"),
    },
    "kenning_hil.optimizers.tflite.TFLiteCompiler": {
        "target": mapped("quantization", {"int8": "int8", "default": "float32"},
                         "float16 and edgetpu conversions are not implemented"),
        # the conversion here has input and output of its own type: int8 with int8, float32
        # with float32 (translate_parameters refuses a mix, e.g. int8 with float32 input)
        "inference_input_type": mapped("quantization", {"int8": "int8", "float32": "float32"},
                                       "uint8 input is not implemented"),
        "inference_output_type": mapped("quantization", {"int8": "int8", "float32": "float32"},
                                        "uint8 output is not implemented"),
        "model_framework": without_effect("any", "onnx", "keras",
                                          why="the input format is told by the model file"),
        "quantization_aware_training": without_effect(False, why=_TRAINING),
        "epochs": ignored(),
        "batch_size": ignored(),
        "optimizer": ignored(),
        "disable_from_logits": ignored(),
        "save_to_zip": without_effect(False, why="the .tflite file is written alone"),
        "use_tf_select_ops": without_effect(False, why="full TensorFlow ops run on no target "
                                            "here"),
        "resolver_template_path": without_effect(None, why="the firmware resolves every "
                                                 "operator it implements"),
        "resolver_output_path": without_effect(None, why="the firmware resolves every "
                                               "operator it implements"),
    },
    "kenning_hil.optimizers.tvm.TVMCompiler": {
        "model_framework": without_effect(
            "any", "onnx", why="TVMCompiler here reads ONNX models only (Relax ONNX frontend)"),
        "target_host": without_effect(None, why="host code is built for the target itself"),
        "target_microtvm_board": without_effect(
            None, why="microTVM is not supported; run the TFLite model on a board target"),
        "zephyr_header_template": without_effect(None, why="microTVM is not supported"),
        "zephyr_llext_source_template": without_effect(None, why="microTVM is not supported"),
        # the Relax VM runs the compiled module either way
        "compile_use_vm": ignored(),
        "output_conversion_function": without_effect("default", why="ONNX outputs are a list"),
        "use_fp16_precision": without_effect(False, why="float16 is not supported"),
        "use_int8_precision": without_effect(False, why="quantise with onnxruntime-quant first"),
        "use_tensorrt": without_effect(False, why="TensorRT is not supported"),
        "dataset_percentage": ignored(),  # calibration share of use_int8_precision only
        "module_name": without_effect(None, "", why="the Relax entry function is 'main'"),
        "libdarknet_path": ignored(),
    },
    "kenning_hil.core.runtime.Runtime": {
        "batch_size": without_effect(
            1, why="set the dataset's inference_batch_size; runtimes run the batches it makes"),
        "llext_binary_path": without_effect(None, why="Zephyr LLEXT is not supported"),
    },
    "kenning_hil.runtimes.litert.LiteRTRuntime": {
        "delegates_list": without_effect(None, [], why="delegates are not supported"),
    },
    "kenning_hil.runtimes.tvm.TVMRuntime": {
        "target_device_context": Alias(_tvm_device, "device"),
        "target_device_context_id": without_effect(0, why="device 0 is used"),
        "runtime_use_vm": ignored(),
    },
    "kenning_hil.protocols.bytes_protocol.BytesProtocol": {
        "timeout": Alias(_timeout, "timeout", same_name=True),
        # checksums are always verified (0x00, not computed, is accepted over TCP) and retried
        "error_recovery": ignored(),
    },
    "kenning_hil.protocols.bytes_protocol.NetworkProtocol": {
        "packet_size": ignored(),  # bytes per socket read: no effect on what is exchanged
    },
}


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def aliases_of(cls: type) -> dict[str, Alias]:
    """The Kenning parameter aliases `cls` accepts: those of its bases, the nearest wins."""
    merged: dict[str, Alias] = {}
    for klass in reversed(cls.__mro__):
        merged.update(PARAMETER_ALIASES.get(class_path(klass), {}))
    return merged


def translate_parameters(cls: type, parameters: Mapping[str, Any],
                         own: Iterable[str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`parameters` with Kenning names translated to ours (for a class with parameters `own`,
    which win: a name of ours is never treated as an alias). Returns (parameters, problems),
    a problem being (parameter, message)."""
    own = set(own)
    aliases = aliases_of(cls)
    result: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    translated_from: dict[str, str] = {}
    for name, value in parameters.items():
        alias = aliases.get(name)
        if alias is None or (name in own and not alias.same_name):
            result[name] = value
            continue
        try:
            updates = alias.translate(value)
        except ParameterProblem as exc:
            problems.append((name, f"Kenning's {name}: {exc}"))
            continue
        for ours, ours_value in updates.items():
            earlier = translated_from.get(ours)
            given = parameters.get(ours) if ours != name else None
            if ours in parameters and ours != name and given != ours_value:
                problems.append((name, f"Kenning's {name}: {value!r} means {ours} "
                                       f"{ours_value!r}, but {ours} is {given!r}"))
            elif earlier is not None and result[ours] != ours_value:
                problems.append((name, f"Kenning's {name}: {value!r} means {ours} "
                                       f"{ours_value!r}, but {earlier} {parameters[earlier]!r} "
                                       f"means {result[ours]!r}"))
            else:
                translated_from.setdefault(ours, name)
                result[ours] = ours_value
    return result, problems


# ------------------------------------------------------------------------------- classes


def kenning_class(kind: str, name: str) -> str | None:
    """Our registry name for a Kenning class path or short name of `kind`, else None."""
    table = KENNING_CLASSES.get(kind, {})
    if name in table:
        return table[name]
    if "." not in name:
        for path, ours in table.items():
            if path.rpartition(".")[2] == name:
                return ours
    return None


def not_implemented(name: str) -> str | None:
    """'Kenning's X is not implemented here; instead: ...' for a Kenning class we lack."""
    for path, instead in NOT_IMPLEMENTED.items():
        if name == path or ("." not in name and path.rpartition(".")[2] == name):
            return f"Kenning's {path.rpartition('.')[2]} ({path}) is not implemented in " \
                   f"kenning-hil; instead: {instead}"
    return None


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` of `candidates` close to `name` (difflib), also comparing case-folded."""
    candidates = list(dict.fromkeys(candidates))
    folded = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    for match in difflib.get_close_matches(name.lower(), list(folded), n=n, cutoff=0.6):
        if folded[match] not in found:
            found.append(folded[match])
    return found[:n]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    matches = close_matches(name, candidates)
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""


# ------------------------------------------------------------------------------- resources

KENNING_URI = "kenning://"


def resolve_resource_uri(value: str, search: Sequence[Path]) -> str | None:
    """The local file a ``kenning:///a/b`` URI names: ``a/b`` in the first of `search` (the
    models path) that holds it, also without a leading ``models/`` (Kenning's URIs start
    there). None when no directory holds it; `value` itself when it is no such URI. Nothing
    is downloaded: kenning-hil runs offline."""
    if not value.startswith(KENNING_URI):
        return value
    relative = value[len(KENNING_URI):].lstrip("/")
    tries = [relative]
    if relative.startswith("models/"):
        tries.append(relative[len("models/"):])
    for directory in search:
        for candidate in tries:
            path = Path(directory) / candidate
            if path.exists():
                return str(path.resolve())
    return None

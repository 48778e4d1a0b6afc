"""Short names of the classes a scenario or the command line may pick, per kind.

A scenario's ``"type"`` is one of these names, a registered class's own name
(``DigitsDataset``, as Kenning's short names are class names), a Kenning class name or path
with a counterpart here (`kenning_names.KENNING_CLASSES`), or a dotted class path
(``package.module.Class``). Classes are imported only when used, so a missing optional
framework affects only the scenarios that need it. To register a class, add one line to
its kind's table.
"""

from __future__ import annotations

from kenning_hil.blocks.kenning_names import did_you_mean, kenning_class, not_implemented
from kenning_hil.core.args import load_class
from kenning_hil.core.errors import ConfigurationError

REGISTRY: dict[str, dict[str, str]] = {
    "dataset": {
        "digits": "kenning_hil.datasets.digits.DigitsDataset",
        "random": "kenning_hil.datasets.random.RandomDataset",
        "eembc": "kenning_hil.datasets.mlperf_tiny.EEMBCDataset",
    },
    "model_wrapper": {
        "onnx": "kenning_hil.modelwrappers.onnx.ONNXWrapper",
        "tflite": "kenning_hil.modelwrappers.tflite.TFLiteWrapper",
        "torch": "kenning_hil.modelwrappers.torch.PyTorchWrapper",
    },
    "optimizer": {
        "onnxruntime-quant": "kenning_hil.optimizers.onnxruntime_quant.ONNXRuntimeQuantizer",
        "litert-quant": "kenning_hil.optimizers.litert_quant.LiteRTQuantizer",
        "tflite": "kenning_hil.optimizers.tflite.TFLiteCompiler",
        "tvm": "kenning_hil.optimizers.tvm.TVMCompiler",
    },
    "runtime": {
        "onnxruntime": "kenning_hil.runtimes.onnxruntime.ONNXRuntime",
        "echo": "kenning_hil.runtimes.echo.EchoRuntime",
        "litert": "kenning_hil.runtimes.litert.LiteRTRuntime",
        "tflm": "kenning_hil.runtimes.tflm.TFLMRuntime",
        "tvm": "kenning_hil.runtimes.tvm.TVMRuntime",
    },
    "protocol": {
        "tcp": "kenning_hil.protocols.bytes_protocol.NetworkProtocol",
        "network": "kenning_hil.protocols.bytes_protocol.NetworkProtocol",
        "uart": "kenning_hil.protocols.bytes_protocol.UARTProtocol",
    },
    # KenningFlow runners (flow files' "type"): data providers, the model runner, collectors
    "runner": {
        "dataset-provider": "kenning_hil.dataproviders.dataset.DatasetProvider",
        "files-provider": "kenning_hil.dataproviders.files.FilesProvider",
        "tcp-provider": "kenning_hil.dataproviders.tcp.TCPStreamProvider",
        "model-runtime-runner": "kenning_hil.flows.modelruntimerunner.ModelRuntimeRunner",
        "jsonlines": "kenning_hil.outputcollectors.jsonlines.JSONLinesCollector",
        "summary": "kenning_hil.outputcollectors.summary.LiveSummaryCollector",
        "classification-images": "kenning_hil.outputcollectors.images.ClassificationImageCollector",
    },
}

KINDS = tuple(REGISTRY)


def registered_names(kind: str) -> list[str]:
    """The short names registered for `kind`, sorted."""
    return sorted(_table(kind))


def names_class(kind: str, name: str) -> bool:
    """Whether `name` is a name `resolve_class_path` accepts for `kind`, decided without
    importing anything."""
    return name in _table(kind) or "." in name or _short_name(kind, name) is not None


def resolve_class_path(kind: str, name: str) -> str:
    """The dotted class path for a short name, a registered class's own name or a Kenning
    class with a counterpart here; `name` itself when it is another dotted path. A Kenning
    class we lack is an error naming what we offer instead."""
    table = _table(kind)
    if name in table:
        return table[name]
    ours = _short_name(kind, name)
    if ours is not None:
        return table[ours]
    missing = not_implemented(name)
    if missing is not None:
        raise ConfigurationError(missing)
    if name.startswith("kenning."):
        raise ConfigurationError(
            f"Kenning's {kind} class '{name}' is not implemented in kenning-hil; {kind} types "
            f"here: {', '.join(sorted(table))}")
    if "." in name:
        return name
    known = ", ".join(sorted(table)) or "none registered"
    hint = did_you_mean(name, type_names(kind)).strip(" ()")
    raise ConfigurationError(
        f"unknown {kind} type '{name}' (known: {known}; or a dotted class path)"
        + (f"; {hint}" if hint else "")
    )


def type_names(kind: str) -> list[str]:
    """Every short name `resolve_class_path` takes for `kind`: registered names, the classes'
    own names and Kenning's names of the classes we have."""
    from kenning_hil.blocks.kenning_names import KENNING_CLASSES

    table = _table(kind)
    names = [*table, *(path.rpartition(".")[2] for path in table.values())]
    names += [path.rpartition(".")[2] for path in KENNING_CLASSES.get(kind, {})]
    return list(dict.fromkeys(names))


def _short_name(kind: str, name: str) -> str | None:
    """Our registry name for a class's own name (``DigitsDataset``) or a Kenning class."""
    table = _table(kind)
    if "." not in name:
        for short, path in table.items():
            if path.rpartition(".")[2] == name:
                return short
    return kenning_class(kind, name)


def resolve_class(kind: str, name: str, base: type | None = None) -> type:
    """Imports the class for a short name or dotted path; checks it subclasses `base`."""
    cls = load_class(resolve_class_path(kind, name))
    if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
        raise ConfigurationError(
            f"{kind} type '{name}' is not a {base.__name__ if base else 'class'}"
        )
    return cls


def _table(kind: str) -> dict[str, str]:
    if kind not in REGISTRY:
        raise ConfigurationError(f"unknown kind '{kind}' (kinds: {', '.join(KINDS)})")
    return REGISTRY[kind]

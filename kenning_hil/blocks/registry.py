"""Short names of the classes a scenario or the command line may pick, per kind.

A scenario's ``"type"`` is one of these names or a dotted class path
(``package.module.Class``). Classes are imported only when used, so a missing optional
framework affects only the scenarios that need it. To register a class, add one line to
its kind's table.
"""

from __future__ import annotations

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
    """Whether `name` is a short name registered for `kind` or a dotted class path (what
    `resolve_class_path` accepts), decided without importing anything."""
    return name in _table(kind) or "." in name


def resolve_class_path(kind: str, name: str) -> str:
    """The dotted class path for a short name, or `name` itself when it is a dotted path."""
    table = _table(kind)
    if name in table:
        return table[name]
    if "." in name:
        return name
    known = ", ".join(sorted(table)) or "none registered"
    raise ConfigurationError(
        f"unknown {kind} type '{name}' (known: {known}; or a dotted class path)"
    )


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

"""TVMCompiler ("tvm"): ONNX → Relax (`tvm.relax.frontend.onnx.from_onnx`) → `tvm.compile`,
exported as a shared library that the Relax VM loads (`kenning_hil.runtimes.tvm`).

Targets are TVM target strings, as Kenning and TVM users write them ("llvm",
"llvm -mcpu=core-avx2", "cuda -arch=sm_87 -libs=cudnn,cublas"), or dicts
({"kind": "llvm", "mcpu": "skylake-avx512"}); TVM 0.27 parses no "-flag=value" strings, so
`target_spec` turns the flags into the dict TVM takes. Kenning's `target_attrs` are flags
appended to the target. Dynamic dimensions of the ONNX graph (a named batch dimension) stay
symbolic, so one library serves any batch size. `compiled_model_path` ending in ``.tar``
writes the object files as a tar (Kenning's TVMCompiler convention), anything else a
shared library; TVMRuntime loads both.

For llvm, TVM's default `tvm.compile` pipeline neither fuses operators nor schedules kernels
(plain single-threaded loops: ~25x slower than ONNX Runtime on a ResNet-18), so `cpu_pipeline`
fuses them and applies the CPU `dlight` rules plus `tvm_cpu_schedule.CPUFallback` (parallel,
vectorized loops), without tuning. Plain "llvm" code runs on any x86-64 CPU (SSE2 only);
"llvm -mcpu=skylake-avx512" uses AVX-512 (TVM's LLVM rejects mcpu "native" with the wheel's
triple); such a library needs that CPU, and the compile cache key holds the target string,
not the host: don't share it between hosts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError, ModelLoadError, one_line
from kenning_hil.core.errors import import_optional as _import_optional
from kenning_hil.core.iospec import io_spec_path, save_io_specification
from kenning_hil.core.optimizer import Optimizer


def _tvm():
    return _import_optional("tvm", "tvm", "TVM compilation")


LIST_ATTRIBUTES = ("libs", "keys", "mattr", "device_capabilities")
"""Target attributes that are lists in TVM: a flag value ``a,b`` is split."""


def target_spec(target: str | dict, attrs: str = "") -> str | dict:
    """What `tvm.target.Target` takes for a target given as a TVM string with flags
    (``"llvm -mcpu=core-avx2"``), a JSON dict as a string, or a dict; `attrs` are more flags
    (Kenning's `target_attrs`). A string without flags stays a string (a kind or a tag)."""
    if isinstance(target, dict):
        spec: dict = dict(target)
        words = attrs.split()
    else:
        text = str(target).strip()
        if text.startswith("{"):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"TVMCompiler: target is not valid JSON: {exc}") from exc
            words = attrs.split()
        else:
            words = [*text.split(), *attrs.split()]
            if not words:
                raise ConfigurationError("TVMCompiler: target is empty")
            if words[0].startswith("-"):
                raise ConfigurationError(
                    f"TVMCompiler: target {text!r} must start with a kind (llvm, cuda, ...)")
            if len(words) == 1:
                return words[0]
            spec = {"kind": words[0]}
            words = words[1:]
    for word in words:
        if not word.startswith("-") or word == "-":
            raise ConfigurationError(
                f"TVMCompiler: target flag {word!r} must look like -name=value or -name")
        name, sep, value = word.lstrip("-").partition("=")
        if not sep:
            spec[name] = True
        elif name in LIST_ATTRIBUTES:
            spec[name] = [v for v in value.split(",") if v]
        else:
            spec[name] = int(value) if value.lstrip("-").isdigit() else value
    return spec


def parse_target(target: str | dict, attrs: str = "") -> Any:
    """A `tvm.target.Target` from a target string (with flags), a JSON dict or a dict;
    ConfigurationError if bad."""
    tvm = _tvm()
    spec = target_spec(target, attrs)
    try:
        return tvm.target.Target(spec)
    except Exception as exc:  # noqa: BLE001 - TVM raises its own error types
        raise ConfigurationError(
            f"TVMCompiler: invalid TVM target {target!r}: {one_line(exc, 300)}"
        ) from exc


def is_gpu_target(target: Any) -> bool:
    return target.kind.name in ("cuda", "rocm", "vulkan", "metal", "opencl")


def cpu_pipeline(target: Any) -> Any:
    """The Relax pipeline for an llvm target: TVM's CPU backend passes (legalize, fuse) with the
    kernels scheduled (`dlight`'s CPU GEMV rule, then `CPUFallback`) before lowering."""
    tvm = _tvm()
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
    from tvm.s_tir import dlight

    from kenning_hil.optimizers.tvm_cpu_schedule import cpu_fallback_rule

    passes = (
        cpu_generic.library_dispatch_passes(target)
        + cpu_generic.legalize_passes(target)
        # dlight's CPU Reduction rule would also claim convolutions (one thread, no vectors)
        + [dlight.ApplyDefaultSchedule(dlight.cpu.GEMV(), cpu_fallback_rule())]
        + cpu_generic.dataflow_lower_passes(target)
        + cpu_generic.finalize_passes(target)
    )

    @tvm.transform.module_pass(opt_level=0, name="KenningHILCPUPipeline")
    def _pipeline(mod: Any, _ctx: Any) -> Any:
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline


def unsupported_onnx_operators(model: Any) -> list[str]:
    """ONNX operator types of `model` that TVM's Relax ONNX frontend has no converter for."""
    from tvm.relax.frontend.onnx import onnx_frontend

    get_map = getattr(onnx_frontend, "_get_convert_map", None)
    if get_map is None:  # private helper gone: let from_onnx report the operator itself
        return []
    table = get_map()
    return sorted({node.op_type for node in model.graph.node if node.op_type not in table})


class TVMCompiler(Optimizer):
    """Compiles ONNX models with Apache TVM (Relax) into a shared library."""

    input_formats = ["onnx"]
    output_formats = ["tvm"]

    arguments_structure = {
        "target": {
            "description": "TVM target: a kind or a string with flags ('llvm', "
            "'llvm -mcpu=core-avx2', 'cuda -arch=sm_87'), or a dict such as "
            "{\"kind\": \"llvm\", \"mcpu\": \"skylake-avx512\"} (CPU-specific code)",
            "type": object,
            "default": "llvm",
        },
        "target_attrs": {
            "description": "More target flags, appended to the target (Kenning's "
            "target_attrs), e.g. '-mcpu=core-avx2'",
            "type": str,
            "default": "",
        },
        "opt_level": {
            "description": "TVM pass optimisation level (0-3)",
            "type": int,
            "enum": [0, 1, 2, 3],
            "default": 3,
        },
        "conv2d_data_layout": {
            "description": "Rewrite the data layout of 2-D convolutions (e.g. NHWC, NCHW; "
            "empty: as the model has it)",
            "type": str,
            "default": "",
        },
        "conv2d_kernel_layout": {
            "description": "Rewrite the kernel layout of 2-D convolutions (e.g. OIHW, HWIO; "
            "empty: the default for the data layout)",
            "type": str,
            "default": "",
        },
    }

    def __init__(self, dataset: Any = None, compiled_model_path: Path | None = None,
                 target: str | dict = "llvm", target_attrs: str = "", opt_level: int = 3,
                 conv2d_data_layout: str = "", conv2d_kernel_layout: str = ""):
        super().__init__(dataset, compiled_model_path)
        if not isinstance(target, (str, dict)):
            raise ConfigurationError(
                f"TVMCompiler: target must be a string or a dict, got {target!r}")
        target_spec(target, target_attrs)  # a malformed target is refused before compiling
        self.target = target
        self.target_attrs = target_attrs
        self.opt_level = opt_level
        self.conv2d_data_layout = conv2d_data_layout
        self.conv2d_kernel_layout = conv2d_kernel_layout

    def get_framework_and_version(self) -> tuple[str, str]:
        return "tvm", _tvm().__version__

    def compile(self, input_model_path: Path, io_spec: dict | None = None) -> None:
        from kenning_hil.formats.onnx import load_onnx_and_io_spec

        tvm = _tvm()
        input_model_path = Path(input_model_path)
        model, io_spec = load_onnx_and_io_spec(input_model_path, io_spec, self)
        target = parse_target(self.target, self.target_attrs)
        missing = unsupported_onnx_operators(model)
        if missing:
            raise ModelLoadError(
                f"{input_model_path}: TVM's ONNX frontend has no converter for operator(s) "
                f"{', '.join(missing)}"
            )
        from tvm.relax.frontend.onnx import from_onnx

        try:
            module = from_onnx(model, keep_params_in_input=False)
            if self.conv2d_data_layout:
                kernel = self.conv2d_kernel_layout or "default"
                module = tvm.relax.transform.ConvertLayout(
                    {"relax.nn.conv2d": [self.conv2d_data_layout, kernel]})(module)
            # The default Relax pipeline of a GPU target already schedules its kernels (dlight).
            pipeline = cpu_pipeline(target) if target.kind.name == "llvm" else "default"
            with tvm.transform.PassContext(opt_level=self.opt_level):
                executable = tvm.compile(module, target=target, relax_pipeline=pipeline)
        except Exception as exc:  # noqa: BLE001 - TVM raises TVMError and friends
            raise ModelLoadError(
                f"{input_model_path}: TVM compilation for target '{self.target}' failed: "
                f"{one_line(exc, 500)}"
            ) from exc
        self.compiled_model_path.parent.mkdir(parents=True, exist_ok=True)
        executable.export_library(str(self.compiled_model_path))
        save_io_specification(io_spec_path(self.compiled_model_path), io_spec)


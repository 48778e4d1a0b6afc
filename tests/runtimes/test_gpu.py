"""GPU runs: the digits model and a ResNet-18-sized CNN (random weights) on ONNX Runtime's
CUDA provider and on TVM compiled for `cuda`, checked against the CPU. Skipped with the reason
where there is no GPU, no CUDA-enabled onnxruntime, or no TVM CUDA device."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from kenning_hil.modelwrappers.onnx import ONNXWrapper
from kenning_hil.targets.gpu import gpu_visibility

pytestmark = pytest.mark.gpu

REPO_ROOT = Path(__file__).resolve().parents[2]

if not gpu_visibility().visible:  # the same answer as the gpu marker's skip
    pytest.skip(gpu_visibility().describe(), allow_module_level=True)


def _resnet18(directory: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "resnet18_onnx", REPO_ROOT / "benchmarks" / "resnet18_onnx.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("resnet18_onnx", module)
    spec.loader.exec_module(module)
    return module.save_resnet18(directory / "resnet18.onnx")


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory) -> Path:
    pytest.importorskip("onnx", reason="needs the 'onnx' extra")
    return _resnet18(tmp_path_factory.mktemp("resnet"))


def _cuda_onnxruntime():
    ort = pytest.importorskip("onnxruntime", reason="needs the 'onnx' extra")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider: pip uninstall -y onnxruntime "
                    "&& pip install onnxruntime-gpu")
    from kenning_hil.runtimes.onnxruntime import ONNXRuntime

    return ONNXRuntime


def _cpu_reference(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_onnxruntime_cuda_digits_accuracy_equals_cpu(digits_onnx, digits_dataset):
    ONNXRuntime = _cuda_onnxruntime()
    wrapper = ONNXWrapper(digits_onnx, digits_dataset)
    gpu = ONNXRuntime(execution_providers=["CUDAExecutionProvider"])
    cpu = ONNXRuntime(execution_providers=["CPUExecutionProvider"])
    gpu_accuracy = gpu.run_locally(digits_dataset, wrapper, digits_onnx)["accuracy"]
    assert gpu.session.get_providers()[0] == "CUDAExecutionProvider"
    assert gpu_accuracy == cpu.run_locally(digits_dataset, wrapper, digits_onnx)["accuracy"]


def test_onnxruntime_cuda_resnet18_matches_cpu(resnet18):
    ONNXRuntime = _cuda_onnxruntime()
    runtime = ONNXRuntime(execution_providers=["CUDAExecutionProvider"])
    runtime.model_path = resnet18
    runtime.prepare_local()
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    (logits,) = runtime.run_batch([x])
    # TF32 convolutions on recent GPUs: compare at a relative scale
    expected = _cpu_reference(resnet18, x)
    assert np.abs(logits - expected).max() <= 2e-2 * np.abs(expected).max()


def _tvm_cuda():
    tvm = pytest.importorskip("tvm", reason="needs the 'tvm' extra")
    if not tvm.cuda(0).exist:
        pytest.skip("TVM sees no CUDA device (apache-tvm built without CUDA or no driver)")
    if shutil.which("nvcc") is None:
        pytest.skip("TVM compiles CUDA kernels with nvcc, which is not on PATH")


@pytest.mark.parametrize("which", ["digits", "resnet18"])
def test_tvm_cuda_matches_cpu(which, digits_onnx, tmp_path, request):
    _tvm_cuda()
    from kenning_hil.optimizers.tvm import TVMCompiler
    from kenning_hil.runtimes.tvm import TVMRuntime

    model = digits_onnx if which == "digits" else request.getfixturevalue("resnet18")
    library = tmp_path / f"{which}-cuda.so"
    TVMCompiler(None, library, target="cuda").compile(model)
    runtime = TVMRuntime(device="cuda")
    runtime.model_path = library
    runtime.prepare_local()
    rng = np.random.default_rng(1)
    shape = (3, 64) if which == "digits" else (1, 3, 224, 224)
    x = rng.random(shape, dtype=np.float32)
    (result,) = runtime.run_batch([x])
    expected = _cpu_reference(model, x)
    assert np.abs(result - expected).max() <= 1e-3 * max(1.0, np.abs(expected).max())

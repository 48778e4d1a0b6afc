"""What the compile cache key covers (real ONNX optimizer, real cache, real models): an
unchanged request hits the cache; another model wrapper type or parameter, another framework
version, or another content of a data file a parameter names compiles again."""

import json
import shutil
from pathlib import Path

import pytest

import kenning_hil.run.compile_cache
from kenning_hil.run.compile_cache import CompileCache
from kenning_hil.run.harness import Harness
from kenning_hil.targets.sessions import SessionManager
from tests.plugin import compile_blocks
from tests.plugin.conftest import DIGITS, REPO

OPTIMIZER = "tests.plugin.compile_blocks.CalibrationTagOptimizer"


@pytest.fixture
def harness(tmp_path):
    compile_blocks.COMPILES.clear()
    cache = CompileCache(tmp_path / "cache")
    yield Harness(SessionManager(tmp_path / "work"), cache, tmp_path / "results")
    compile_blocks.COMPILES.clear()


def compile_once(harness, calibration: Path, model=None, dataset="digits"):
    model = model or {"type": "onnx", "parameters": {"model_path": str(REPO / DIGITS)}}
    request = harness.request(
        model, dataset,
        optimizer={"type": OPTIMIZER, "parameters": {"calibration_file": str(calibration)}},
    )
    return harness.compile(request)


def calibration_tag(path: Path) -> str:
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return props["calibration"]


def test_unchanged_hits_and_data_file_contents_recompile(harness, tmp_path):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("set-1")
    first, hit = compile_once(harness, calibration)
    assert not hit and calibration_tag(first) == "set-1"
    again, hit = compile_once(harness, calibration)
    assert hit and again == first and compile_blocks.COMPILES == ["set-1"]
    # same path, new contents (recalibrated data): the cached model would be stale
    calibration.write_text("set-2")
    changed, hit = compile_once(harness, calibration)
    assert not hit and calibration_tag(changed) == "set-2"
    assert compile_blocks.COMPILES == ["set-1", "set-2"]


def test_dataset_data_file_contents_recompile(harness, tmp_path):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("same")
    spec = tmp_path / "io.json"
    shutil.copy(REPO / (DIGITS + ".json"), spec)
    dataset = {"type": "random", "parameters": {"io_spec_path": str(spec), "samples": 4}}
    compile_once(harness, calibration, dataset=dataset)
    assert compile_once(harness, calibration, dataset=dataset)[1]
    # the calibration dataset's io spec file changes in place: its samples change
    changed = json.loads(spec.read_text())
    changed["input"][0]["name"] = "renamed"
    spec.write_text(json.dumps(changed))
    assert not compile_once(harness, calibration, dataset=dataset)[1]
    assert len(compile_blocks.COMPILES) == 2


def test_model_wrapper_type_and_framework_versions_recompile(harness, tmp_path, monkeypatch):
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("same")
    compile_once(harness, calibration)
    other = {"type": "tests.plugin.compile_blocks.OtherONNXWrapper",
             "parameters": {"model_path": str(REPO / DIGITS)}}
    assert not compile_once(harness, calibration, model=other)[1]
    assert compile_once(harness, calibration, model=other)[1]
    # an upgrade of a framework other than the optimizer's own (onnx here; onnxruntime is
    # what quantisation and export checks run on) invalidates what was compiled
    real = kenning_hil.run.compile_cache.installed_version
    monkeypatch.setattr(kenning_hil.run.compile_cache, "installed_version",
                        lambda name: "999.0" if name == "onnxruntime" else real(name))
    assert not compile_once(harness, calibration)[1]
    assert len(compile_blocks.COMPILES) == 3


def test_model_wrapper_parameters_recompile(harness, tmp_path):
    pytest.importorskip("torch", reason="needs the 'torch' extra")
    import onnx
    import torch

    from kenning_hil.modelwrappers.torch_onnxconversion import digits_mlp

    scripted = tmp_path / "digits.pt"
    torch.jit.script(digits_mlp()).save(str(scripted))
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("same")

    def torch_model(opset: int) -> dict:
        return {"type": "torch", "parameters": {
            "model_path": str(scripted), "input_shapes": [[1, 64]], "opset": opset,
            "input_names": ["pixels"], "output_names": ["probabilities"]}}

    def opset_of(path: Path) -> int:
        return {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""]

    first, _ = compile_once(harness, calibration, model=torch_model(17))
    assert opset_of(first) == 17
    assert compile_once(harness, calibration, model=torch_model(17))[1]
    # the wrapper exports the ONNX model the chain compiles: another opset, another model
    second, hit = compile_once(harness, calibration, model=torch_model(18))
    assert not hit and opset_of(second) == 18

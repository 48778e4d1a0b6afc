"""Kenning's spelling (#24): class names and paths, parameter aliases, resource URIs, scenario
files (YAML, tabs, deduced runtime, platform), the TVM target string and the measurements file
versions. Cheap checks of the library; tests/kenning_scenarios runs whole files."""

from __future__ import annotations

import json

import pytest

from kenning_hil.blocks.entries import load_scenario, validate_scenario
from kenning_hil.blocks.kenning_names import resolve_resource_uri, translate_parameters
from kenning_hil.blocks.registry import resolve_class_path
from kenning_hil.core.dataset import Dataset
from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.measurements import (
    FORMAT_VERSION,
    Measurements,
    measurements_file,
    measurements_in_memory,
)

MODEL = {"type": "ONNXWrapper", "parameters": {"model_path": "models/digits/digits-mlp.onnx"}}
DATASET = {"type": "DigitsDataset", "parameters": {"dataset_root": "build/d"}}


@pytest.mark.parametrize("kind,name,path", [
    ("runtime", "kenning.runtimes.onnx.ONNXRuntime",
     "kenning_hil.runtimes.onnxruntime.ONNXRuntime"),
    ("runtime", "ONNXRuntime", "kenning_hil.runtimes.onnxruntime.ONNXRuntime"),
    ("runtime", "TFLiteRuntime", "kenning_hil.runtimes.litert.LiteRTRuntime"),
    ("optimizer", "kenning.optimizers.tflite.TFLiteCompiler",
     "kenning_hil.optimizers.tflite.TFLiteCompiler"),
    ("optimizer", "TVMCompiler", "kenning_hil.optimizers.tvm.TVMCompiler"),
    ("protocol", "kenning.protocols.uart.UARTProtocol",
     "kenning_hil.protocols.bytes_protocol.UARTProtocol"),
    ("dataset", "DigitsDataset", "kenning_hil.datasets.digits.DigitsDataset"),
    ("dataset", "digits", "kenning_hil.datasets.digits.DigitsDataset"),
    ("runner", "kenning.runners.modelruntime_runner.ModelRuntimeRunner",
     "kenning_hil.flows.modelruntimerunner.ModelRuntimeRunner"),
])
def test_kenning_class_names_resolve_to_ours(kind, name, path):
    assert resolve_class_path(kind, name) == path


def test_kenning_classes_we_lack_name_an_alternative():
    with pytest.raises(ConfigurationError, match="Kenning's ONNXCompiler .* is not implemented "
                       "in kenning-hil; instead: an .onnx model needs no conversion"):
        resolve_class_path("optimizer", "ONNXCompiler")
    with pytest.raises(ConfigurationError, match="Kenning's runtime class 'kenning.runtimes.iree2"
                       ".X' is not implemented in kenning-hil; runtime types here: echo, "):
        resolve_class_path("runtime", "kenning.runtimes.iree2.X")
    with pytest.raises(ConfigurationError, match="Kenning's CameraDataProvider .* instead: data "
                       "providers here: dataset-provider, files-provider"):
        resolve_class_path("runner", "kenning.dataproviders.camera_dataprovider.CameraDataProvider")


def test_parameter_aliases_follow_the_class_hierarchy():
    class Own(Dataset):  # a user's dataset gets Kenning's base-class names too
        def prepare(self):
            pass

    own = {"root", "batch_size"}
    assert translate_parameters(Own, {"dataset_root": "d", "inference_batch_size": 4}, own) == (
        {"root": "d", "batch_size": 4}, [])
    _, problems = translate_parameters(Own, {"dataset_root": "d", "root": "e"}, own)
    assert problems == [("dataset_root", "Kenning's dataset_root: 'd' means root 'd', but "
                                         "root is 'e'")]


def test_kenning_uri_resolves_against_the_models_path(tmp_path):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "m.onnx").write_bytes(b"x")
    for uri in ("kenning:///digits/m.onnx", "kenning:///models/digits/m.onnx"):
        assert resolve_resource_uri(uri, [tmp_path]) == str(tmp_path / "digits" / "m.onnx")
    assert resolve_resource_uri("kenning:///nope.onnx", [tmp_path]) is None
    assert resolve_resource_uri("plain/path.onnx", [tmp_path]) == "plain/path.onnx"


def test_yaml_and_tab_indented_json_load_alike(tmp_path):
    scenario = {"dataset": DATASET, "model_wrapper": MODEL,
                "runtime": {"type": "ONNXRuntime"}}
    tabs = tmp_path / "s.json"
    tabs.write_text(json.dumps(scenario, indent="\t"))
    yml = tmp_path / "s.yml"
    yml.write_text("dataset: {type: DigitsDataset, parameters: {dataset_root: build/d}}\n"
                   "model_wrapper: {type: ONNXWrapper, parameters: "
                   "{model_path: models/digits/digits-mlp.onnx}}\n"
                   "runtime: {type: ONNXRuntime}\n")
    assert load_scenario(tabs) == load_scenario(yml)
    assert load_scenario(yml)["dataset"]["parameters"] == {"root": "build/d"}
    bad = tmp_path / "bad.yml"
    bad.write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigurationError, match="bad.yml is neither JSON nor YAML: .*line 2"):
        load_scenario(bad)


@pytest.mark.parametrize("optimizer,runtime", [
    (None, "onnxruntime"),
    ({"type": "TFLiteCompiler", "parameters": {"compiled_model_path": "m.tflite"}}, "litert"),
    ({"type": "TVMCompiler", "parameters": {"compiled_model_path": "m.so"}}, "tvm"),
])
def test_runtime_is_deduced_from_the_last_format(optimizer, runtime):
    scenario = {"dataset": DATASET, "model_wrapper": MODEL}
    if optimizer:
        scenario["optimizers"] = [optimizer]
    assert validate_scenario(scenario)["runtime"] == {"type": runtime, "parameters": {}}


def test_kenning_top_level_keys_are_known_and_noted():
    notes: list[str] = []
    validate_scenario({"dataset": DATASET, "model_wrapper": MODEL, "automl": {},
                       "inference_loop": {"type": "X"}}, "s.yml", notes=notes)
    assert notes == ["s.yml: 'automl' is ignored (only for Kenning's `kenning automl`)",
                     "s.yml: 'inference_loop' is ignored (kenning-hil runs samples in order "
                     "(Kenning's sequential loops))"]


def test_a_board_platform_maps_to_a_described_target_or_is_refused():
    from kenning_hil.run.pipeline import build_pipeline, platform_target
    from kenning_hil.targets.catalog import SHIPPED_TARGETS_DIR, TargetCatalog

    catalog = TargetCatalog([SHIPPED_TARGETS_DIR])
    board = {"type": "BareMetalPlatform", "parameters": {"name": "mps2-an386"}}
    assert platform_target(board, catalog, "s") == "qemu-m4"
    with pytest.raises(ConfigurationError, match="name 'stm32' names no target described here"):
        platform_target({"type": "ZephyrPlatform", "parameters": {"name": "stm32"}}, catalog, "s")
    with pytest.raises(ConfigurationError, match="platform 'CUDAPlatform' has no counterpart"):
        platform_target({"type": "CUDAPlatform"}, catalog, "s")
    with pytest.raises(ConfigurationError, match="is a board: run it with `kenning-hil run`"):
        build_pipeline({"dataset": DATASET, "model_wrapper": MODEL, "platform": board})


def test_tvm_target_strings_become_what_tvm_parses():
    from kenning_hil.optimizers.tvm import target_spec

    assert target_spec("llvm") == "llvm"
    assert target_spec("llvm -mcpu=core-avx2") == {"kind": "llvm", "mcpu": "core-avx2"}
    assert target_spec("cuda -arch=sm_87 -libs=cudnn,cublas") == {
        "kind": "cuda", "arch": "sm_87", "libs": ["cudnn", "cublas"]}
    assert target_spec("llvm", "-mcpu=skylake -num-cores=4") == {
        "kind": "llvm", "mcpu": "skylake", "num-cores": 4}
    assert target_spec({"kind": "llvm"}, "-mcpu=x") == {"kind": "llvm", "mcpu": "x"}
    assert target_spec('{"kind": "llvm", "mcpu": "x"}') == {"kind": "llvm", "mcpu": "x"}
    with pytest.raises(ConfigurationError, match="must start with a kind"):
        target_spec("-mcpu=x")
    with pytest.raises(ConfigurationError, match="flag 'mcpu=x' must look like -name=value"):
        target_spec("llvm mcpu=x")


def test_tvm_module_kind_is_told_by_its_bytes():
    from kenning_hil.runtimes.tvm import module_suffix

    assert module_suffix(b"\x1f\x8b\x08rest") == ".tar"  # export_library's gzip'd tar
    assert module_suffix(b"\0" * 257 + b"ustar\0") == ".tar"
    assert module_suffix(b"\x7fELF" + b"\0" * 600) == ".so"


def test_measurements_file_holds_seconds_and_reads_back_both_versions():
    memory = {"target_inference_step": [1_000_000, 3_000_000],
              "target_inference_step_timestamp": [5_000_000_000, 5_010_000_000],
              "session_utilization_timestamp": [2_000_000_000],
              "tags": [{"name": "run", "start": 1_000_000_000, "end": 3_000_000_000}],
              "target_inference_instructions": [17_700], "total": 2}
    written = measurements_file(memory)
    assert written[FORMAT_VERSION] == 2
    assert written["target_inference_step"] == [0.001, 0.003]
    assert written["target_inference_step_timestamp"] == [5.001, 5.013]  # the calls' ends
    assert written["target_inference_step_timestamp_ns"] == [5_000_000_000, 5_010_000_000]
    assert written["session_utilization_timestamp"] == [2.0]
    assert written["tags"] == [{"name": "run", "start": 1.0, "end": 3.0}]
    assert written["target_inference_instructions"] == [17_700] and written["total"] == 2
    assert measurements_in_memory(json.loads(json.dumps(written))) == memory
    assert measurements_in_memory(memory) == memory  # version 1: as it is
    # a version-2 file from another tool, seconds only
    assert measurements_in_memory({FORMAT_VERSION: 2, "protocol_inference_step": [0.5]}) == {
        "protocol_inference_step": [500_000_000]}


def test_accumulate_keeps_scalars_and_matrices_bare():
    import numpy as np

    m = Measurements()
    for part in ([[1, 0], [0, 1]], [[0, 1], [0, 0]]):
        m.accumulate("eval_confusion_matrix", np.array(part), lambda: np.zeros((2, 2), int))
        m.accumulate("total", 2)
    assert m.to_dict() == {"eval_confusion_matrix": [[1, 1], [0, 1]], "total": 4}


def test_a_tflite_to_tvm_chain_is_refused_before_anything_compiles(tmp_path):
    """Through the library (hil.run's path, no scenario validation): Pipeline.compile checks
    the chain's formats before the TFLite step spends its time."""
    from kenning_hil.blocks.entries import build_block
    from kenning_hil.core.model import ModelWrapper
    from kenning_hil.core.optimizer import Optimizer
    from kenning_hil.run.harness import _NoRuntime
    from kenning_hil.run.pipeline import Pipeline

    wrapper = build_block("model_wrapper", MODEL, ModelWrapper, "model_wrapper")
    chain = [build_block("optimizer", {"type": kind, "parameters": {
        "compiled_model_path": str(tmp_path / name)}}, Optimizer, "optimizers")
        for kind, name in (("TFLiteCompiler", "m.tflite"), ("TVMCompiler", "m.so"))]
    with pytest.raises(ConfigurationError, match="TVMCompiler cannot take the model from "
                       "TFLiteCompiler"):
        Pipeline(None, wrapper, _NoRuntime(), chain).compile()
    assert list(tmp_path.iterdir()) == []

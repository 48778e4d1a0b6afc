"""Tests of kenning_hil.core.onnxconversion with a real 'framework': models built with
onnx.helper, exported with onnx.save, checked by onnx.checker and imported (loaded and run)
by onnxruntime."""

from pathlib import Path

import numpy as np
import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.core.onnxconversion import (
    ModelEntry,
    ONNXConversion,
    Support,
    SupportStatus,
    render_support_matrix,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper = onnx.helper
TensorProto = onnx.TensorProto


def single_op_model(op: str, elem_type: int, inputs: tuple[str, ...] = ("x",)):
    x = helper.make_tensor_value_info("x", elem_type, [2, 3])
    y = helper.make_tensor_value_info("y", elem_type, [2, 3])
    graph = helper.make_graph([helper.make_node(op, list(inputs), ["y"])], op.lower(), [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


class OnnxHelperConversion(ONNXConversion):
    """The 'framework' is onnx.helper (export) plus onnxruntime (import)."""

    def prepare(self):
        self.add_entry("add", lambda: single_op_model("Add", TensorProto.FLOAT, ("x", "x")),
                       reference=lambda x: x + x)
        self.add_entry("relu", lambda: single_op_model("Relu", TensorProto.FLOAT),
                       reference=lambda x: np.maximum(x, 0))
        # Valid ONNX, but onnxruntime has no bfloat16 Abs kernel: the import fails.
        self.add_entry("abs_bf16", lambda: single_op_model("Abs", TensorProto.BFLOAT16))
        # The node reads a tensor nothing defines: onnx.checker rejects the export.
        self.add_entry("dangling", lambda: single_op_model("Add", TensorProto.FLOAT, ("x", "z")))
        self.add_entry("custom_layer", lambda: None, unsupported=True)
        self.add_entry("broken_generator", lambda: [][0])

    def onnx_export(self, modelentry: ModelEntry, exportpath: Path):
        if modelentry.parameters.get("unsupported"):
            return SupportStatus.UNSUPPORTED
        onnx.save(modelentry.modelgenerator(), str(exportpath))
        return None

    def onnx_import(self, modelentry: ModelEntry, importpath: Path):
        session = ort.InferenceSession(str(importpath), providers=["CPUExecutionProvider"])
        x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
        (y,) = session.run(None, {"x": x})
        np.testing.assert_allclose(y, modelentry.parameters["reference"](x))
        return None


class ExportOnly(OnnxHelperConversion):
    def prepare(self):
        self.add_entry("add", lambda: single_op_model("Add", TensorProto.FLOAT, ("x", "x")))

    onnx_import = ONNXConversion.onnx_import


class ForgetsToWrite(ONNXConversion):
    def prepare(self):
        self.add_entry("ghost", lambda: None)

    def onnx_export(self, modelentry, exportpath):
        return None


def by_model(supports):
    return {s.model: s for s in supports}


def test_check_conversions_with_real_export_checker_and_import(tmp_path):
    conversion = OnnxHelperConversion("onnx-helper", onnx.__version__)
    assert [e.name for e in conversion.modelslist] == [
        "add", "relu", "abs_bf16", "dangling", "custom_layer", "broken_generator"
    ]
    results = by_model(conversion.check_conversions(tmp_path))
    assert all(s.framework == "onnx-helper" and s.version == onnx.__version__
               for s in results.values())

    for name in ("add", "relu"):
        assert (results[name].exported, results[name].imported) == (
            SupportStatus.SUPPORTED, SupportStatus.SUPPORTED)
        assert results[name].detail == ""
        assert (tmp_path / "onnx-helper" / f"{name}.onnx").is_file()

    abs_bf16 = results["abs_bf16"]
    assert abs_bf16.exported is SupportStatus.SUPPORTED
    assert abs_bf16.imported is SupportStatus.ERROR
    assert abs_bf16.detail.startswith("import: ")
    assert "Abs" in abs_bf16.detail and "\n" not in abs_bf16.detail

    dangling = results["dangling"]
    assert dangling.exported is SupportStatus.ERROR
    assert dangling.detail.startswith("export: onnx.checker:")
    assert dangling.imported is SupportStatus.UNVERIFIED

    assert results["custom_layer"].exported is SupportStatus.UNSUPPORTED
    assert results["custom_layer"].imported is SupportStatus.UNVERIFIED

    broken = results["broken_generator"]
    assert broken.exported is SupportStatus.ERROR
    assert "IndexError" in broken.detail
    assert broken.imported is SupportStatus.UNVERIFIED


def test_unimplemented_directions(tmp_path):
    results = ExportOnly("onnx-helper", "1").check_conversions(tmp_path)
    assert (results[0].exported, results[0].imported) == (
        SupportStatus.SUPPORTED, SupportStatus.NOT_IMPLEMENTED)

    base = ONNXConversion("nothing", "0")
    assert base.modelslist == []
    base.add_entry("m", lambda: None, size=3)
    assert base.modelslist == [ModelEntry("m", base.modelslist[0].modelgenerator, {"size": 3})]
    (result,) = base.check_conversions(tmp_path)
    assert (result.exported, result.imported) == (
        SupportStatus.NOT_IMPLEMENTED, SupportStatus.UNVERIFIED)


def test_export_without_file_is_error(tmp_path):
    (result,) = ForgetsToWrite("fw", "1").check_conversions(tmp_path)
    assert result.exported is SupportStatus.ERROR
    assert "no ONNX file" in result.detail


def test_duplicate_entry_is_rejected():
    conversion = ONNXConversion("fw", "1")
    conversion.add_entry("m", lambda: None)
    with pytest.raises(ConfigurationError, match="model 'm' is already registered"):
        conversion.add_entry("m", lambda: None)


def test_status_values_and_support_dict():
    assert SupportStatus("not implemented") is SupportStatus.NOT_IMPLEMENTED
    support = Support("torch", "2.4", "resnet", SupportStatus.SUPPORTED, SupportStatus.ERROR, "x")
    assert support.to_dict() == {"framework": "torch", "version": "2.4", "model": "resnet",
                                 "exported": "supported", "imported": "error", "detail": "x"}


SUPPORTS = [
    Support("torch", "2.4", "resnet", SupportStatus.SUPPORTED, SupportStatus.ERROR, "import: boom"),
    Support("torch", "2.4", "mlp", SupportStatus.SUPPORTED, SupportStatus.SUPPORTED, ""),
    Support("tvm", "0.27", "mlp", SupportStatus.UNSUPPORTED, SupportStatus.UNVERIFIED, ""),
]


def test_render_markdown():
    assert render_support_matrix(SUPPORTS) == (
        "| Model | torch 2.4 export | torch 2.4 import | tvm 0.27 export | tvm 0.27 import |\n"
        "|---|---|---|---|---|\n"
        "| resnet | supported | error | n/a | n/a |\n"
        "| mlp | supported | supported | unsupported | unverified |\n"
        "\n"
        "- resnet (torch 2.4): import: boom\n"
    )


def test_render_rst_grid_table():
    text = render_support_matrix(SUPPORTS[1:], fmt="rst")
    assert text == (
        "+-------+------------------+------------------+-----------------+-----------------+\n"
        "| Model | torch 2.4 export | torch 2.4 import | tvm 0.27 export | tvm 0.27 import |\n"
        "+=======+==================+==================+=================+=================+\n"
        "| mlp   | supported        | supported        | unsupported     | unverified      |\n"
        "+-------+------------------+------------------+-----------------+-----------------+\n"
    )


def test_render_real_results_and_bad_format(tmp_path):
    supports = OnnxHelperConversion("onnx-helper", "1").check_conversions(tmp_path)
    text = render_support_matrix(supports)
    assert "| add | supported | supported |" in text
    assert "| abs_bf16 | supported | error |" in text
    assert "- abs_bf16 (onnx-helper 1): import:" in text
    with pytest.raises(ConfigurationError, match="'markdown' or 'rst', got 'html'"):
        render_support_matrix(supports, fmt="html")

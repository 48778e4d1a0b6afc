"""The terminal summary table keeps what names a test when its id is too long: the head
(file::function) and the end of the [params]; the middle is elided."""

import re

import pytest

from kenning_hil.report.summary import SummaryRow, format_table, shorten_test_id
from tests.plugin.conftest import DIGITS, run

pytest_plugins = ["pytester"]

LONG = ("tests/test_mlperf.py::test_kws[optimizers0-digits-models-dir/mlperf_tiny/"
        "kws_ref_model.tflite-host-onnxruntime]")


@pytest.mark.parametrize(
    "test_id, width, shortened",
    [
        # long params: the head whole, the end of the params
        (LONG, 60, "tests/test_mlperf.py::test_kws[…del.tflite-host-onnxruntime]"),
        (LONG, 40, "tests/test_mlperf.py::test_kws[…runtime]"),
        # short params: function and params whole, the middle of the path elided
        ("test_digits_accuracy.py::test_digits_accuracy[host-onnxruntime]", 60,
         "test_d…s_accuracy.py::test_digits_accuracy[host-onnxruntime]"),
        # a long head: directories go first, the file name and function stay
        ("tests/very/deep/directory/for/tests/test_mlperf_models.py::test_keyword_spotting"
         "[optimizers0-digits-host-onnxruntime]", 60,
         "…/test_mlperf_models.py::test_keyword_spotting[…onnxruntime]"),
        ("tests/very/deep/directory/structure/for/tests/test_models.py::TestClass::test_kws",
         60, "tests/very/d…e/for/tests/test_models.py::TestClass::test_kws"),
        ("short.py::test_x[host]", 60, "short.py::test_x[host]"),
        # a long function name is kept whole (issue 25): with its params and the path's end
        ("tests/hil/test_keyword_spotting_models.py::test_keyword_spotting_int8_accuracy"
         "[qemu-m55]", 60, "…ng_models.py::test_keyword_spotting_int8_accuracy[qemu-m55]"),
        # ... or with the end of long params, the path gone
        ("tests/hil/test_keyword_spotting_models.py::test_keyword_spotting_int8_accuracy"
         "[optimizers0-int8-models/kws.tflite-qemu-m55]", 60,
         "…::test_keyword_spotting_int8_accuracy[…kws.tflite-qemu-m55]"),
    ],
)
def test_shorten_test_id(test_id, width, shortened):
    assert shorten_test_id(test_id, width) == shortened
    assert len(shortened) <= width


def test_table_keeps_head_and_params_tail():
    rows = [SummaryRow(LONG, "host-onnxruntime", "passed", 0.97, 31e-6, 45e-6,
                       "target_inference_step", 19770)]
    line = format_table(rows).splitlines()[1]
    assert re.split(r"\s{2,}", line)[:2] == [
        "tests/test_mlperf.py::test_kws[…del.tflite-host-onnxruntime]", "host-onnxruntime"]


def test_table_of_a_real_run_with_long_parameters(hil_project):
    """A real run on a real server: the table line names the file, the function and the
    target-carrying end of the parameters."""
    hil_project.makepyfile(test_long_ids=f"""
        import pytest

        @pytest.mark.parametrize("variant", ["calibration-" + "x" * 60 + "-per-channel"])
        def test_digits_variant(hil, variant):
            hil.run(model="{DIGITS}", dataset="digits", samples=5)
    """)
    result = run(hil_project)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "test_long_ids.py::test_digits_variant[[]…xxxxxxxx-per-channel]  host-onnxruntime"
        "  *passed",
    ])

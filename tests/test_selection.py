"""-k / -m expressions of `kenning-hil suite`, read as pytest reads them."""

import re

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.selection import keyword_selects, marks_select

ID = "suites/digits.yaml::digits-int8-qdq[host-onnxruntime]"


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("int8", True),
        ("INT8-QDQ", True),  # case-insensitive substrings
        ("fp32", False),
        ("not fp32", True),
        ("int8 and host", True),
        ("int8 and not host-onnxruntime]", False),
        ("fp32 or qdq", True),
        ("not (fp32 or qemu)", True),
        ("fp32 or int8 and qemu", False),  # and binds tighter than or
        ("digits.yaml::digits-int8", True),
    ],
)
def test_keyword_expressions(expression, selected):
    assert keyword_selects(expression, ID) is selected


def test_mark_expressions():
    assert marks_select("hil and not gpu", {"hil", "nightly"})
    assert not marks_select("gpu", {"hil"})
    assert marks_select("nightly or slow", {"hil", "slow"})


@pytest.mark.parametrize(
    ("expression", "message"),
    [("int8 and", "ends too early"), ("(int8", "ends too early"), ("int8 )", "unexpected ')'"),
     ("and int8", "unexpected 'and'"), ("int8 & fp32", "unexpected character '&'")],
)
def test_malformed_expressions_say_what_is_wrong(expression, message):
    with pytest.raises(ConfigurationError,
                       match=re.escape(f"-k '{expression}': ") + ".*" + re.escape(message)):
        keyword_selects(expression, ID)

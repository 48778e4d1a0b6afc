"""The firmware's STATS names are the Python vocabulary's: every name the C code appends to a
STATS answer is the value of a constant of `kenning_hil.core.measurements`, and the file that
appends it cites that module (so a rename on either side shows up here)."""

from __future__ import annotations

import re

from kenning_hil.core import measurements
from kenning_hil.sim.firmware_build import FIRMWARE_DIR

STATS_APPEND = re.compile(r'khil_stats_append\(\s*[^"]*?"(?P<name>[^"]+)"', re.S)


def test_every_firmware_stats_name_is_a_measurements_constant():
    constants = {
        value: name for name, value in vars(measurements).items()
        if name.isupper() and isinstance(value, str)
    }
    appended = {}
    for source in sorted(FIRMWARE_DIR.rglob("*.c")):
        text = source.read_text(encoding="utf-8")
        names = STATS_APPEND.findall(text)
        if not names:
            continue
        assert "kenning_hil.core.measurements" in text, f"{source} does not cite the constants"
        for name in names:
            appended[name] = source.relative_to(FIRMWARE_DIR)
            assert name in constants, (
                f"{source.name}: STATS name '{name}' is not a kenning_hil.core.measurements "
                f"constant"
            )
            assert constants[name] in text, (
                f"{source.name} appends '{name}' without citing {constants[name]}"
            )
    # the names the host reads latency and memory from are among them
    assert {measurements.TARGET_INSTRUCTIONS, measurements.TARGET_STEP,
            measurements.PEAK_ALLOCATED} <= set(appended)

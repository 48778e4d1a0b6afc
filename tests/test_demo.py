"""The demo's digits command (Makefile `demo`), run as `make demo` runs it: every test it
collects runs and passes; the combinations a target can never take (an ONNX model on a
TFLite-only board) are not tests, so the last line counts them instead of skips."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.skips import require_simulation

REPO = Path(__file__).resolve().parents[1]


def demo_digits_command(report_dir: Path) -> list[str]:
    """The Makefile's demo digits line, with its $(DEMO_TARGETS), this interpreter and
    `report_dir` for $(RESULTS)/demo/digits."""
    makefile = (REPO / "Makefile").read_text()
    targets = re.search(r"^DEMO_TARGETS \?= (.+)$", makefile, re.M).group(1).split()
    recipe = re.search(r"\$\(VENV\)/bin/pytest (.*suites/digits\.yaml.*?)\\\n\s*(.*)\n",
                       makefile)
    words = f"{recipe.group(1)} {recipe.group(2)}".split()
    command = [sys.executable, "-m", "pytest"]
    for word in words:
        if word == "$(DEMO_TARGETS)":
            command += targets
        else:
            command.append(word.replace("$(RESULTS)/demo/digits", str(report_dir)))
    return command


@pytest.mark.slow  # four targets, a QEMU board among them (~30 s)
def test_demo_digits_has_no_skips_and_counts_what_is_not_applicable(tmp_path):
    require_simulation("the demo's target qemu-m4")
    command = demo_digits_command(tmp_path / "digits")
    assert "--target=qemu-m4" in command and "-n" in command  # as make demo runs it
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    last = out.strip().splitlines()[-1]
    # e.g. "== 5 passed, 7 not applicable in 31.2s ==" (warnings, if any, are not ours to judge)
    assert re.match(r"=+ 5 passed, ", last) and ", 7 not applicable in " in last, last
    assert not re.search(r"skipped|failed|error|deselected", last), last
    assert "7 model × target combinations not applicable: formats" in out
    report = (tmp_path / "digits" / "report.md").read_text()
    assert report.count("| not applicable: target ") == 7

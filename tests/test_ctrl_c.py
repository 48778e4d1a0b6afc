"""The premise of tests/ctrl_c.py, checked with real processes: a Python started with SIGINT
ignored keeps it ignored (why test_sigint_stops_cleanly and test_interrupt timed out in a
test run started in the background, #22/#25), and `interruptible` gives SIGINT's default
disposition back, so a real SIGINT raises KeyboardInterrupt in the child."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.ctrl_c import interruptible

# the child reports SIGINT's handler, then signals itself and says whether that interrupted it
CHILD = """
import os, signal, sys
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
try:
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(1000):  # the handler runs between bytecodes
        pass
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def _run_with_sigint_ignored(command: list[str]) -> list[str]:
    """`command` started by a process that ignores SIGINT, as a shell's background job."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_an_inherited_ignored_sigint_stays_ignored():
    assert _run_with_sigint_ignored([sys.executable, "-c", CHILD]) == ["False", "not",
                                                                         "interrupted"]


def test_interruptible_restores_the_default_sigint():
    assert _run_with_sigint_ignored(interruptible([sys.executable, "-c", CHILD])) == [
        "True", "interrupted"]

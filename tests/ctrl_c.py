"""Starting a process that a test interrupts as a terminal's Ctrl-C does (a real SIGINT).

A process started with SIGINT ignored passes that on to every process it starts, and Python
leaves an inherited ignored SIGINT ignored (no KeyboardInterrupt, no handler of ours). A
shell ignores SIGINT for what it runs in the background without job control
(`scripts/test-under-load.sh > log &`, `nohup make test`): there the SIGINT a test sends did
nothing, the interrupted run went on to its end and the test timed out (#22, #25). A terminal's
foreground job has SIGINT's default disposition; `interruptible` gives the child that back,
whatever the test run inherited (the product itself keeps honouring an ignored SIGINT, as
every Unix program does).
"""

from __future__ import annotations

import sys

# exec keeps the pid, so the test signals and watches the process it started
_DEFAULT_SIGINT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def interruptible(command: list[str]) -> list[str]:
    """`command` run with SIGINT's default disposition (then Python's KeyboardInterrupt)."""
    return [sys.executable, "-c", _DEFAULT_SIGINT_THEN_EXEC, *command]

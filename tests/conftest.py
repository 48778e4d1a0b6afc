"""Fixtures shared by every test folder."""

from __future__ import annotations

import shutil
import subprocess
import time

# pytester puts sys.modules back as it was before each test that uses it, so a module first
# imported during such a test is dropped after it; numpy refuses a second import in one
# process ("cannot load module more than once per process"), which the plugin's session-end
# report (footprints) then hit. Imported here, it is in every snapshot.
import numpy  # noqa: F401
import pytest


@pytest.fixture
def pty_pair(tmp_path):
    """Two linked pseudo-terminals (socat): (server end, client end) device paths."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (needed for a pty pair)")
    a, b = tmp_path / "pty-a", tmp_path / "pty-b"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("socat did not create the pty pair")
        time.sleep(0.01)
    try:
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def harness(tmp_path):
    """A harness of its own (work, lock, compile-cache and results folders in tmp_path),
    the way `HILSettings.harness()` makes one; its board sessions are closed after the
    test."""
    from kenning_hil.run.compile_cache import CompileCache
    from kenning_hil.run.harness import Harness
    from kenning_hil.targets import SessionManager

    sessions = SessionManager(tmp_path / "work", tmp_path / "locks")
    yield Harness(sessions, CompileCache(tmp_path / "cache"), tmp_path / "results")
    sessions.close_all()

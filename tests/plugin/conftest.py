"""Helpers for running the plugin in a separate pytest process (pytester) on a scratch project.

Test modules here declare ``pytest_plugins = ["pytester"]``. The scratch project sees the
repository's models (symlinked) and gets its own lock, report and compile-cache directories,
so runs are hermetic and can run in parallel."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIGITS = "models/digits/digits-mlp.onnx"


def make_hermetic_ini(project, locks: Path, timeout: float = 30) -> None:
    """The scratch project's pytest.ini: its own lock folder, report and compile cache (so
    parallel runs share nothing), `timeout` seconds for a board's lock and requests."""
    project.makeini(
        f"""
        [pytest]
        hil_lock_dir = {locks}
        hil_report = results
        hil_compile_cache = compile-cache
        hil_timeout = {timeout:g}
        """
    )


@pytest.fixture
def hil_project(pytester, tmp_path_factory):
    (pytester.path / "models").symlink_to(REPO / "models")
    make_hermetic_ini(pytester, tmp_path_factory.mktemp("locks"))
    return pytester


def run(project, *args, timeout: float = 240):
    """Runs pytest in a subprocess (the plugin loads through its entry point)."""
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


def write_target(project, name: str, text: str) -> Path:
    directory = project.path / "targets"
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


MEETING_HOLDERS = """
import glob, json, os, time

def hold(target_session, log):
    # hold until a test of the other worker holds a board too, then let go: both instances
    # busy at once by events, not by a hold outlasting the workers' boot skew (which a
    # loaded machine stretches); after the first meeting the tests no longer wait
    start = time.time()
    here = os.path.dirname(log)
    mine = os.path.join(here, f"holding-{os.getpid()}")
    open(mine, "w").close()
    deadline = time.monotonic() + 120  # only a pool that never lends both waits it out
    while not os.path.exists(os.path.join(here, "met")) and time.monotonic() < deadline:
        if [p for p in glob.glob(os.path.join(here, "holding-*")) if p != mine]:
            open(os.path.join(here, "met"), "w").close()
            break
        time.sleep(0.02)
    time.sleep(0.05)
    os.remove(mine)
    record = {"instance": target_session.instance.index, "start": start, "end": time.time(),
              "pid": os.getpid()}
    record.update(EXTRA(target_session))
    with open(log, "a") as f:
        f.write(json.dumps(record) + "\\n")
"""


def meeting_holders(log: Path, count: int, extra: str = "{}") -> str:
    """Test code: `count` tests that each hold a board of their target's pool until a test of
    the other xdist worker holds one too, and log each hold to `log` as a JSON line
    (instance, start, end, pid, plus the fields of `extra`, an expression of
    `target_session`)."""
    tests = "".join(
        f"def test_hold_{i}(target_session):\n    hold(target_session, {str(log)!r})\n\n"
        for i in range(count)
    )
    return f"EXTRA = lambda target_session: {extra}\n" + MEETING_HOLDERS + "\n\n" + tests

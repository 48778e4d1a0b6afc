"""Per-process sessions on real targets: a local server per host instance, a running server
reached as a tcp target; reuse, reboot after a failure, nesting, lease keeping."""

import os
import subprocess
import sys
import time

import pytest

from kenning_hil.targets import SessionManager, Target
from kenning_hil.targets.description import parse_target
from kenning_hil.targets.process import server_command, start_logged, stop, wait_for_line


def target(data: dict, name: str = "board") -> Target:
    return Target(parse_target(data, f"{name}.yaml", name))


HOST = {"kind": "host", "runtime": "onnxruntime", "instances": 1}


@pytest.fixture
def manager(tmp_path):
    sessions = SessionManager(tmp_path / "work", tmp_path / "locks", default_timeout=20)
    yield sessions
    sessions.close_all()


def server_alive(session) -> bool:
    try:
        os.kill(session.info["pid"], 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: look at its state
    with open(f"/proc/{session.info['pid']}/stat") as f:
        return f.read().split()[2] != "Z"


def test_host_session_is_reused_and_rebooted_after_a_failure(manager):
    board = target(HOST)
    with manager.use(board, "t1") as first:
        assert first.protocol.connected and first.info["address"].startswith("127.0.0.1:")
        with manager.use(board, "nested") as nested:  # a test holding the board runs on it
            assert nested is first
    with manager.use(board, "t2") as second:
        assert second is first  # the server stays up between uses
    assert manager.boots == 1 and server_alive(first)
    with pytest.raises(RuntimeError, match="broke"), manager.use(board, "t3"):
        raise RuntimeError("broke")
    assert not server_alive(first)  # a failed use closes the session ...
    with manager.use(board, "t4") as third:  # ... and the next one boots a fresh server
        assert third.info["pid"] != first.info["pid"] and third.protocol.connected
    assert manager.boots == 2
    # a server that died while idle is noticed at the next use and booted afresh
    os.kill(third.info["pid"], 9)
    third.handle.wait()
    with manager.use(board, "t5") as fourth:
        assert fourth.info["pid"] != third.info["pid"] and fourth.protocol.connected
    assert manager.boots == 3
    manager.close_all()
    assert not server_alive(fourth)


def test_leases_are_kept_only_when_workers_fit_the_pool(tmp_path):
    board = target(HOST)
    pool = board.pool(tmp_path / "locks")
    for workers, kept in ((1, True), (2, False)):
        sessions = SessionManager(tmp_path / "w", tmp_path / "locks", 20, workers=workers)
        with sessions.use(board, "t"):
            assert pool.try_acquire() is None
        probe = pool.try_acquire()
        assert (probe is None) == kept
        if probe is not None:
            probe.release()
        sessions.close_all()
        with pool.acquire(1.0):  # free after close_all in both cases
            pass


def test_tcp_session_closes_after_each_use(tmp_path):
    log = tmp_path / "serve.log"
    proc = start_logged(server_command("--runtime", "onnxruntime", "--port", "0"), log)
    try:
        match = wait_for_line(proc, log, r"listening on (\S+):(\d+)", 20, "server")
        board = target({"kind": "tcp", "address": f"{match.group(1)}:{match.group(2)}"})
        sessions = SessionManager(tmp_path / "w", tmp_path / "locks", 20, workers=2)
        with sessions.use(board, "a") as first:
            assert first.protocol.connected
        assert not first.protocol.connected  # a shared board is let go between tests
        assert sessions.open_sessions() == []
        with sessions.use(board, "b") as second:
            assert second.protocol.connected
        assert sessions.boots == 2
        sessions.close_all()
    finally:
        stop(proc)


def test_boot_failure_names_the_target_and_log(manager, tmp_path):
    board = target({**HOST, "serve_args": ["--no-such-flag"]}, "bad-board")
    with pytest.raises(Exception) as info, manager.use(board):
        pass
    message = str(info.value)
    assert "target 'bad-board' server exited with code 2 before it was ready" in message
    assert "bad-board-0-pid" in message and "unrecognized arguments: --no-such-flag" in message


def test_child_server_dies_with_its_parent(tmp_path):
    script = f"""
import sys, time
from pathlib import Path
from kenning_hil.targets import SessionManager, Target
from kenning_hil.targets.description import parse_target
board = Target(parse_target({HOST!r}, "b.yaml", "b"))
sessions = SessionManager(Path({str(tmp_path)!r}) / "w", Path({str(tmp_path)!r}) / "l", 20)
with sessions.use(board) as session:
    print(session.info["pid"], flush=True)
    time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(100):
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{server_pid}/stat") as f:
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"server {server_pid} outlived its killed parent")

"""Board pools: real file locks between real processes, including a holder that is killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kenning_hil.targets import BoardBusyError, BoardPool, Instance
from kenning_hil.targets.pool import lock_file_name

HOLDER = """
import sys, time
from pathlib import Path
from kenning_hil.targets import BoardPool, Instance
n = int(sys.argv[2])
pool = BoardPool("board", [Instance(i, str(i), f"board-{i}") for i in range(n)], Path(sys.argv[1]))
lease = pool.acquire(timeout=float(sys.argv[3]), holder="holder-script")
print(lease.instance.index, flush=True)
time.sleep(float(sys.argv[4]))
"""


def pool_of(n: int, lock_dir: Path) -> BoardPool:
    return BoardPool("board", [Instance(i, str(i), f"board-{i}") for i in range(n)], lock_dir)


def start_holder(lock_dir: Path, n: int, wait: float = 5.0, hold: float = 60.0):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(n), str(wait), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line, "holder process exited without a lease"
    return proc, int(line)


def test_lock_file_names_are_distinct_and_readable():
    a, b = lock_file_name("serial:/dev/ttyACM0"), lock_file_name("serial:/dev/ttyACM0/")
    assert a != b and a.startswith("serial_dev_ttyACM0-") and a.endswith(".lock")


def test_one_process_takes_each_instance_once(tmp_path):
    pool = pool_of(2, tmp_path)
    first = pool.acquire(1.0)
    second = pool.acquire(1.0)
    assert {first.instance.index, second.instance.index} == {0, 1}
    assert pool.try_acquire() is None
    first.release()
    third = pool.acquire(1.0)
    assert third.instance.index == first.instance.index
    second.release()
    third.release()


def test_prefer_picks_the_given_instance(tmp_path):
    pool = pool_of(3, tmp_path)
    with pool.acquire(1.0, prefer=[2]) as lease:
        assert lease.instance.index == 2
    assert not lease.held


def test_two_processes_hold_both_instances_at_once(tmp_path):
    a, index_a = start_holder(tmp_path, 2)
    b, index_b = start_holder(tmp_path, 2)
    try:
        assert {index_a, index_b} == {0, 1}
        with pytest.raises(BoardBusyError) as info:
            pool_of(2, tmp_path).acquire(timeout=0.3, holder="me")
        message = str(info.value)
        assert "target 'board': no free instance after waiting 0.3 s" in message
        assert f"pid {a.pid}" in message and f"pid {b.pid}" in message
        assert "holder-script" in message
    finally:
        for proc in (a, b):
            proc.kill()
            proc.wait()


def test_killed_holder_releases_its_instance(tmp_path):
    proc, index = start_holder(tmp_path, 1)
    pool = pool_of(1, tmp_path)
    assert pool.try_acquire() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    lease = pool.acquire(timeout=5.0)
    assert time.monotonic() - start < 1.0
    assert lease.instance.index == index
    # the lock file now names us, not the dead holder
    record = json.loads(pool.lock_path(lease.instance).read_text())
    assert record["pid"] == os.getpid()
    lease.release()


def test_waiter_gets_instance_when_holder_finishes(tmp_path):
    proc, _ = start_holder(tmp_path, 1, hold=0.5)
    start = time.monotonic()
    lease = pool_of(1, tmp_path).acquire(timeout=10.0)
    waited = time.monotonic() - start
    assert 0.2 < waited < 5.0
    assert lease.waited == pytest.approx(waited, abs=0.1)
    lease.release()
    proc.wait()


def test_same_board_under_two_target_names_shares_a_lock(tmp_path):
    a = BoardPool("board-a", [Instance(0, "/dev/x", "serial:/dev/x")], tmp_path)
    b = BoardPool("board-b", [Instance(0, "/dev/x", "serial:/dev/x")], tmp_path)
    with a.acquire(1.0):
        assert b.try_acquire() is None

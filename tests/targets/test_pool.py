"""Board pools: real file locks between real processes, including a holder that is killed."""

import json
import os
import signal
import subprocess
import sys
import threading
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
hold = float(sys.argv[4])
if hold < 0:
    sys.stdin.read()  # hold until the test closes our stdin
else:
    time.sleep(hold)
"""


def pool_of(n: int, lock_dir: Path) -> BoardPool:
    return BoardPool("board", [Instance(i, str(i), f"board-{i}") for i in range(n)], lock_dir)


def start_holder(lock_dir: Path, n: int, wait: float = 5.0, hold: float = 60.0):
    """A process holding an instance (index returned) for `hold` seconds, or until its stdin
    is closed when `hold` is negative."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(n), str(wait), str(hold)],
        stdin=subprocess.PIPE if hold < 0 else None,
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
    # free at once: the kernel dropped the dead holder's lock (no waiting, no timing)
    lease = pool.try_acquire()
    assert lease is not None
    assert lease.instance.index == index
    # the lock file now names us, not the dead holder
    record = json.loads(pool.lock_path(lease.instance).read_text())
    assert record["pid"] == os.getpid()
    lease.release()


def test_waiter_gets_instance_when_holder_finishes(tmp_path):
    """The waiter gets the instance once the holder lets go, and not before: ordered by
    events the test makes, not by durations (a loaded machine cannot reorder them)."""
    proc, _ = start_holder(tmp_path, 1, hold=-1)
    pool = pool_of(1, tmp_path)
    assert pool.try_acquire() is None  # held until we close the holder's stdin
    released = []

    def release_holder():
        released.append(time.monotonic())
        proc.stdin.close()

    timer = threading.Timer(0.3, release_holder)
    start = time.monotonic()
    timer.start()
    lease = pool.acquire(timeout=120.0)  # far beyond any load: the holder lets go after 0.3 s
    got = time.monotonic()
    waited = got - start
    timer.join()
    assert released and released[0] <= got  # not before the holder let go
    assert 0 < lease.waited <= waited  # the lease's own clock, inside ours
    lease.release()
    proc.wait()


def test_same_board_under_two_target_names_shares_a_lock(tmp_path):
    a = BoardPool("board-a", [Instance(0, "/dev/x", "serial:/dev/x")], tmp_path)
    b = BoardPool("board-b", [Instance(0, "/dev/x", "serial:/dev/x")], tmp_path)
    with a.acquire(1.0):
        assert b.try_acquire() is None

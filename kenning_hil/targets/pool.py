"""Board pools: one test process at a time per board instance, across processes.

Each instance is guarded by an exclusive ``flock`` on a file in a lock directory shared by
every process on the machine (pytest-xdist workers, parallel CI jobs). The kernel drops the
lock when its holder dies, so a killed worker never leaves a board locked. The lock file
also records who holds it, for the message when a wait times out.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from kenning_hil.targets.errors import BoardBusyError
from kenning_hil.targets.kinds import Instance

LOCK_DIR_ENV = "KENNING_HIL_LOCK_DIR"


def default_lock_dir() -> Path:
    """$KENNING_HIL_LOCK_DIR, else a per-user directory in the system temp dir."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"kenning-hil-locks-{os.getuid()}"


def lock_file_name(lock_key: str) -> str:
    """A readable, collision-free file name for a lock key such as '/dev/ttyACM0'."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", lock_key).strip("_")[:60]
    digest = hashlib.sha256(lock_key.encode()).hexdigest()[:10]
    return f"{readable}-{digest}.lock"


class InstanceLock:
    """Exclusive, non-blocking lock on one instance; released by close or by process death."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self, holder: dict) -> bool:
        """Takes the lock if free and records `holder` in the file; False if busy."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # no O_TRUNC: a waiter opening the file must not erase the holder's record
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps(holder, sort_keys=True).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def holder(self) -> dict | None:
        """The record of the current (or last) holder, if any."""
        try:
            text = self.path.read_text()
        except OSError:
            return None
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return None


class Lease:
    """One instance of a pool, held until `release` (or the end of a `with` block)."""

    def __init__(self, target: str, instance: Instance, lock: InstanceLock, waited: float):
        self.target = target
        self.instance = instance
        self.waited = waited
        self._lock = lock
        self.acquired_at = time.time()

    @property
    def held(self) -> bool:
        return self._lock.held

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"Lease({self.target!r}, instance {self.instance.name!r}, {state})"


def _describe_holder(record: dict | None) -> str:
    if not record:
        return "unknown holder"
    parts = [f"pid {record.get('pid')}"]
    if record.get("host") and record.get("host") != socket.gethostname():
        parts.append(f"on {record['host']}")
    if record.get("holder"):
        parts.append(str(record["holder"]))
    return " ".join(parts)


class BoardPool:
    """The instances of one target and the locks guarding them."""

    def __init__(self, target: str, instances: Sequence[Instance], lock_dir: Path | None = None):
        if not instances:
            raise ValueError(f"target {target!r} has an empty pool")
        self.target = target
        self.instances = list(instances)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()

    def lock_path(self, instance: Instance) -> Path:
        return self.lock_dir / lock_file_name(instance.lock_key)

    def try_acquire(
        self, holder: str = "", prefer: Iterable[int] = ()
    ) -> Lease | None:
        """A free instance (preferred indices first), or None when all are busy."""
        preferred = [i for i in prefer if 0 <= i < len(self.instances)]
        order = preferred + [i for i in range(len(self.instances)) if i not in preferred]
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "holder": holder,
            "target": self.target,
            "since": time.time(),
        }
        for index in order:
            instance = self.instances[index]
            lock = InstanceLock(self.lock_path(instance))
            if lock.try_acquire({**record, "instance": instance.name}):
                return Lease(self.target, instance, lock, waited=0.0)
        return None

    def acquire(
        self,
        timeout: float,
        holder: str = "",
        prefer: Iterable[int] = (),
        poll: float = 0.02,
    ) -> Lease:
        """Waits up to `timeout` seconds for a free instance; BoardBusyError after that."""
        prefer = list(prefer)
        start = time.monotonic()
        delay = poll
        while True:
            lease = self.try_acquire(holder, prefer)
            if lease is not None:
                lease.waited = time.monotonic() - start
                return lease
            waited = time.monotonic() - start
            if waited >= timeout:
                # the message names the configured wait, not the measured one: a loaded
                # machine overshoots by a scheduling delay, which is no news to the user
                holders = "; ".join(
                    f"{inst.name}: {_describe_holder(InstanceLock(self.lock_path(inst)).holder())}"
                    for inst in self.instances
                )
                raise BoardBusyError(
                    f"target '{self.target}': no free instance after waiting {timeout:g} s "
                    f"(all {len(self.instances)} busy — {holders}); raise --hil-timeout or "
                    f"the target's timeouts.lock, or add instances"
                )
            time.sleep(min(delay, max(0.0, timeout - waited)))
            delay = min(delay * 1.5, 0.25)

"""Per-process target sessions: a board boots once per (process, target, instance).

`SessionManager.use(target)` takes an instance of the target's pool (waiting for a free one)
and yields a session on it, reusing the one this process already opened there. Between uses:

- private sessions (a local server, an emulator of this process's own) stay open while the
  instance lock is free, since no other process can use them anyway;
- shared boards (a serial port, a remote server) are closed when the lock is released, unless
  the manager keeps leases. By default it keeps them for a target when the run has no more
  test processes (``workers``) than the target has instances, so holding a board between
  tests cannot starve anybody.

A session whose use raised (a nested use too) is closed, so the next test starts from a
fresh boot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.targets.kinds import OpenContext, TargetSession
from kenning_hil.targets.pool import Lease, default_lock_dir
from kenning_hil.targets.target import Target


@dataclass
class _Open:
    session: TargetSession
    stack: ExitStack
    lease: Lease | None  # held between uses only when leases are kept


class SessionManager:
    """Open target sessions of this process, keyed by (target name, instance index)."""

    def __init__(
        self,
        workdir: Path,
        lock_dir: Path | None = None,
        default_timeout: float = 60.0,
        keep_leases: bool | None = None,
        holder: str = "",
        workers: int = 1,
        progress: Any = None,
    ):
        self.workdir = Path(workdir)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        self.default_timeout = default_timeout
        self.keep_leases = keep_leases
        self.workers = workers
        self.holder = holder or f"pid {os.getpid()}"
        self._open: dict[tuple[str, int], _Open] = {}
        self._active: dict[str, tuple[str, int]] = {}  # targets in use right now
        self._broken: set[tuple[str, int]] = set()  # failed in a nested use: close at the end
        self.boots = 0  # sessions opened, for reports and tests
        self.progress = progress  # passed to the kinds (OpenContext.progress)

    def keeps_leases(self, target: Target) -> bool:
        if self.keep_leases is not None:
            return self.keep_leases
        return self.workers <= len(target.instances())

    def _context(self, target: Target) -> OpenContext:
        return OpenContext(
            timeouts=target.timeouts(self.default_timeout),
            workdir=self.workdir,
            state_dir=self.lock_dir,
            progress=self.progress,
        )

    def _acquire(self, target: Target, holder: str) -> Lease:
        mine = [index for (name, index), entry in self._open.items() if name == target.name]
        # a lease this process keeps between uses is simply reused
        for index in mine:
            entry = self._open[(target.name, index)]
            if entry.lease is not None and entry.lease.held:
                return entry.lease
        timeout = target.timeouts(self.default_timeout).lock
        who = f"{self.holder}: {holder}" if holder else self.holder
        return target.pool(self.lock_dir).acquire(timeout, who, prefer=mine)

    @contextmanager
    def use(self, target: Target, holder: str = "") -> Iterator[TargetSession]:
        """Yields a session on a free instance of `target`, held for the `with` block.

        Nested uses of one target (a test holding a board and running a model on it) share
        the outer session instead of waiting for a second instance."""
        active = self._active.get(target.name)
        if active is not None and active in self._open:
            try:
                yield self._open[active].session
            except BaseException:
                # the outer use closes it too (e.g. a connection lost in hil.run under a test
                # holding the board): the next test, or a rerun, reconnects
                self._broken.add(active)
                raise
            return
        lease = self._acquire(target, holder)
        key = (target.name, lease.instance.index)
        self._active[target.name] = key
        failed = False
        try:
            entry = self._open.get(key)
            if entry is not None and not target.kind.alive(entry.session):
                self._close(key)  # its board died while idle (e.g. a killed emulator)
                entry = None
            if entry is None:
                entry = self._boot(target, lease)
                self._open[key] = entry
            yield entry.session
        except BaseException:
            failed = True
            raise
        finally:
            self._active.pop(target.name, None)
            if key in self._broken:
                self._broken.discard(key)
                failed = True
            keep_lease = self.keeps_leases(target) and not failed
            if failed or not (target.kind.private_sessions or keep_lease):
                self._close(key)
            if keep_lease and key in self._open:
                self._open[key].lease = lease
            else:
                if key in self._open:
                    self._open[key].lease = None
                lease.release()

    @contextmanager
    def use_all(self, targets: Sequence[Target], holder: str = "") -> Iterator[list[TargetSession]]:
        """Yields sessions on all of `targets` at once (a differential test), in their order.

        Pools are acquired in one global order, by target name, whatever order the caller
        lists them in: two processes comparing the same targets then never each hold one
        while waiting for the other's. Leases kept between tests do not break this: one is
        kept only when its pool has an instance for every test process, so nobody waits
        for it."""
        names = [target.name for target in targets]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigurationError(
                f"target '{twice[0]}' is listed twice; a comparison holds each target once")
        sessions: dict[str, TargetSession] = {}
        with ExitStack() as stack:
            for target in sorted(targets, key=lambda t: t.name):
                sessions[target.name] = stack.enter_context(self.use(target, holder))
            yield [sessions[name] for name in names]

    def _boot(self, target: Target, lease: Lease) -> _Open:
        stack = ExitStack()
        try:
            session = stack.enter_context(
                target.kind.open(lease.instance, self._context(target))
            )
        except BaseException:
            stack.close()
            raise
        self.boots += 1
        return _Open(session, stack, None)

    def _close(self, key: tuple[str, int]) -> None:
        entry = self._open.pop(key, None)
        if entry is not None:
            entry.stack.close()

    def open_sessions(self) -> list[TargetSession]:
        return [entry.session for entry in self._open.values()]

    def close_all(self) -> None:
        """Closes every session and releases every kept lease (end of the test session)."""
        for key in list(self._open):
            lease = self._open[key].lease
            try:
                self._close(key)
            finally:
                if lease is not None:
                    lease.release()

"""The protocol of a board session as one run sees it: upload cache and STATS slicing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kenning_hil.core.measurements import Measurements
from kenning_hil.protocols.wrapper import ProtocolWrapper


class SessionProtocol(ProtocolWrapper):
    """The session's connected protocol as `Runtime.run_client` sees it.

    Connecting and disconnecting belong to the session (a board stays connected between
    tests), so they are no-ops here; the io spec and model uploads are skipped when the
    session already holds this compiled model (the model upload cache). A target's STATS
    cover everything since it was connected (`RuntimeProtocol.download_statistics`):
    list-valued statistics are cut to what is new since this run started, so each run gets
    its own. The mark is taken with one STATS request when the run starts: the session's
    protocol may have been used directly in between (the `protocol` fixture), and what it
    measured then is no part of this run (#23).
    """

    def __init__(self, session: Any, model_key: str):
        super().__init__(session.protocol)
        self._session = session
        self._key = model_key
        self._skip = session.loaded_model == model_key
        self.uploaded = False
        self._mark_statistics()

    def _mark_statistics(self) -> None:
        """Remembers the session's list-valued statistics as they are now, before the run."""
        try:
            stats = self.wrapped.download_statistics()
        except NotImplementedError:  # a protocol without STATS: what the client holds
            stats = self.wrapped.statistics_so_far()
        self._session.info["stats_seen"] = {
            key: list(values) for key, values in stats.items() if isinstance(values, list)
        }

    def initialize_client(self) -> bool:
        return True

    def disconnect(self) -> None:
        return None

    def upload_io_specification(self, path: Path) -> bool:
        if self._skip:
            return True
        self._session.loaded_model = None  # replaced below once the model is in place
        return self.wrapped.upload_io_specification(path)

    def upload_io_specification_dict(self, spec: dict) -> bool:
        if self._skip:
            return True
        self._session.loaded_model = None
        return self.wrapped.upload_io_specification_dict(spec)

    def upload_model(self, path: Path) -> bool:
        if self._skip:
            return True
        ok = self.wrapped.upload_model(path)
        if ok:
            self._session.loaded_model = self._key
            self.uploaded = True
        return ok

    def download_statistics(self, final: bool = False) -> Measurements:
        stats = self.wrapped.download_statistics(final=final)
        seen = self._session.info.setdefault("stats_seen", {})
        for key in list(stats.keys()):
            values = stats[key]
            if not isinstance(values, list):
                continue
            before = seen.get(key, [])
            seen[key] = list(values)
            # only a list that extends the previous one accumulates since connection; a
            # snapshot (firmware's peak_allocated, a last-inference count) or a series the
            # target restarted is this run's own and is kept whole
            if before and len(values) > len(before) and values[: len(before)] == before:
                stats[key] = values[len(before):]
        return stats

    def statistics_so_far(self) -> Measurements:
        """The wrapped protocol's held statistics, cut to this run's part as
        `download_statistics` cuts them (without moving the session's mark)."""
        stats = self.wrapped.statistics_so_far()
        seen = self._session.info.get("stats_seen", {})
        for key in list(stats.keys()):
            values, before = stats[key], seen.get(key, [])
            if (isinstance(values, list) and before and len(values) >= len(before)
                    and values[: len(before)] == before):
                stats[key] = values[len(before):]
        return stats

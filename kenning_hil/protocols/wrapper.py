"""ProtocolWrapper: a RuntimeProtocol that hands every request to another protocol.

A wrapper changes a few requests of the protocol under it (e.g. skips an upload, cuts the
statistics to one run's) and passes the rest on unchanged. Each method of the interface is
forwarded by name here, so a wrapper offers exactly the interface and nothing of the wrapped
object's internals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kenning_hil.core.measurements import Measurements
from kenning_hil.core.protocol import Message, RuntimeProtocol, ServerStatus


class ProtocolWrapper(RuntimeProtocol):
    """Forwards every RuntimeProtocol method to `wrapped`; subclasses override some."""

    def __init__(self, wrapped: RuntimeProtocol):
        self.wrapped = wrapped

    # -- set-up ---------------------------------------------------------------------------

    @property
    def host_quantization(self) -> bool:  # type: ignore[override]
        return self.wrapped.host_quantization

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return self.wrapped.max_message_size

    @property
    def upload_progress(self) -> Callable[[int, int], None] | None:  # type: ignore[override]
        return self.wrapped.upload_progress

    @upload_progress.setter
    def upload_progress(self, watcher: Callable[[int, int], None] | None) -> None:
        self.wrapped.upload_progress = watcher

    @property
    def connected(self) -> bool:
        return self.wrapped.connected

    @property
    def target_name(self) -> str:
        return self.wrapped.target_name

    def refusal_reason(self) -> str:
        return self.wrapped.refusal_reason()

    def initialize_client(self) -> bool:
        return self.wrapped.initialize_client()

    def initialize_server(self) -> bool:
        return self.wrapped.initialize_server()

    def disconnect(self):
        return self.wrapped.disconnect()

    # -- raw data -------------------------------------------------------------------------

    def send_data(self, data: Any) -> bool:
        return self.wrapped.send_data(data)

    def receive_data(self, connection: Any, mask: int) -> tuple[ServerStatus, Any | None]:
        return self.wrapped.receive_data(connection, mask)

    def gather_data(self, timeout: float | None = None) -> tuple[ServerStatus, Any | None]:
        return self.wrapped.gather_data(timeout)

    def receive_message(self, timeout: float | None = None) -> tuple[ServerStatus, Message | None]:
        return self.wrapped.receive_message(timeout)

    def receive_confirmation(self) -> tuple[bool, bytes | None]:
        return self.wrapped.receive_confirmation()

    # -- client requests ------------------------------------------------------------------

    def upload_input(self, data: bytes) -> bool:
        return self.wrapped.upload_input(data)

    def upload_model(self, path: Path) -> bool:
        return self.wrapped.upload_model(path)

    def upload_io_specification(self, path: Path) -> bool:
        return self.wrapped.upload_io_specification(path)

    def upload_io_specification_dict(self, spec: dict) -> bool:
        return self.wrapped.upload_io_specification_dict(spec)

    def upload_runtime(self, path: Path) -> bool:
        return self.wrapped.upload_runtime(path)

    def request_processing(self, get_time_func: Callable[[], float] = time.perf_counter) -> bool:
        return self.wrapped.request_processing(get_time_func)

    def download_output(self) -> tuple[bool, bytes | None]:
        return self.wrapped.download_output()

    def statistics_so_far(self) -> Measurements:
        return self.wrapped.statistics_so_far()

    def download_statistics(self, final: bool = False) -> Measurements:
        return self.wrapped.download_statistics(final=final)

    # -- server answers -------------------------------------------------------------------

    def request_success(self, data: bytes | None = b"") -> bool:
        return self.wrapped.request_success(data)

    def request_failure(self, reason: str = "") -> bool:
        return self.wrapped.request_failure(reason)

    def close_server(self) -> None:
        self.wrapped.close_server()

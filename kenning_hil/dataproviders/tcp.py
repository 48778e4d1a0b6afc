"""TCPStreamProvider: samples arriving as frames on a TCP connection (a sensor, a camera
bridge, another process).

A frame is a 4-byte little-endian payload length, then the payload: one sample's tensor,
row-major in `dtype` and `shape` (without the batch axis), followed, when `labelled`, by its
class id as a little-endian int32. The provider connects to host:port, or with `listen`
waits there for one sender. The sender closing the connection between frames ends the flow;
closing it inside a frame, or a frame of the wrong size, is an error naming the frame.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import numpy as np

from kenning_hil.core.dataprovider import DataProvider, Sample
from kenning_hil.core.errors import ConfigurationError, KenningHILError, os_reason
from kenning_hil.dataproviders.common import sample_dtype

HEADER = struct.Struct("<I")
LABEL = struct.Struct("<i")


class StreamError(KenningHILError):
    """The stream broke its framing (a cut frame, a frame of the wrong size)."""


class TCPStreamProvider(DataProvider):
    """Feeds a flow from length-prefixed tensor frames on a TCP connection."""

    arguments_structure = {
        "host": {"description": "Address to connect to (or listen on, with listen)",
                 "type": str, "default": "127.0.0.1"},
        "port": {"description": "TCP port", "type": int, "required": True},
        "listen": {"description": "Wait for a sender to connect instead of connecting",
                   "type": bool, "default": False},
        "shape": {"description": "Shape of one sample without the batch axis", "type": int,
                  "is_list": True, "required": True},
        "dtype": {"description": "Element type of the samples", "type": str,
                  "default": "float32"},
        "labelled": {"description": "Each frame ends with the sample's class id (int32)",
                     "type": bool, "default": False},
        "timeout": {"description": "Seconds to wait for the connection and for each frame",
                    "type": float, "default": 30.0},
    }

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        listen: bool = False,
        shape: list[int] | None = None,
        dtype: str = "float32",
        labelled: bool = False,
        timeout: float = 30.0,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.dtype = sample_dtype(dtype)
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"parameter 'port' must be 0..65535, got {port}")
        self.host, self.port, self.listen = host, port, listen
        self.shape = tuple(shape or ())
        self.labelled, self.timeout = labelled, timeout
        self.sample_bytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.frame_bytes = self.sample_bytes + (LABEL.size if labelled else 0)
        self.frames = 0
        self._server: socket.socket | None = None
        self._connection: socket.socket | None = None
        if listen:  # bound now, so a sender may connect as soon as the flow is built
            try:
                self._server = socket.create_server((host, port))
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot listen on {host}:{port}: {os_reason(exc)}") from None
            self.port = self._server.getsockname()[1]

    def get_io_specification(self) -> dict:
        spec = [{"shape": [1, *self.shape], "dtype": self.dtype.name}]
        return {"input": {}, "output": {"data": spec, "label": None}}

    def prepare(self) -> None:
        try:
            if self._server is not None:
                self._server.settimeout(self.timeout)
                self._connection, _ = self._server.accept()
            else:
                self._connection = socket.create_connection((self.host, self.port),
                                                            timeout=self.timeout)
            self._connection.settimeout(self.timeout)
        except OSError as exc:
            how = "no sender connected to" if self._server is not None else "cannot connect to"
            raise ConfigurationError(
                f"{how} {self.host}:{self.port}: {os_reason(exc)}") from None

    def _read(self, count: int, at_boundary: bool) -> bytes | None:
        parts, left = [], count
        while left:
            try:
                chunk = self._connection.recv(min(left, 1 << 20))
            except OSError as exc:
                raise StreamError(
                    f"{self.host}:{self.port}: frame {self.frames}: {os_reason(exc)}") from None
            if not chunk:
                if at_boundary and left == count:
                    return None
                raise StreamError(
                    f"{self.host}:{self.port}: frame {self.frames} cut after "
                    f"{count - left} of {count} bytes")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def fetch_input(self) -> Any:
        if self._connection is None:
            self.prepare()
        header = self._read(HEADER.size, at_boundary=True)
        if header is None:
            raise StopIteration  # the sender is done
        (length,) = HEADER.unpack(header)
        if length != self.frame_bytes:
            raise StreamError(
                f"{self.host}:{self.port}: frame {self.frames} has {length} bytes, expected "
                f"{self.frame_bytes} ({'x'.join(map(str, self.shape))} {self.dtype.name}"
                f"{' + int32 label' if self.labelled else ''})")
        payload = self._read(length, at_boundary=False)
        self.frames += 1
        data = np.frombuffer(payload, dtype=self.dtype, count=self.sample_bytes //
                             self.dtype.itemsize).reshape((1, *self.shape))
        if not self.labelled:
            return [data]
        (label,) = LABEL.unpack_from(payload, self.sample_bytes)
        return Sample([data], np.array([label], dtype=np.int64))

    def detach_from_source(self) -> None:
        for sock in (self._connection, self._server):
            if sock is not None:
                sock.close()
        self._connection = self._server = None


def frame(sample: np.ndarray, label: int | None = None) -> bytes:
    """One frame of the stream (what a sender writes): header, tensor, optional label."""
    payload = np.ascontiguousarray(sample).tobytes()
    if label is not None:
        payload += LABEL.pack(int(label))
    return HEADER.pack(len(payload)) + payload

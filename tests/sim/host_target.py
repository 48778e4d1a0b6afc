"""ctypes binding of firmware/build/host/libkhil_proto.so: the firmware's frame codec,
decoder and session (with the interpreter) built for the host."""

from __future__ import annotations

import ctypes
from pathlib import Path

RX_EVENTS = {0: "none", 1: "frame", 2: "checksum", 3: "truncated", 4: "oversized"}
COUNTERS = ("frames", "skipped_bytes", "bad_checksums", "truncated", "oversized")
MAX_PAYLOAD = 124


class ProtoLib:
    def __init__(self, path: Path):
        lib = ctypes.CDLL(str(path))
        vp, sz, u8p = ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint8)
        lib.khil_frame_encode.restype = sz
        lib.khil_frame_encode.argtypes = [ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint16,
                                          ctypes.c_char_p, sz, u8p, sz]
        lib.khil_checksum.restype = ctypes.c_uint8
        lib.khil_checksum.argtypes = [ctypes.c_char_p, ctypes.c_char_p, sz]
        lib.khil_host_decoder_new.restype = vp
        lib.khil_host_decoder_new.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.khil_host_decoder_free.argtypes = [vp]
        lib.khil_decoder_push.restype = sz
        lib.khil_decoder_push.argtypes = [vp, ctypes.c_char_p, sz]
        lib.khil_decoder_expire.argtypes = [vp]
        lib.khil_host_decoder_next.restype = ctypes.c_int
        lib.khil_host_decoder_next.argtypes = [vp, ctypes.POINTER(ctypes.c_uint32), u8p]
        lib.khil_host_target_new.restype = vp
        lib.khil_host_target_new.argtypes = [sz]
        lib.khil_host_target_free.argtypes = [vp]
        lib.khil_host_target_feed.argtypes = [vp, ctypes.c_char_p, sz]
        lib.khil_host_target_line_idle.argtypes = [vp]
        lib.khil_host_target_take.restype = sz
        lib.khil_host_target_take.argtypes = [vp, u8p, sz]
        lib.khil_host_target_pending_output.restype = sz
        lib.khil_host_target_pending_output.argtypes = [vp]
        lib.khil_host_target_counter.restype = ctypes.c_uint32
        lib.khil_host_target_counter.argtypes = [vp, ctypes.c_int]
        self.lib = lib

    def encode(self, mtype: int, flow: int, flags: int, payload: bytes = b"") -> bytes:
        out = (ctypes.c_uint8 * (12 + len(payload)))()
        n = self.lib.khil_frame_encode(mtype, flow, flags, payload, len(payload), out, len(out))
        assert n == len(out)
        return bytes(out)

    def checksum(self, frame: bytes) -> int:
        return self.lib.khil_checksum(frame[:12], frame[12:], len(frame) - 12)


class CDecoder:
    """The firmware's streaming decoder."""

    def __init__(self, proto: ProtoLib, max_payload: int = MAX_PAYLOAD, verify: bool = True):
        self.lib = proto.lib
        self.handle = self.lib.khil_host_decoder_new(max_payload, int(verify))

    def close(self) -> None:
        if self.handle:
            self.lib.khil_host_decoder_free(self.handle)
            self.handle = None

    def events(self, data: bytes = b"", expire: bool = False) -> list[tuple]:
        """Pushes data and returns all events: ("frame", type, flow, flags, size, checksum,
        payload) or (kind, type, flow, flags, size, checksum, b"")."""
        out = []
        fields = (ctypes.c_uint32 * 6)()
        payload = (ctypes.c_uint8 * MAX_PAYLOAD)()
        while data or expire:
            taken = self.lib.khil_decoder_push(self.handle, data, len(data))
            data = data[taken:]
            if expire and not data:
                self.lib.khil_decoder_expire(self.handle)
                expire = False
            while (ev := self.lib.khil_host_decoder_next(self.handle, fields, payload)) != 0:
                out.append((RX_EVENTS[ev], *fields[:5], bytes(payload[: fields[5]])))
        return out


class HostTarget:
    """The whole firmware logic (session + interpreter) minus the board."""

    def __init__(self, proto: ProtoLib, region_size: int = 1 << 20):
        self.lib = proto.lib
        self.handle = self.lib.khil_host_target_new(region_size)
        assert self.handle

    def close(self) -> None:
        if self.handle:
            self.lib.khil_host_target_free(self.handle)
            self.handle = None

    def feed(self, data: bytes) -> None:
        self.lib.khil_host_target_feed(self.handle, data, len(data))

    def line_idle(self) -> None:
        self.lib.khil_host_target_line_idle(self.handle)

    def take(self) -> bytes:
        n = self.lib.khil_host_target_pending_output(self.handle)
        buf = (ctypes.c_uint8 * max(n, 1))()
        got = self.lib.khil_host_target_take(self.handle, buf, n)
        return bytes(buf[:got])

    def counters(self) -> dict[str, int]:
        return {name: self.lib.khil_host_target_counter(self.handle, i)
                for i, name in enumerate(COUNTERS)}

"""Hostile traffic for a target server: the fuzz cases an outside tester throws at it, and a
runner that counts what the server did with them.

A case is one connection's worth of bytes in one of `CATEGORIES`: random bytes, random
headers, oversize lengths, truncated frames, requests in the wrong order, malicious models,
absurd io specs, and well-formed sessions with one frame mutated. `fuzz_tcp_server` sends
each case on its own connection to a live TCP server, closes its sending side and reads
until the server closes, interleaving well-formed sessions; it counts crashes (the server
process is gone), hangs (more than `answer_timeout` seconds without an answer or a close, or
without the handshake of the next connection), malformed answers, good sessions passed and
failed, and the server's resident memory. `benchmarks/fuzz_server.py` runs it at scale; the
tests run it against `kenning-hil serve`.

Cases are drawn from a seeded `random.Random`: a run is reproducible from its seed.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kenning_hil.core.errors import os_reason
from kenning_hil.core.protocol import Flag, FlowControl, Message, MessageType
from kenning_hil.protocols.chunking import encode_message
from kenning_hil.protocols.frame import FrameDecoder, encode_frame, pack_header

CATEGORIES = (
    "random_bytes",
    "random_header",
    "oversize_length",
    "truncated",
    "wrong_order",
    "malicious_model",
    "absurd_io_spec",
    "mutated_session",
)

_HOST = int(Flag.IS_HOST_MESSAGE)
_REQUEST = int(FlowControl.REQUEST)


@dataclass
class GoodSession:
    """What a well-formed session uploads: an io spec, a model and one sample's input."""

    io_spec: dict
    model: bytes
    sample: bytes


def _request(mtype: int, payload: bytes = b"", frame_size: int = 1 << 20) -> list[bytes]:
    return list(encode_message(Message(mtype, payload, _HOST, _REQUEST), frame_size))


def session_frames(good: GoodSession, frame_size: int = 1 << 20) -> list[bytes]:
    """The frames of a whole well-formed session, as a host would send them."""
    frames = _request(MessageType.IO_SPEC, json.dumps(good.io_spec).encode(), frame_size)
    frames += _request(MessageType.MODEL, good.model, frame_size)
    for mtype, payload in (
        (MessageType.DATA, good.sample),
        (MessageType.PROCESS, b""),
        (MessageType.OUTPUT, b""),
        (MessageType.STATS, b""),
    ):
        frames += _request(mtype, payload, frame_size)
    return frames


def _absurd_io_spec(rng: random.Random, good: GoodSession, serial: bool) -> bytes:
    """An io spec no server should spend time on. `serial`: sized for a serial line (tens
    of kB at most: 1.5 MB takes minutes even on an emulated UART)."""
    entry = {"name": "x", "shape": [1, 4], "dtype": "float32"}
    kind = rng.randrange(10)
    if kind == 0:  # thousands of tiny inputs (quadratic handling kept servers busy for s)
        count = rng.choice([300, 1_500] if serial else [2_000, 5_000, 20_000])
        spec = {"input": [dict(entry, name=f"i{k}", shape=[1]) for k in range(count)],
                "output": [entry]}
    elif kind == 1:  # absurd rank
        ranks = [40, 1_000] if serial else [40, 1_000, 20_000]
        spec = {"input": [dict(entry, shape=[1] * rng.choice(ranks))],
                "output": [entry]}
    elif kind == 2:  # absurd element count
        spec = {"input": [dict(entry, shape=[1, 1 << rng.randrange(20, 60), 1 << 20])],
                "output": [entry]}
    elif kind == 3:  # absurd output, fine input
        spec = {"input": good.io_spec["input"],
                "output": [dict(entry, shape=[-1, 1 << 30, 1 << 30])]}
    elif kind == 4:  # deep nesting
        depth = rng.choice([1_000, 5_000 if serial else 100_000])
        return b"[" * depth + b"]" * depth
    elif kind == 5:  # integers of thousands of digits
        return b'{"input": [{"name": "x", "shape": [' + b"9" * 5_000 + b'], "dtype": "int8"}]}'
    elif kind == 6:  # wrong types everywhere
        spec = rng.choice([
            {"input": "x", "output": 5},
            {"input": [{"name": 1, "shape": "big", "dtype": "complex128"}], "output": []},
            {"input": [{"name": "x", "shape": [-5, 0], "dtype": "float32"}], "output": []},
            {"input": [dict(entry, order=7)], "output": [dict(entry, scale=-1, zero_point=0)]},
            [1, 2, 3],
            None,
        ])
    elif kind == 7:  # huge names and unknown keys
        spec = {"input": [dict(entry, name="n" * rng.choice([10_000, 500_000]))],
                "output": [entry], "zzz": list(range(1_000))}
        if serial:
            spec["input"][0]["name"] = "n" * 5_000
    elif kind == 8:  # not UTF-8 / not JSON
        return rng.randbytes(rng.randrange(1, 5_000))
    else:  # a good spec, truncated
        text = json.dumps(good.io_spec).encode()
        return text[: rng.randrange(1, len(text))]
    return json.dumps(spec).encode()


def _malicious_model(rng: random.Random, good: GoodSession) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 20_000))
    if kind == 1:  # a real model cut short
        return good.model[: rng.randrange(1, len(good.model))]
    if kind == 2:  # a real model with bytes flipped
        model = bytearray(good.model)
        for _ in range(rng.randrange(1, 20)):
            model[rng.randrange(len(model))] ^= rng.randrange(1, 256)
        return bytes(model)
    if kind == 3:  # a real model with garbage appended
        return good.model + rng.randbytes(rng.randrange(1, 5_000))
    return b"\x00" * rng.randrange(1, 100_000)


def hostile_case(
    rng: random.Random, category: str, good: GoodSession, max_frame_size: int = 1 << 20
) -> list[bytes]:
    """The frames (or raw byte strings) of one hostile connection of `category`."""
    if category == "random_bytes":
        return [rng.randbytes(rng.randrange(1, 3_000))]
    if category == "random_header":
        header = pack_header(
            rng.choice([rng.randrange(0, 300), rng.randrange(0, 1 << 38)]),
            rng.randrange(4),
            rng.randrange(256),
            rng.randrange(1 << 16),
            rng.choice([0, 1, rng.randrange(0, 300), rng.randrange(0, 1 << 32)]),
        )
        return [header + rng.randbytes(rng.randrange(0, 300))]
    if category == "oversize_length":
        size = rng.choice([max_frame_size, max_frame_size + 1, 1 << 31, (1 << 32) - 1])
        mtype = rng.choice([MessageType.MODEL, MessageType.DATA, MessageType.IO_SPEC, 7])
        header = pack_header(
            mtype, _REQUEST, rng.randrange(256), Flag.HAS_PAYLOAD | Flag.FIRST | _HOST, size
        )
        return [header + rng.randbytes(rng.randrange(0, 2_000))]
    if category == "truncated":
        frames = session_frames(good, rng.choice([136, 1_000, max_frame_size]))
        cut = rng.randrange(1, len(frames) + 1)
        frames = frames[:cut]
        last = frames[-1]
        frames[-1] = last[: rng.randrange(1, len(last))] if len(last) > 1 else last
        return frames
    if category == "wrong_order":
        steps = [
            _request(MessageType.PROCESS),
            _request(MessageType.OUTPUT),
            _request(MessageType.DATA, good.sample),
            _request(MessageType.STATS),
            _request(MessageType.MODEL, good.model, 1_000)[1:],  # continuation, no FIRST
            [encode_frame(MessageType.MODEL, FlowControl.ACKNOWLEDGE, _HOST)],
            [encode_frame(MessageType.DATA, FlowControl.REQUEST_RETRANSMIT, _HOST,
                          count=0xFFFFFFFF)],
            [encode_frame(MessageType.OUTPUT, FlowControl.TRANSMISSION, _HOST, b"x")],
            _request(MessageType.PING, b"payload"),
            _request(rng.randrange(14, 256), b"unknown"),
        ]
        rng.shuffle(steps)
        return [frame for step in steps[: rng.randrange(1, len(steps) + 1)] for frame in step]
    if category == "malicious_model":
        frames = _request(MessageType.IO_SPEC, json.dumps(good.io_spec).encode())
        frames += _request(MessageType.MODEL, _malicious_model(rng, good),
                           rng.choice([1_000, max_frame_size]))
        frames += _request(MessageType.DATA, good.sample)
        frames += _request(MessageType.PROCESS) + _request(MessageType.OUTPUT)
        return frames
    if category == "absurd_io_spec":
        spec = _absurd_io_spec(rng, good, serial=max_frame_size <= 1_000)
        frames = _request(MessageType.IO_SPEC, spec, max_frame_size)
        if rng.random() < 0.5:  # and then carry on as if it had been accepted
            frames += _request(MessageType.MODEL, good.model)
            frames += _request(MessageType.DATA, good.sample) + _request(MessageType.PROCESS)
            frames += _request(MessageType.OUTPUT)
        return frames
    if category == "mutated_session":
        frames = session_frames(good, rng.choice([136, 1_000, max_frame_size]))
        index = rng.randrange(len(frames))
        frame = bytearray(frames[index])
        for _ in range(rng.randrange(1, 4)):
            frame[rng.randrange(len(frame))] ^= rng.randrange(1, 256)
        frames[index] = bytes(frame)
        return frames
    raise ValueError(f"unknown hostile case category {category!r} (known: {CATEGORIES})")


def resident_bytes(pid: int) -> int | None:
    """Resident memory of process `pid` and its child processes (a runtime worker), from
    Linux /proc; None where it cannot be read."""
    try:
        total = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total = int(line.split()[1]) * 1024
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return None
    for child in children:
        total += resident_bytes(int(child)) or 0
    return total


@dataclass
class FuzzReport:
    """What `fuzz_tcp_server` counted."""

    cases: int = 0
    frames: int = 0
    bytes: int = 0
    answer_frames: int = 0
    malformed_answers: int = 0
    crashes: int = 0
    hangs: int = 0
    good_passed: int = 0
    good_failed: int = 0
    retried_pings: int = 0  # serial: bursts after which the first connect PING went unanswered
    rss_start: int | None = None
    rss_warm: int | None = None  # after the warm-up cases
    rss_end: int | None = None
    by_category: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the first few, with their case

    @property
    def growth_after_warmup(self) -> int | None:
        if self.rss_warm is None or self.rss_end is None:
            return None
        return self.rss_end - self.rss_warm

    def note(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)

    def lines(self) -> list[str]:
        def mb(value: int | None) -> str:
            return "n/a" if value is None else f"{value / 1e6:.1f} MB"

        growth = self.growth_after_warmup
        return [
            f"cases: {self.cases} ({', '.join(f'{k} {v}' for k, v in self.by_category.items())})",
            f"frames sent: {self.frames}, bytes sent: {self.bytes}, "
            f"answer frames: {self.answer_frames}, malformed answers: {self.malformed_answers}",
            f"crashes: {self.crashes}, hangs: {self.hangs}"
            + (f", connect PING answered only when retried: {self.retried_pings}"
               if self.retried_pings else ""),
            f"good sessions passed: {self.good_passed}, failed: {self.good_failed}",
            f"server RSS: start {mb(self.rss_start)}, after warm-up {mb(self.rss_warm)}, "
            f"end {mb(self.rss_end)}, growth after warm-up "
            f"{'n/a' if growth is None else f'{growth / 1e6:+.2f} MB'}",
            *(f"problem: {p}" for p in self.problems),
        ]


def _one_connection(
    host: str,
    port: int,
    chunks: list[bytes],
    answer_timeout: float,
    report: FuzzReport,
    abrupt: bool = False,
) -> str | None:
    """Sends `chunks` on a fresh connection, closes the sending side, reads until the server
    closes. `abrupt`: closes at once after sending instead, with a reset (SO_LINGER 0), as a
    killed client does; the next connection finds out whether the server recovered. Returns
    what went wrong (a hang), or None."""
    try:
        sock = socket.create_connection((host, port), timeout=answer_timeout)
    except OSError as exc:
        return f"cannot connect: {os_reason(exc)}"
    try:
        sock.settimeout(answer_timeout)
        try:
            greeting = sock.recv(1)
        except TimeoutError:
            return f"no handshake within {answer_timeout:g} s"
        except OSError as exc:
            return f"no handshake: {os_reason(exc)}"
        if greeting != b"\x00":
            return f"handshake {greeting!r} instead of 00 (server busy with an earlier client?)"
        stream = b"".join(chunks)
        try:
            sock.sendall(stream)
            if abrupt:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return None
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may drop a connection before it has all of it
        received = bytearray()
        while True:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                return f"neither an answer nor a close within {answer_timeout:g} s"
            except OSError:
                break  # reset by the server: a close
            if not data:
                break
            received += data
        decoder = FrameDecoder()
        decoder.feed(bytes(received))
        while decoder.next() is not None:
            report.answer_frames += 1
        if decoder.errors or decoder.pending:
            report.malformed_answers += 1
            report.note(f"malformed answer bytes {bytes(received[:64]).hex()}...")
        return None
    finally:
        sock.close()


def fuzz_tcp_server(
    host: str,
    port: int,
    cases: int,
    good: GoodSession,
    good_session: Callable[[], None],
    *,
    seed: int = 0,
    pid: int | None = None,
    good_every: int = 70,
    warmup: int = 1_000,
    answer_timeout: float = 2.0,
    categories: tuple[str, ...] = CATEGORIES,
    max_frame_size: int = 1 << 20,
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """Runs `cases` hostile connections against the server at host:port, with
    `good_session()` (which raises on failure) after every `good_every` of them and at the
    end. `pid`: the server's process, for crash detection and memory readings (RSS at the
    start, after `warmup` cases and at the end)."""
    rng = random.Random(seed)
    report = FuzzReport(by_category={c: 0 for c in categories})
    report.rss_start = resident_bytes(pid) if pid else None

    def run_good(after: str) -> None:
        try:
            good_session()
        except Exception as exc:  # noqa: BLE001 - any failure of a good session counts
            report.good_failed += 1
            report.note(f"good session after {after} failed: {type(exc).__name__}: {exc}")
        else:
            report.good_passed += 1

    def alive() -> bool:
        return pid is None or Path(f"/proc/{pid}").exists() and _not_zombie(pid)

    for index in range(cases):
        category = categories[index % len(categories)]
        chunks = hostile_case(rng, category, good, max_frame_size)
        report.cases += 1
        report.by_category[category] += 1
        report.frames += len(chunks)
        report.bytes += sum(len(c) for c in chunks)
        abrupt = index % 5 == 4  # every fifth client vanishes right after sending
        problem = _one_connection(host, port, chunks, answer_timeout, report, abrupt)
        if not alive():
            report.crashes += 1
            report.note(f"server gone after case {index} ({category})")
            break
        if problem is not None:
            report.hangs += 1
            report.note(f"case {index} ({category}): {problem}")
        if index + 1 == warmup and pid:
            report.rss_warm = resident_bytes(pid)
        if (index + 1) % good_every == 0:
            run_good(f"case {index} ({category})")
        if progress is not None and (index + 1) % 1_000 == 0:
            progress(report)
    if alive():
        run_good("the last case")
    report.rss_end = resident_bytes(pid) if pid else None
    return report


def fuzz_serial_target(
    port: str,
    cases: int,
    good: GoodSession,
    good_session: Callable[[], None],
    *,
    seed: int = 0,
    alive: Callable[[], bool] = lambda: True,
    good_every: int = 70,
    answer_timeout: float = 2.0,
    quiet: float = 0.05,
    categories: tuple[str, ...] = CATEGORIES,
    max_frame_size: int = 136,
    start: int = 0,
    only: frozenset[str] | None = None,
    progress: Callable[[FuzzReport], None] | None = None,
    trace: Callable[[str], None] | None = None,
) -> FuzzReport:
    """Runs `cases` hostile bursts down a serial line (a device path or pyserial URL, e.g.
    QEMU's UART as ``socket://``) to a target that speaks the protocol (firmware, or
    ``serve --serial``). Half the bursts start with a connect PING, so that requests meet an
    open session.

    After each burst the runner waits while the target reads it: a serial line moves ~10 kB/s
    (an emulated UART on a loaded host too), so a 100 kB burst takes 10 s to read; a target
    that reads nothing and says nothing for `answer_timeout` s with bytes still unread is a
    hang. It then reads until the line is quiet for `quiet` s (a target still talking after
    5 s is a hang), and a connect PING must get its SUCCESS answer within `answer_timeout`
    s, retried up to 5 times as a host does (a PING that arrives while the target still
    waits for the rest of a truncated frame is part of that frame until the target's RX gap
    timer drops it; bursts needing a retry are counted in `retried_pings`); none answered is
    a hang. The answers of retried PINGs are read before the next burst, so that none is
    left for the next host on the line. `alive()` says whether the target process still
    runs (a crash otherwise). `good_session()` opens the port itself: the runner closes its
    own connection around it.

    `start`, `only`: run bursts start..cases-1, and of them only those of the categories in
    `only`; the bursts are the same as in a whole run with that seed (the skipped ones are
    drawn, not sent). `trace(line)` gets every burst and every frame the target sent, with
    the time since the start: the target's LOGS say what it did with the burst."""
    from kenning_hil.protocols.uart import SerialTransport

    rng = random.Random(seed)
    report = FuzzReport(by_category={c: 0 for c in categories if only is None or c in only})
    connect = encode_frame(
        MessageType.PING, _REQUEST, _HOST | Flag.SUCCESS | Flag.FIRST | Flag.LAST
    )
    line = SerialTransport(port, max_frame_size=max_frame_size)
    # one decoder for the whole line: an answer may straddle two bursts' reads
    decoder = FrameDecoder(max_frame_size)
    began = time.monotonic()

    def note(text: str) -> None:
        if trace is not None:
            trace(f"{time.monotonic() - began:9.3f} {text}")

    def take(data: bytes) -> list:
        """Feeds what the target sent; returns its frames (each also counted and traced)."""
        decoder.feed(data)
        frames = []
        while (frame := decoder.next()) is not None:
            report.answer_frames += 1
            frames.append(frame)
            if trace is not None:
                kind = (MessageType(frame.message_type).name if frame.message_type < 14
                        else str(frame.message_type))
                text = frame.payload[:120] if frame.message_type == MessageType.LOGS or (
                    frame.flags & Flag.FAIL) else b""
                note(f"  <- {kind} {FlowControl(frame.flow_control).name} "
                     f"flags={frame.flags:#06x} {text!r}")
        return frames

    def read_burst() -> bool:
        """Reads answers while the target still reads the burst; False: it neither read nor
        answered for `answer_timeout` s with bytes left unread."""
        unread_before = line.unread()
        last_progress = time.monotonic()
        while True:
            data = line.receive(quiet)
            now = time.monotonic()
            if data:
                take(data)
                last_progress = now
                continue
            unread = line.unread()
            if not unread:  # all read (or the line cannot tell: the PING retries cover it)
                return True
            if unread_before is None or unread < unread_before:
                unread_before = unread
                last_progress = now
            elif now - last_progress > answer_timeout:
                note(f"  target stopped reading: {unread} bytes unread")
                return False

    def read_quiet() -> bool:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            data = line.receive(quiet)
            if not data:
                return True
            take(data)
        return False

    def is_ping_answer(frame) -> bool:
        return (frame.message_type == MessageType.PING
                and frame.flow_control == FlowControl.TRANSMISSION
                and bool(frame.flags & Flag.SUCCESS))

    def ping_answered() -> int:
        """Tries (1-5) until a connect PING was answered, as a host retries; 0: never.
        After a retry, waits for the answers of the other PINGs sent."""
        answers = 0
        for attempt in range(1, 6):
            line.send(connect)
            note(f"  -> connect PING {attempt}")
            deadline = time.monotonic() + answer_timeout
            while not answers and time.monotonic() < deadline:
                data = line.receive(min(0.1, max(deadline - time.monotonic(), 0.001)))
                answers += sum(map(is_ping_answer, take(data)))
            if answers:
                break
        else:
            return 0
        if attempt > 1:  # let the other PINGs' answers arrive now, not in a later read
            deadline = time.monotonic() + answer_timeout
            while answers < attempt and time.monotonic() < deadline:
                answers += sum(map(is_ping_answer, take(line.receive(0.1))))
        return attempt

    try:
        for index in range(cases):
            category = categories[index % len(categories)]
            chunks = hostile_case(rng, category, good, max_frame_size)
            if rng.random() < 0.5:
                chunks = [connect, *chunks]
            if index < start or only is not None and category not in only:
                continue  # drawn, so the bursts after it are those of a whole run
            report.cases += 1
            report.by_category[category] += 1
            report.frames += len(chunks)
            stream = b"".join(chunks)
            report.bytes += len(stream)
            errors_before = decoder.errors
            note(f"burst {index} {category}: {len(chunks)} frames, {len(stream)} bytes")
            line.send(stream)
            reading = read_burst()
            quiet_again = reading and read_quiet()
            answered = ping_answered()
            if answered > 1:
                report.retried_pings += 1
            if decoder.errors > errors_before:
                report.malformed_answers += 1
                report.note(f"case {index} ({category}): malformed answer frames")
            if not alive():
                report.crashes += 1
                report.note(f"target gone after case {index} ({category})")
                break
            if not reading or not quiet_again or not answered:
                report.hangs += 1
                what = ("stopped reading the burst" if not reading
                        else "kept talking for 5 s" if not quiet_again
                        else "5 connect PINGs unanswered")
                report.note(f"case {index} ({category}): {what}")
            if (index + 1) % good_every == 0 or index + 1 == cases:
                line.close()
                note("good session")
                try:
                    good_session()
                except Exception as exc:  # noqa: BLE001 - any failure counts
                    report.good_failed += 1
                    report.note(f"good session after case {index} failed: "
                                f"{type(exc).__name__}: {exc}")
                    note(f"good session failed: {exc}")
                else:
                    report.good_passed += 1
                line = SerialTransport(port, max_frame_size=max_frame_size)
                decoder = FrameDecoder(max_frame_size)
            if progress is not None and (index + 1) % 500 == 0:
                progress(report)
    finally:
        line.close()
    return report


def _not_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"

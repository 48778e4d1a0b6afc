"""A serial line with faults the test places: a loopback TCP relay between the host and a
QEMU board's UART socket that flips a byte or stops for a while at a given point of the
stream, like a noisy wire or a simulator starved of CPU (#16 finding 6).

    line = FaultyLine(board.url)
    line.flip(line.to_board + 1400)          # one bit of the next request's 11th frame
    line.pause(line.to_board + 60, 1.5)       # the line stops mid-frame for 1.5 s
    line.pause_answer(14, 1.0)                # the board's next answer stops after 14 bytes
    protocol = UARTProtocol(port=line.url)

Offsets count the bytes relayed towards the board since the line was opened.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlparse

from kenning_hil.protocols.upload_progress import socket_unread


class FaultyLine:
    def __init__(self, board_url: str):
        target = urlparse(board_url)
        self._board = socket.create_connection((target.hostname, target.port), timeout=10)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self.to_board = 0  # bytes relayed host -> board so far
        self._lock = threading.Lock()
        self._flips: set[int] = set()
        self._pauses: dict[int, float] = {}
        self._answer_pause: tuple[int, float] | None = None
        self._host: socket.socket | None = None
        self._closed = False
        self._threads = [threading.Thread(target=self._accept_and_relay, daemon=True)]
        self._threads[0].start()

    def flip(self, offset: int) -> None:
        """XORs the byte at host->board `offset` with 0x01."""
        with self._lock:
            self._flips.add(offset)

    def pause(self, offset: int, seconds: float) -> None:
        """Holds the host->board stream for `seconds` just before `offset`."""
        with self._lock:
            self._pauses[offset] = seconds

    def pause_answer(self, after: int, seconds: float) -> None:
        """Holds the board->host stream for `seconds` after its next `after` bytes."""
        with self._lock:
            self._answer_pause = (after, seconds)

    def close(self) -> None:
        self._closed = True
        for sock in (self._host, self._board, self._listener):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        for thread in self._threads:
            thread.join(5)

    # -- relaying --------------------------------------------------------------------------

    def _accept_and_relay(self) -> None:
        try:
            self._host, _ = self._listener.accept()
        except OSError:
            return
        self._host.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._board.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._board.settimeout(None)
        back = threading.Thread(target=self._relay_answers, daemon=True)
        self._threads.append(back)
        back.start()
        self._relay_requests()

    def _relay_requests(self) -> None:
        assert self._host is not None
        while not self._closed:
            # Pass bytes on only as the board reads them, so what it has not read yet waits
            # on the host's side, where the host sees it (Transport.unread), as without a relay
            while (socket_unread(self._board) or 0) > 512 and not self._closed:
                time.sleep(0.02)
            try:
                data = bytearray(self._host.recv(1024))
            except OSError:
                return
            if not data:
                return
            start = self.to_board
            # counted before relaying: the board's answer may reach the host (and the test
            # read `to_board`) before sendall returns
            self.to_board = start + len(data)
            with self._lock:
                for offset in [o for o in self._flips if start <= o < start + len(data)]:
                    data[offset - start] ^= 0x01
                    self._flips.discard(offset)
                cuts = sorted((o, s) for o, s in self._pauses.items()
                              if start <= o < start + len(data))
                for offset, _ in cuts:
                    del self._pauses[offset]
            sent = 0
            try:
                for offset, seconds in cuts:
                    self._board.sendall(data[sent:offset - start])
                    sent = offset - start
                    time.sleep(seconds)
                self._board.sendall(data[sent:])
            except OSError:
                return

    def _relay_answers(self) -> None:
        assert self._host is not None
        while not self._closed:
            try:
                data = self._board.recv(4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                pause, self._answer_pause = self._answer_pause, None
            try:
                if pause is not None and pause[0] < len(data):
                    self._host.sendall(data[: pause[0]])
                    time.sleep(pause[1])
                    self._host.sendall(data[pause[0]:])
                elif pause is not None:
                    self._host.sendall(data)
                    with self._lock:  # the pause point lies in a later read
                        self._answer_pause = (pause[0] - len(data), pause[1])
                else:
                    self._host.sendall(data)
            except OSError:
                return

"""The host's protocol to a QEMU board: the UART protocol over the socket QEMU exposes, with
the target named in every error, QEMU's death explained, and one instruction count per
inference.

The firmware reports the instruction count of its last inference only (STATS), so the count
is fetched after every OUTPUT. The counts then form a series that grows since the connect,
as every list a Kenning server reports does (`RuntimeProtocol.download_statistics`); the
firmware's other statistics are snapshots and pass through as they came.
"""

from __future__ import annotations

import subprocess
from typing import Any

from kenning_hil.core.measurements import LAST_INSTRUCTIONS, TARGET_INSTRUCTIONS, Measurements
from kenning_hil.protocols.bytes_protocol import UARTProtocol
from kenning_hil.protocols.transport import TransportClosedError
from kenning_hil.protocols.uart import SerialTransport
from kenning_hil.sim.process import SimulatorProcess


class QemuUARTProtocol(UARTProtocol):
    """UARTProtocol to the simulated `board` (QEMU's, or Renode's), named `label` in errors.

    With `count_instructions`, ``target_inference_instructions`` holds one count per
    inference since the connect, divided by 2**`icount_shift` (QEMU's virtual nanoseconds
    per instruction); without it, the firmware's single count is reported as
    ``last_inference_instructions``, not as a latency.
    """

    def __init__(
        self,
        label: str = "",
        count_instructions: bool = True,
        icount_shift: int = 0,
        board: SimulatorProcess | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.label = label or self.port
        self.count_instructions = count_instructions
        self.icount_shift = icount_shift
        self.board = board
        self._instructions: list[int] = []

    def describe_target(self) -> str:
        return self.label

    def open_client_transport(self) -> SerialTransport:
        return _BoardUARTTransport(
            self.label, self.board, self.port, self.baudrate, self.max_frame_size
        )

    def initialize_client(self) -> bool:
        self._instructions = []
        return super().initialize_client()

    def download_output(self) -> tuple[bool, bytes | None]:
        ok, data = super().download_output()
        if ok and self.count_instructions:
            # the firmware keeps only its last inference's count: collect it now
            counts = super().download_statistics().get_values(TARGET_INSTRUCTIONS)
            if counts:
                self._instructions.append(int(counts[-1]) >> self.icount_shift)
        return ok, data

    def statistics_so_far(self) -> Measurements:
        """The instruction counts collected so far, one per inference (no request)."""
        stats = Measurements()
        if self.count_instructions and self._instructions:
            stats[TARGET_INSTRUCTIONS] = list(self._instructions)
        return stats

    def download_statistics(self, final: bool = False) -> Measurements:
        stats = super().download_statistics(final=final)
        last_count = stats.get(TARGET_INSTRUCTIONS)
        if last_count is not None:
            del stats[TARGET_INSTRUCTIONS]
        if self.count_instructions:
            if self._instructions:
                stats[TARGET_INSTRUCTIONS] = list(self._instructions)
        elif last_count is not None:
            # one count, of the last inference only: not a latency of the run
            stats[LAST_INSTRUCTIONS] = last_count
        return stats


class _BoardUARTTransport(SerialTransport):
    """The socket to the simulated board's UART. Its name (in every protocol error) is the
    target's, and a connection that closed because the simulator died says so, with its exit
    code and output."""

    def __init__(self, label: str, board: SimulatorProcess | None, *args: Any):
        super().__init__(*args)
        self._label = label
        self._board = board

    @property
    def name(self) -> str:
        return self._label

    def send(self, data: bytes) -> None:
        try:
            super().send(data)
        except TransportClosedError as exc:
            raise self._explained(exc) from exc

    def receive(self, timeout: float | None) -> bytes:
        try:
            return super().receive(timeout)
        except TransportClosedError as exc:
            raise self._explained(exc) from exc

    def _explained(self, exc: TransportClosedError) -> TransportClosedError:
        process = self._board.process if self._board is not None else None
        if process is None:
            return exc
        try:
            # the socket closes as QEMU exits: give the exit a moment to be reaped
            code = process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return exc  # QEMU still runs: the connection broke for another reason
        board = self._board
        died = TransportClosedError(
            f"{exc.reason}; {board.simulator} exited with code {code}{board.exit_details()}",
            self.name,
        )
        died.infrastructure = "emulator"  # the emulator died, not the connection alone
        return died

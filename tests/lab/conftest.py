"""A real labgrid lab on loopback: `labgrid-coordinator`, and per board a real
`labgrid-exporter` exporting a QEMU-simulated qemu-m4 board's UART as a NetworkSerialPort
(board_exporter.py), with places created at the coordinator. Everything is stopped at the
end, and no process of ours may be left."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.skips import require_simulation

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TAG = {"board": "qemu-m4"}


def require_lab() -> None:
    pytest.importorskip("labgrid", reason="labgrid not installed (extra 'labgrid')")
    require_simulation("the lab's QEMU boards")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check, timeout: float = 120.0, process=None):
    """Polls `check` until it returns something true; the timeout only bounds a broken lab."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: process exited with {process.returncode}")
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:g} s")


class Lab:
    """The coordinator and the boards (exporter processes) of one test module."""

    def __init__(self, workdir: Path, firmware: Path):
        self.workdir = workdir
        self.firmware = firmware
        self.address = f"127.0.0.1:{free_port()}"
        self.processes: list[subprocess.Popen] = []
        (workdir / "coordinator").mkdir()
        self.coordinator = self._spawn(
            [str(BIN / "labgrid-coordinator"), "-l", self.address], "coordinator",
            cwd=workdir / "coordinator")
        wait_for("coordinator listening", self._listening, process=self.coordinator)
        self.client = self._client()

    def _spawn(self, cmd: list[str], log: str, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(cmd, stdout=open(self.workdir / f"{log}.out", "wb"),
                                   stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def _listening(self) -> bool:
        host, port = self.address.split(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return True
        except OSError:
            return False

    def _client(self):
        from kenning_hil.targets.kinds.labgrid import LabClient

        return LabClient(self.address, "lab-test", "admin")

    def call(self, method: str, **fields):
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        return self.client.call(method, getattr(pb2, f"{method}Request")(**fields))

    def add_board(self, exporter: str, place: str, tags: dict) -> subprocess.Popen:
        """Boots a board behind exporter `exporter` and makes place `place` of it."""
        host = self._spawn([sys.executable, str(HERE / "board_exporter.py"), self.address,
                            exporter, place, str(self.firmware), str(self.workdir)],
                           f"board-{exporter}")
        self.call("AddPlace", name=place)
        self.call("AddPlaceMatch", placename=place, pattern=f"{exporter}/{place}/*")
        self.call("SetPlaceTags", placename=place, tags=tags)

        def exported():
            self.client.sync()
            group = self.client.session.resources.get(exporter, {}).get(place, {})
            return any("cls" in entry.data and entry.avail for entry in group.values())

        wait_for(f"exporter {exporter} announcing its serial port", exported, process=host)
        return host

    def exporter_pid(self, exporter: str) -> int:
        return int((self.workdir / f"{exporter}.pid").read_text())

    def holder(self, place: str) -> str | None:
        self.client.sync()
        return self.client.places[place].acquired

    def labgrid_client(self, user: str, *args: str) -> str:
        env = {**os.environ, "LG_COORDINATOR": self.address, "LG_USERNAME": user}
        done = subprocess.run([str(BIN / "labgrid-client"), *args], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def target_yaml(self, name: str, selector: str, lock: float = 60, request: float = 60) -> str:
        return (f"name: {name}\nkind: labgrid\ncoordinator: {self.address}\n{selector}\n"
                f"protocol: {{type: uart}}\nruntime: firmware-int8\nformats: [tflite]\n"
                f"memory: {{flash: 4MiB, ram: 3.5MiB}}\n"
                f"timeouts: {{lock: {lock}, boot: 60, request: {request}}}\n")

    def stop(self) -> None:
        self.client.close()
        for process in reversed(self.processes):  # boards first, the coordinator last
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Coordinator + two boards: places m4-a (exporter exp-a) and m4-b (exp-b), both tagged
    board=qemu-m4."""
    require_lab()
    from kenning_hil.sim.firmware_build import build_firmware

    firmware = build_firmware("mps2-an386")
    lab = Lab(tmp_path_factory.mktemp("lab"), firmware)
    try:
        lab.add_board("exp-a", "m4-a", TAG)
        lab.add_board("exp-b", "m4-b", TAG)
        yield lab
    finally:
        lab.stop()
    import psutil

    left = [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE
            and any(n in " ".join(p.cmdline()) for n in ("labgrid", "qemu", "board_exporter"))]
    for process in left:
        process.kill()
    assert not left, f"lab processes left running: {[p.cmdline()[:3] for p in left]}"

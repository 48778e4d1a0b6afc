"""A lab host in one process: boots a QEMU-simulated board (sim/qemu.py's QemuInstance, UART on
a loopback TCP socket) and runs a real `labgrid-exporter` that exports that socket as a
NetworkSerialPort (raw TCP). Killing the exporter takes the board down with it, as when the
machine it runs on goes away; killing this process ends both (PR_SET_PDEATHSIG).

    python board_exporter.py COORDINATOR EXPORTER_NAME GROUP FIRMWARE_ELF WORKDIR

Writes WORKDIR/<EXPORTER_NAME>.pid with the exporter's pid once the exporter runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from kenning_hil.sim.process import die_with_parent
from kenning_hil.sim.qemu import QemuInstance

MACHINE = "mps2-an386"  # the qemu-m4 board


def main(coordinator: str, name: str, group: str, firmware: str, workdir: str) -> int:
    work = Path(workdir)
    with QemuInstance(MACHINE, firmware, start_timeout=60) as board:
        host, port = board.url.removeprefix("socket://").rsplit(":", 1)
        config = work / f"{name}.yaml"
        config.write_text(f"{group}:\n  NetworkSerialPort:\n    host: {host}\n    port: {port}\n"
                          f"    speed: 115200\n    protocol: raw\n")
        exporter = subprocess.Popen(
            [*die_with_parent(), str(Path(sys.executable).with_name("labgrid-exporter")),
             "-c", coordinator, "-n", name, "--hostname", "127.0.0.1", str(config)],
            stdout=open(work / f"{name}.log", "wb"), stderr=subprocess.STDOUT)
        (work / f"{name}.pid").write_text(str(exporter.pid))
        signal.signal(signal.SIGTERM, lambda *_: exporter.terminate())
        code = exporter.wait()
    return code


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))

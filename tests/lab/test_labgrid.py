"""kind: labgrid against a real lab on loopback (conftest.Lab): a real coordinator, real
exporters each exporting a QEMU-simulated qemu-m4 board as a NetworkSerialPort, places m4-a and
m4-b tagged board=qemu-m4.

The suite runs (digits' int8 TFLite case and MLPerf Tiny KWS, -n 2, compared sample by sample
with qemu-m4) are in test_suite_across_places; the others drive the kind through the library
(the same Target and SessionManager the plugin uses)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from kenning_hil.targets.catalog import TargetCatalog
from kenning_hil.targets.description import parse_target
from kenning_hil.targets.errors import BoardBusyError, TargetError
from kenning_hil.targets.listing import target_rows
from kenning_hil.targets.sessions import SessionManager
from kenning_hil.targets.target import Target
from tests.plugin.conftest import make_hermetic_ini

from .conftest import free_port, require_lab, wait_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.sim  # the lab's boards are QEMU-simulated
pytest_plugins = ["pytester"]


def make_target(lab, name: str, selector: str, **timeouts) -> Target:
    return Target(parse_target(yaml.safe_load(lab.target_yaml(name, selector, **timeouts)),
                               f"{name}.yaml"))


def manager(tmp_path: Path) -> SessionManager:
    return SessionManager(tmp_path / "work", lock_dir=tmp_path / "locks", keep_leases=False)


def waiting(lab) -> int:
    """Reservations waiting for a place at the coordinator."""
    from labgrid.remote.common import Reservation, ReservationState

    return sum(Reservation.from_pb2(r).state is ReservationState.waiting
               for r in lab.call("GetReservations").reservations)


def test_tagged_target_pools_the_matching_places_and_the_listing_shows_holders(lab, tmp_path):
    target = make_target(lab, "lab-m4", "place_tags: {board: qemu-m4}")
    assert [i.name for i in target.instances()] == ["slot 0", "slot 1"]
    lab.labgrid_client("alice", "-p", "m4-b", "acquire")
    try:
        targets = tmp_path / "targets"
        targets.mkdir()
        tagged = lab.target_yaml("lab-m4", "place_tags: {board: qemu-m4}")
        (targets / "lab-m4.yaml").write_text(tagged)
        (targets / "lab-none.yaml").write_text(lab.target_yaml("lab-none", "place: nowhere"))
        down = lab.target_yaml("lab-down", "place: m4-a").replace(
            lab.address, f"127.0.0.1:{free_port()}")
        (targets / "lab-down.yaml").write_text(down)
        rows = {row.name: row for row in target_rows(TargetCatalog([targets]))}
    finally:
        lab.labgrid_client("alice", "-p", "m4-b", "release")
    assert rows["lab-m4"].available and rows["lab-m4"].instances == 2
    assert rows["lab-m4"].reason == (f"coordinator {lab.address}: m4-a (free), "
                                     f"m4-b (held by {os.uname().nodename}/alice)")
    assert not rows["lab-none"].available
    assert rows["lab-none"].reason.startswith(
        f"no place matches place 'nowhere' at coordinator {lab.address} (places: m4-a, m4-b")
    assert not rows["lab-down"].available
    assert "cannot reach the labgrid coordinator at 127.0.0.1:" in rows["lab-down"].reason


def test_place_held_by_someone_else_waits_then_names_place_and_holder(lab, tmp_path):
    """alice holds m4-a (labgrid-client acquire): a target naming m4-a waits its lock timeout
    and fails naming the place and alice; a tagged target takes the free m4-b instead."""
    lab.labgrid_client("alice", "-p", "m4-a", "acquire")
    try:
        sessions = manager(tmp_path)
        only_a = make_target(lab, "lab-a", "place: m4-a", lock=2)
        with pytest.raises(BoardBusyError) as busy, sessions.use(only_a):
            pass
        message = str(busy.value)
        assert message.startswith(f"target 'lab-a': no place 'm4-a' free at coordinator "
                                  f"{lab.address} after waiting 2 s (m4-a (held by ")
        assert "/alice)" in message
        tagged = make_target(lab, "lab-m4", "place_tags: {board: qemu-m4}", lock=60)
        with sessions.use(tagged) as session:
            assert session.info["place"] == "m4-b" and session.info["exporter"] == "exp-b"
            assert lab.holder("m4-b") == session.info["holder"]
            session.protocol.download_statistics()  # a request answered by the board
        assert lab.holder("m4-b") is None  # released at the end of the use
        assert lab.holder("m4-a").endswith("/alice")  # alice's place untouched
    finally:
        lab.labgrid_client("alice", "-p", "m4-a", "release")
    reservations = lab.call("GetReservations").reservations
    assert list(reservations) == []  # ours were cancelled; the timed-out one too


WORKER = """
import sys, time, yaml
from pathlib import Path
from kenning_hil.targets.description import parse_target
from kenning_hil.targets.sessions import SessionManager
from kenning_hil.targets.target import Target
target = Target(parse_target(yaml.safe_load(sys.argv[1]), "lab-a.yaml"))
with SessionManager(Path(sys.argv[2]), lock_dir=Path(sys.argv[2])).use(target) as session:
    print(session.info["holder"], flush=True)
    time.sleep(600)
"""


def test_killed_worker_does_not_keep_its_place(lab, tmp_path):
    """A worker killed with SIGKILL while holding m4-a: its guard process releases the place
    (the coordinator alone would keep it acquired forever)."""
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, lab.target_yaml("lab-a", "place: m4-a"), str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        holder = worker.stdout.readline().strip()
        assert re.fullmatch(r".+/.+-hil\d+", holder), holder
        assert lab.holder("m4-a") == holder
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        wait_for("m4-a released after the worker died", lambda: lab.holder("m4-a") is None)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert list(lab.call("GetReservations").reservations) == []


def test_exporter_killed_mid_test_names_place_and_exporter(lab, tmp_path):
    """The lab host behind place m4-c dies (its exporter with its board) while a session
    talks to it: the request fails naming the place and the exporter, within the request
    timeout; the place is released, and the next session on it gets a clear error."""
    lab.add_board("exp-c", "m4-c", {"board": "qemu-m4-spare"})
    target = make_target(lab, "lab-c", "place: m4-c", lock=30, request=20)
    sessions = manager(tmp_path)
    with pytest.raises(Exception) as lost, sessions.use(target) as session:
        session.protocol.download_statistics()
        os.kill(lab.exporter_pid("exp-c"), signal.SIGKILL)
        # the lab host process stops the board once it sees its exporter gone: requests go on
        # until then (100 of them were not always enough on a loaded 2-core machine)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            session.protocol.download_statistics()
    text = str(lost.value)
    assert "'lab-c' place m4-c (exporter exp-c, socket://127.0.0.1:" in text, text
    assert lab.holder("m4-c") is None

    def exporter_gone() -> bool:
        lab.client.sync()
        group = lab.client.session.resources.get("exp-c", {}).get("m4-c", {})
        return all("cls" not in entry.data for entry in group.values())

    wait_for("exp-c gone from the coordinator", exporter_gone)
    with pytest.raises(TargetError) as gone, sessions.use(target):
        pass
    assert str(gone.value) == (f"target 'lab-c': place m4-c at {lab.address} has no available "
                               f"NetworkSerialPort (no exporter offers one now)")
    assert lab.holder("m4-c") is None


@pytest.mark.slow  # about 100 s here: two suites, each sample also on a local qemu-m4
def test_suite_across_places(lab, pytester, tmp_path_factory, models_dir):
    """digits' int8 TFLite case and MLPerf Tiny KWS through --target=lab-m4 with -n 2: each
    worker on its own place, outputs bit-exact with qemu-m4 (each suite's reference set to
    qemu-m4, compared sample by sample). The workers first wait for places held by alice."""
    require_lab()
    pytest.importorskip("xdist")
    kws = models_dir / "mlperf_tiny" / "kws_ref_model.tflite"
    targets = pytester.path / "targets"
    targets.mkdir()
    shutil.copy(REPO / "targets" / "qemu-m4.yaml", targets)
    (targets / "lab-m4.yaml").write_text(
        lab.target_yaml("lab-m4", "place_tags: {board: qemu-m4}", lock=900))
    digits = (REPO / "suites" / "digits.yaml").read_text()
    digits = digits.replace("models/digits/", f"{REPO}/models/digits/")
    (pytester.path / "digits.yaml").write_text(
        digits + "reference: qemu-m4\ncompare: {exact: true}\n")
    selected = "int8-tflite"
    if kws.is_file():
        mlperf = (REPO / "suites" / "mlperf_tiny.yaml").read_text()
        (pytester.path / "mlperf_tiny.yaml").write_text(
            mlperf.replace("reference: host-litert-ref", "reference: qemu-m4"))
        selected += " or kws"
    make_hermetic_ini(pytester, tmp_path_factory.mktemp("locks"), timeout=120)
    runs = 2 if kws.is_file() else 1
    # both places held by alice until every worker waits for one: the coordinator then hands
    # each waiting reservation its own place, whatever order the workers got there in
    for place in ("m4-a", "m4-b"):
        lab.labgrid_client("alice", "-p", place, "acquire")
    outcome = []
    run = threading.Thread(target=lambda: outcome.append(pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", *[p.name for p in pytester.path.glob("*.yaml")],
        "-k", selected, "--samples", "5", f"--models-path={models_dir}", "--target=lab-m4",
        timeout=900)))
    run.start()
    try:
        wait_for("every worker waiting for a place",
                 lambda: waiting(lab) >= runs or not run.is_alive(), timeout=900)
    finally:
        for place in ("m4-a", "m4-b"):
            lab.labgrid_client("alice", "-p", place, "release")
        run.join()
    (result,) = outcome
    result.assert_outcomes(passed=runs)
    results = pytester.path / "results" / "tests"
    records = [json.loads(p.read_text()) for p in results.glob("*.json")]
    records = [r for r in records if r["target"] == "lab-m4"]
    assert len(records) == runs
    for record in records:
        assert record["comparison"]["reference"] == "qemu-m4"
        assert record["comparison"]["exact_match_rate"] == 1.0, record["comparison"]
        assert record["session"]["exporter"] in ("exp-a", "exp-b")
    if runs == 2:
        assert {r["session"]["place"] for r in records} == {"m4-a", "m4-b"}
    assert lab.holder("m4-a") is None and lab.holder("m4-b") is None


def test_power_and_flash_commands_run_as_the_holder(lab, tmp_path):
    """`power` runs `labgrid-client env`, which only the place's holder may run: it prints
    the place's resources, so it ran as this process's identity. A failing `flash` is an
    infrastructure error (flash) naming the place, and the place is released."""
    target = make_target(lab, "lab-a", "place: m4-a\npower: labgrid-client env")
    sessions = manager(tmp_path)
    with sessions.use(target) as session:
        port = session.info["url"].rsplit(":", 1)[1]
    log = (tmp_path / "work" / "lab-a-m4-a-power.log").read_text()
    assert "NetworkSerialPort" in log and f"port: {port}" in log, log
    failing = make_target(lab, "lab-a", "place: m4-a\nflash: sh -c 'echo no probe >&2; exit 3'")
    with pytest.raises(TargetError) as failed, sessions.use(failing):
        pass
    assert failed.value.infrastructure == "flash"
    assert str(failed.value).startswith(
        "target 'lab-a' place m4-a: flash command failed with code 3: no probe (log ")
    assert lab.holder("m4-a") is None

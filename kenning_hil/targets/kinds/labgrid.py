"""`kind: labgrid`: a board in a labgrid lab, found, reserved and locked through labgrid's
coordinator, reached over the serial port its place's exporter offers (a NetworkSerialPort:
``rfc2217://`` or raw TCP, as the resource says).

The coordinator is the lock: this kind does not invent a distribution layer. A session
creates a labgrid *reservation* for the target's place (``place: NAME``) or for any place
with the target's tags (``place_tags: {board: nucleo-l4r5}``); the coordinator's scheduler
allocates a free matching place, the session acquires it, optionally flashes and
power-cycles it with commands run as the holder (``labgrid-client`` with LG_PLACE set), talks
the wire protocol over its serial port, and at the end releases the place and cancels the
reservation. When no matching place becomes free within the lock timeout, the error names
every matching place and who holds it.

The local pool (`instances`) has one slot per matching place, so pytest-xdist workers on one
machine never queue more sessions than there are places; which place a slot gets is the
coordinator's choice.

A worker that dies holding a place: labgrid's coordinator keeps a place acquired when its
client disconnects, so every session starts a small guard process (this module run as a
script) holding a pipe from the worker. When the pipe closes without a "released" line (the
worker was killed), the guard releases the place (only if still acquired by that worker's
identity) and cancels its reservation. Each worker acquires as ``<host>/<user>-hil<pid>``.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kenning_hil.blocks.entries import inline_entry
from kenning_hil.core.errors import ConfigurationError, one_line
from kenning_hil.protocols.bytes_protocol import UARTProtocol
from kenning_hil.protocols.uart import SerialTransport
from kenning_hil.targets.errors import BoardBusyError, TargetError
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)
from kenning_hil.targets.process import board_commands_problem, run_board_command

COORDINATOR_ENV = "LG_COORDINATOR"
DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default
SERIAL_CLASS = "NetworkSerialPort"
MISSING_LABGRID = "labgrid is not installed (extra 'labgrid': pip install 'kenning-hil[labgrid]')"
COMMAND_HELP = ("a command line run while the place is held, with LG_COORDINATOR, LG_PLACE, "
                "LG_USERNAME and LG_HOSTNAME set so `labgrid-client` acts as the holder; "
                "{place}, {firmware} and {coordinator} are replaced")
CONNECT_TIMEOUT = 10.0  # seconds to reach the coordinator
# labgrid's client keepalive settings (labgrid.remote.client.ClientSession)
CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 7500), ("grpc.keepalive_timeout_ms", 10000),
                   ("grpc.http2.ping_timeout_ms", 10000), ("grpc.http2.max_pings_without_data", 0)]
GUARD_MODULE = "kenning_hil.targets.kinds.labgrid"
POLL = 0.5  # seconds between reservation polls (labgrid-client polls every 1 s)


def labgrid_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("labgrid") is not None


def command_path() -> str:
    """PATH for the flash and power commands: this Python's scripts folder first, so the
    `labgrid-client` installed with kenning-hil's extra is found without an activated venv."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def identity() -> tuple[str, str]:
    """(host, user) this process acquires places as: one identity per process, so the guard
    of a killed worker releases only that worker's place."""
    return socket.gethostname(), f"{getpass.getuser()}-hil{os.getpid()}"


# -- the coordinator connection ---------------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process for every labgrid client session (labgrid's client stashes
    the loop it was given and refuses another one while that is open)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
        return _loop


class _QuietLabgrid(logging.Filter):
    """labgrid's client reports a lost coordinator on the root logger; kenning-hil raises
    its own error instead (with labgrid's last words in it), so those lines are kept here."""

    last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and f"{os.sep}labgrid{os.sep}remote{os.sep}" in record.pathname:
            _QuietLabgrid.last = record.getMessage().splitlines()[0]
            return False
        return True


_quiet = _QuietLabgrid()


class LabClient:
    """A labgrid ClientSession to one coordinator, used synchronously."""

    def __init__(self, address: str, host: str, user: str):
        if _quiet not in logging.getLogger().filters:
            logging.getLogger().addFilter(_quiet)
        from labgrid.remote.client import ClientSession
        from labgrid.util.proxy import proxymanager

        class _Session(ClientSession):  # our identity, not the login's (see `identity`)
            def __attrs_post_init__(self):
                super().__attrs_post_init__()
                # a connection of its own: the coordinator tells clients apart by their
                # address, and grpc would share one connection among a process's channels
                import grpc
                from labgrid.remote.generated import labgrid_coordinator_pb2_grpc

                self.channel = grpc.aio.insecure_channel(self.address, options=[
                    *CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])
                self.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(self.channel)

            def gethostname(self):
                return host

            def getuser(self):
                return user

        self.address = address
        self.loop = _event_loop()
        # grpc.aio binds a channel to the thread's current loop when it is made
        asyncio.set_event_loop(self.loop)
        grpc_address = proxymanager.get_grpc_address(address, default_port=20408)
        self.session = _Session(grpc_address, self.loop)
        _QuietLabgrid.last = ""
        try:
            self.run(self.session.start(), CONNECT_TIMEOUT)
        except BaseException as exc:
            self.close()
            raise TargetError(
                f"cannot reach the labgrid coordinator at {address}: "
                f"{_QuietLabgrid.last or _reason(exc)}", "connection") from exc

    def run(self, coroutine, timeout: float | None = None):
        if timeout is not None:
            coroutine = asyncio.wait_for(coroutine, timeout)
        asyncio.set_event_loop(self.loop)  # others (asyncio.run) may have unset it meanwhile
        return self.loop.run_until_complete(coroutine)

    def sync(self) -> None:
        """Brings `places` and `resources` up to date with the coordinator."""
        if not self.run(self.session.sync_with_coordinator(), CONNECT_TIMEOUT):
            raise TargetError(f"lost the labgrid coordinator at {self.address}", "connection")

    @property
    def places(self) -> dict:
        return self.session.places

    def call(self, method: str, request) -> Any:
        """One coordinator RPC; its error as a TargetError naming the coordinator."""
        import grpc

        try:
            return self.run(getattr(self.session.stub, method)(request), CONNECT_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            raise _RpcError(exc.details() or str(exc.code())) from exc

    def close(self) -> None:
        try:
            self.run(self.session.stop(), CONNECT_TIMEOUT)
            self.run(self.session.close(), CONNECT_TIMEOUT)
        except BaseException:  # noqa: BLE001 - a broken channel is closed anyway
            pass


class _RpcError(Exception):
    pass


def cancel_reservation(client: LabClient, token: str) -> None:
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

    try:
        client.call("CancelReservation", pb2.CancelReservationRequest(token=token))
    except (_RpcError, TargetError):
        pass  # gone already (expired, or the coordinator is gone)


def release_place(client: LabClient, place: str, holder: str) -> None:
    """Releases `place` if `holder` ("host/user") still holds it."""
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

    try:
        client.call("ReleasePlace", pb2.ReleasePlaceRequest(placename=place, fromuser=holder))
    except (_RpcError, TargetError):
        pass  # released already, or the coordinator is gone (it forgets acquisitions)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return one_line(exc)


def _holder(place) -> str:
    if place.acquired:
        return f"held by {place.acquired}"
    if place.reservation:
        return f"reserved ({place.reservation})"
    return "free"


@dataclass(frozen=True)
class Serial:
    """A place's NetworkSerialPort, as its exporter announces it."""

    exporter: str
    resource: str
    url: str
    speed: int | None


class LabgridKind(TargetKind):
    name = "labgrid"
    summary = "a board in a labgrid place: reserved through the coordinator, its serial port"
    properties = {
        "coordinator": {
            "type": "string",
            "description": f"host[:port] of labgrid-coordinator (default ${COORDINATOR_ENV}, "
            f"else {DEFAULT_COORDINATOR})",
        },
        "place": {"type": "string", "description": "the labgrid place's name"},
        "place_tags": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string"},
            "description": "any place whose tags include these, e.g. {board: nucleo-l4r5}",
        },
        "serial": {
            "type": "string",
            "description": f"name of the {SERIAL_CLASS} resource when the place has several",
        },
        "baudrate": {"type": "integer", "minimum": 1},
        "firmware": {"type": "string", "description": "firmware image for the flash command"},
        "flash": {"type": "string", "description": COMMAND_HELP},
        "power": {"type": "string", "description": COMMAND_HELP + " (e.g. a power cycle)"},
        "settle": {"type": "number", "minimum": 0, "description": "seconds to wait after power"},
    }
    runtime_meaning = RuntimeMeaning.BY_NAME

    @classmethod
    def check(cls, description) -> None:
        opts = description.options
        if ("place" in opts) == ("place_tags" in opts):
            raise ConfigurationError(
                f"{description.source}: a labgrid target needs exactly one of 'place' (a place "
                f"name) and 'place_tags' (tags a place must have)")
        if isinstance(description.instances, list) or description.instances != 1:
            raise ConfigurationError(
                f"{description.source}: key 'instances' does not apply to a labgrid target: "
                f"its pool is the matching places at the coordinator")
        cls.check_uart_protocol(description, "it is reached over the place's serial port")
        if "{firmware}" in opts.get("flash", "") and "firmware" not in opts:
            raise ConfigurationError(
                f"{description.source}: key 'flash' uses {{firmware}} but key 'firmware' is "
                f"missing")

    # -- configuration ----------------------------------------------------------------------

    @property
    def coordinator(self) -> str:
        return (self.description.options.get("coordinator")
                or os.environ.get(COORDINATOR_ENV) or DEFAULT_COORDINATOR)

    def selector(self) -> str:
        opts = self.description.options
        if "place" in opts:
            return f"place '{opts['place']}'"
        tags = ", ".join(f"{k}={v}" for k, v in sorted(opts["place_tags"].items()))
        return f"places tagged {tags}"

    def filters(self) -> dict[str, str]:
        """The reservation filter: the scheduler matches `name` against place names."""
        opts = self.description.options
        return {"name": opts["place"]} if "place" in opts else dict(opts["place_tags"])

    def matching(self, places: dict) -> list:
        """The places of `places` (name -> labgrid Place) this target may use, by name."""
        wanted = self.filters()
        found = []
        for name, place in sorted(places.items()):
            tags = {**place.tags, "name": name}
            if all(tags.get(k) == v for k, v in wanted.items()):
                found.append(place)
        return found

    def firmware_path(self) -> Path | None:
        return self.description.option_path("firmware")

    def _view(self) -> tuple[list, dict]:
        """(matching places, all places) as the coordinator sees them now."""
        client = LabClient(self.coordinator, *identity())
        try:
            return self.matching(client.places), dict(client.places)
        finally:
            client.close()

    def describe_places(self, places: list) -> str:
        return ", ".join(f"{p.name} ({_holder(p)})" for p in places)

    # -- pool and availability --------------------------------------------------------------

    def instances(self) -> list[Instance]:
        """One slot per matching place (one when the coordinator cannot be asked): a slot
        bounds how many sessions this machine opens at once, the coordinator picks the
        place."""
        count = getattr(self, "_slots", None)
        if count is None:  # asked once per Target: every pool use asks again
            count = 1
            if labgrid_installed():
                try:
                    count = max(1, len(self._view()[0]))
                except TargetError:
                    pass
            self._slots = count
        key = f"labgrid:{self.coordinator}:{self.selector()}"
        return [Instance(i, f"slot {i}", f"{key}:{i}", None) for i in range(count)]

    def availability(self) -> tuple[bool, str]:
        if not labgrid_installed():
            return False, MISSING_LABGRID
        problem = board_commands_problem(self.description.options, ("flash", "power"),
                                          self.firmware_path(), command_path())
        if problem is not None:
            return False, problem
        try:
            matching, places = self._view()
        except TargetError as exc:
            self._slots = 1
            return False, str(exc)
        self._slots = max(1, len(matching))
        if not matching:
            known = ", ".join(sorted(places)) or "none"
            return False, (f"no place matches {self.selector()} at coordinator "
                           f"{self.coordinator} (places: {known})")
        return True, (f"coordinator {self.coordinator}: {self.describe_places(matching)}")

    def describe(self) -> str:
        return f"labgrid {self.selector()} at {self.coordinator}"

    # -- sessions ---------------------------------------------------------------------------

    def _reserve(self, client: LabClient, guard: _Guard, timeout: float) -> tuple[str, str]:
        """(place name, reservation token): a matching place allocated to us and acquired,
        waiting up to `timeout` s; BoardBusyError naming the places and holders after that."""
        from labgrid.remote.common import Reservation, ReservationState
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

        client.sync()
        if not self.matching(client.places):
            known = ", ".join(sorted(client.places)) or "none"
            raise TargetError(
                f"target '{self.description.name}': no place matches {self.selector()} at "
                f"coordinator {self.coordinator} (places: {known})", "lock")
        request = pb2.CreateReservationRequest(
            filters={"main": pb2.Reservation.Filter(filter=self.filters())}, prio=0)
        try:
            token = client.call("CreateReservation", request).reservation.token
        except _RpcError as exc:
            raise TargetError(f"target '{self.description.name}': coordinator "
                              f"{self.coordinator} refused the reservation: {exc}", "lock") from exc
        guard.tell("reservation", token)
        start = time.monotonic()
        try:
            while True:
                answer = client.call("PollReservation", pb2.PollReservationRequest(token=token))
                reservation = Reservation.from_pb2(answer.reservation)
                if reservation.state is ReservationState.allocated:
                    place = reservation.allocations["main"][0]
                    guard.tell("place", place)
                    try:
                        client.call("AcquirePlace", pb2.AcquirePlaceRequest(placename=place))
                        return place, token
                    except _RpcError:
                        pass  # taken under our feet: the reservation waits again
                elif reservation.state is not ReservationState.waiting:
                    raise TargetError(
                        f"target '{self.description.name}': reservation {token} at "
                        f"{self.coordinator} became {reservation.state.name}", "lock")
                if time.monotonic() - start >= timeout:
                    client.sync()
                    raise BoardBusyError(
                        f"target '{self.description.name}': no {self.selector()} free at "
                        f"coordinator {self.coordinator} after waiting {timeout:g} s "
                        f"({self.describe_places(self.matching(client.places))}); raise "
                        f"--hil-timeout or the target's timeouts.lock")
                client.run(asyncio.sleep(POLL))
        except BaseException:
            cancel_reservation(client, token)
            raise

    def serial_port(self, client: LabClient, place_name: str) -> Serial:
        """The acquired place's NetworkSerialPort; TargetError naming the place when its
        exporter does not offer one (an exporter that went away)."""
        client.sync()
        place = client.places[place_name]
        wanted = self.description.options.get("serial")
        seen = []
        for exporter, group, cls, name in place.acquired_resources:
            entry = client.session.resources.get(exporter, {}).get(group, {}).get(name)
            if cls != SERIAL_CLASS or (wanted and name != wanted):
                continue
            seen.append(f"{exporter}/{group}/{name}")
            if entry is None or "cls" not in entry.data or not entry.avail:
                continue
            params = entry.params
            scheme = "socket" if params.get("protocol") == "raw" else "rfc2217"
            return Serial(exporter, f"{exporter}/{group}/{name}",
                          f"{scheme}://{params['host']}:{params['port']}", params.get("speed"))
        what = f"{SERIAL_CLASS} '{wanted}'" if wanted else SERIAL_CLASS
        why = (f"{', '.join(seen)} not exported now: exporter down?" if seen
               else "no exporter offers one now")
        raise TargetError(
            f"target '{self.description.name}': place {place_name} at {self.coordinator} has "
            f"no available {what} ({why})", "connection")

    def _command(self, key: str, place: str, user: str, host: str, context: OpenContext) -> None:
        firmware = self.firmware_path()
        text = self.description.options[key].format(
            place=place, firmware=firmware or "", coordinator=self.coordinator)
        cmd = shlex.split(text)
        env = {**os.environ, "LG_COORDINATOR": self.coordinator, "LG_PLACE": place,
               "LG_USERNAME": user, "LG_HOSTNAME": host, "PATH": command_path()}
        found = shutil.which(cmd[0], path=env["PATH"])
        cmd[0] = found or cmd[0]
        log = Path(context.workdir) / f"{self.description.name}-{place}-{key}.log"
        run_board_command(cmd, key, f"target '{self.description.name}' place {place}", log,
                          context.timeouts.boot, env)

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        if not labgrid_installed():
            raise TargetError(f"target '{self.description.name}': {MISSING_LABGRID}", "")
        desc = self.description
        host, user = identity()
        client = LabClient(self.coordinator, host, user)
        guard = _Guard(self.coordinator, f"{host}/{user}")
        protocol = None
        place = token = None
        try:
            place, token = self._reserve(client, guard, context.timeouts.lock)
            opts = desc.options
            if "flash" in opts:
                self._command("flash", place, user, host, context)
            if "power" in opts:
                self._command("power", place, user, host, context)
            time.sleep(opts.get("settle", 0))
            port = self.serial_port(client, place)
            label = (f"'{desc.name}' place {place} (exporter {port.exporter}, {port.url}, "
                     f"coordinator {self.coordinator})")
            params = inline_entry(desc.protocol or {"type": "uart"},
                                  f"{desc.source}: key 'protocol'")["parameters"]
            params["port"] = port.url
            params.setdefault("timeout", context.timeouts.request)
            baudrate = opts.get("baudrate") or port.speed
            if baudrate:
                params["baudrate"] = int(baudrate)
            try:
                protocol = PlaceUARTProtocol.from_json(params, label=label)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{desc.source}: key 'protocol': {exc}") from exc
            protocol.initialize_client()
            yield TargetSession(
                desc.name, instance, protocol,
                info={"coordinator": self.coordinator, "place": place,
                      "exporter": port.exporter, "resource": port.resource, "url": port.url,
                      "holder": f"{host}/{user}", "reservation": token},
            )
        finally:
            if protocol is not None:
                try:
                    protocol.disconnect()
                except Exception:  # noqa: BLE001 - the exporter may be gone; release anyway
                    pass
            if place is not None:
                release_place(client, place, f"{host}/{user}")
                cancel_reservation(client, token)
            guard.done()
            client.close()


class PlaceUARTProtocol(UARTProtocol):
    """The UART protocol over a place's serial port, the place and exporter named in every
    error (a lost connection, a board that stopped answering)."""

    def __init__(self, label: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.label = label or self.port

    def describe_target(self) -> str:
        return self.label

    def open_client_transport(self) -> SerialTransport:
        return _NamedTransport(self.label, self.port, self.baudrate, self.max_frame_size)


class _NamedTransport(SerialTransport):
    def __init__(self, label: str, *args: Any):
        super().__init__(*args)
        self._label = label

    @property
    def name(self) -> str:
        return self._label


# -- the guard: releases a killed worker's place ----------------------------------------------


class _Guard:
    """A process that releases this worker's place and reservation if the worker dies: it
    reads lines from a pipe; end of file without "released" means the worker is gone."""

    def __init__(self, coordinator: str, holder: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", GUARD_MODULE, coordinator, holder],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to the worker's group must not reach it
            text=True,
        )

    def tell(self, what: str, value: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{what} {value}\n")
        self.process.stdin.flush()

    def done(self) -> None:
        """The worker released everything itself: the guard exits without work."""
        try:
            self.tell("released", "-")
            self.process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _guard_main(coordinator: str, holder: str) -> int:
    places, tokens = [], []
    for line in sys.stdin:
        what, _, value = line.strip().partition(" ")
        if what == "released":
            return 0
        (places if what == "place" else tokens).append(value)
    if not places and not tokens:
        return 0
    # the worker died: release what it may hold (ReleasePlace with fromuser does nothing to
    # a place someone else holds by now)
    host, _, user = holder.partition("/")
    client = LabClient(coordinator, host, user + "-guard")
    for place in places:
        release_place(client, place, holder)
    for token in tokens:
        cancel_reservation(client, token)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(_guard_main(sys.argv[1], sys.argv[2]))

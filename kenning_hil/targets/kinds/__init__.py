"""Target kinds: how a board is reached. One module per kind, named after the kind.

A kind module (e.g. ``kenning_hil/targets/kinds/qemu.py``) defines one `TargetKind`
subclass whose ``name`` equals the module name. It declares the YAML keys it adds
(``properties``, a JSON-schema fragment), says whether it can run here (``availability``)
and opens a session on one pool instance (``open``: a context manager yielding a
`TargetSession` with a connected protocol). Adding a kind is adding its module; third-party
packages can add kinds through the ``kenning_hil.target_kinds`` entry-point group.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kenning_hil.blocks.registry import names_class
from kenning_hil.core.errors import ConfigurationError

if TYPE_CHECKING:
    from kenning_hil.core.protocol import RuntimeProtocol
    from kenning_hil.targets.description import TargetDescription

ENTRY_POINT_GROUP = "kenning_hil.target_kinds"
# the runtime name of a board running the reference firmware's int8 interpreter
FIRMWARE_RUNTIME = "firmware-int8"


class RuntimeMeaning(Enum):
    """What the `runtime` key of a target names; each kind decides it up front."""

    PYTHON_CLASS = "a Runtime class run by a local server"
    """The host drives the target through the same class (kind host)."""
    FIRMWARE = "software on the board"
    """The host has no class for it (e.g. firmware-int8); the base Runtime drives it."""
    BY_NAME = "a Runtime class when the name is one, else software on the board"
    """A registered name or dotted path is a class (a `kenning-hil serve` at the other end);
    any other name is the board's own software (kinds tcp and serial)."""


@dataclass(frozen=True)
class Instance:
    """One member of a target's pool."""

    index: int
    name: str  # shown to users: "0", "/dev/ttyACM1", "10.0.0.5:12345"
    lock_key: str  # boards reached the same way share a lock, whatever target names them
    spec: Any = None  # the kind's own data for this instance (a port, an address, ...)


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a free board, for a board to boot, and for each request."""

    lock: float = 60.0
    boot: float = 60.0
    request: float = 60.0


@dataclass(frozen=True)
class OpenContext:
    """What a kind gets to open a session: time limits and where to keep files.

    ``workdir`` takes logs (server output, flash output); ``state_dir`` is shared by every
    process on the machine (next to the pool locks) for per-board facts such as which
    firmware is flashed.
    """

    timeouts: Timeouts = Timeouts()
    workdir: Path = Path(".")
    state_dir: Path = Path(".")
    # where long work (a firmware build) reports: an object with `phase(description)`, a
    # context manager (kenning_hil.run.progress.Progress); None: nobody watches
    progress: Any = None


@dataclass
class TargetSession:
    """A booted board with a connected client protocol, held by one test process.

    ``loaded_model`` is the hash of the model last uploaded through this session, so the
    same model is not uploaded again (the model upload cache).
    """

    target: str
    instance: Instance
    protocol: RuntimeProtocol
    info: dict = field(default_factory=dict)
    loaded_model: str | None = None
    handle: Any = field(default=None, repr=False)  # the kind's own object (e.g. its process)


class TargetKind:
    """Base of all target kinds; an instance is bound to one target description."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    properties: ClassVar[dict] = {}
    required: ClassVar[tuple[str, ...]] = ()
    # True when every test process gets a board of its own per instance (a local server,
    # a QEMU process): the session may then stay open while the instance lock is free.
    private_sessions: ClassVar[bool] = False
    runtime_meaning: ClassVar[RuntimeMeaning] = RuntimeMeaning.BY_NAME
    # True when the tool the kind needs is commonly absent where tests run (Renode: installed
    # for nightly jobs only): a test asking for an unavailable target then skips with the
    # reason instead of failing
    unavailable_skips: ClassVar[bool] = False

    def __init__(self, description: TargetDescription):
        self.description = description

    @classmethod
    def default_instances(cls, options: dict) -> int | list:
        """Pool used when the description has no ``instances`` key."""
        return 1

    @classmethod
    def check(cls, description: TargetDescription) -> None:
        """Cross-key checks the schema cannot express; raises ConfigurationError."""

    @classmethod
    def check_endpoint_pool(
        cls, description: TargetDescription, key: str, plural: str, unit: str,
        expected: str, valid: Any = lambda spec: isinstance(spec, str),
    ) -> None:
        """For kinds whose instances are endpoints reached from here (a port, an address):
        the pool is `key` alone, or `instances` listing one endpoint per `unit`. Fills
        ``description.instances`` from `key` in the first case."""
        pool = description.instances
        if not pool or isinstance(pool, int):
            if key not in description.options:
                hint = f" ({expected})" if expected != f"a {key}" else ""
                raise ConfigurationError(
                    f"{description.source}: kind '{cls.name}' needs key '{key}'{hint} or "
                    f"'instances' as a list of {plural}"
                )
            if isinstance(pool, int) and pool != 1:
                raise ConfigurationError(
                    f"{description.source}: key 'instances' of a {cls.name} target must list "
                    f"one {key} per {unit}, got {pool}"
                )
            description.instances = [description.options[key]]
        for spec in description.instances:
            if not valid(spec):
                raise ConfigurationError(
                    f"{description.source}: key 'instances': expected {expected}, got {spec!r}"
                )

    @classmethod
    def check_uart_protocol(cls, description: TargetDescription, why: str) -> None:
        """For kinds reached over a UART: the description's protocol (default uart) must be
        uart; `why` says why in the error."""
        protocol = description.protocol or {"type": "uart"}
        if protocol.get("type") != "uart":
            raise ConfigurationError(
                f"{description.source}: key 'protocol.type' must be 'uart' for a {cls.name} "
                f"target ({why}), got {protocol.get('type')!r}"
            )

    def runtime_is_python_class(self) -> bool:
        """Whether the description's `runtime` names a Python Runtime class (decided from the
        kind and the name, without importing anything)."""
        runtime = self.description.runtime
        if runtime is None or self.runtime_meaning is RuntimeMeaning.FIRMWARE:
            return False
        if self.runtime_meaning is RuntimeMeaning.PYTHON_CLASS:
            return True
        return names_class("runtime", runtime)

    def instances(self) -> list[Instance]:
        pool = self.description.instances
        if isinstance(pool, int):
            return [
                Instance(i, str(i), f"{self.description.name}-{i}", None) for i in range(pool)
            ]
        return [
            Instance(i, str(spec), f"{self.description.name}-{i}", spec)
            for i, spec in enumerate(pool)
        ]

    def availability(self) -> tuple[bool, str]:
        """(usable here, why or why not), without booting or holding anything."""
        return True, "ok"

    def open(
        self, instance: Instance, context: OpenContext
    ) -> AbstractContextManager[TargetSession]:
        """Boots/reaches the board and yields a session with a connected protocol."""
        raise NotImplementedError

    def describe(self) -> str:
        """How this target is reached, for listings."""
        return self.summary

    def model_refusal(self, model: Path) -> str | None:
        """What the board would answer when sent `model` (a compiled model file), if it would
        refuse it, found on the host from the file alone; None when it would load it or the
        kind cannot tell. So a model the board can never run is not uploaded first (the
        harness skips it as not applicable). A board whose runtime is the reference
        firmware's interpreter (`runtime: firmware-int8`, any kind) is judged by that
        firmware's operator table and its model + arena memory (`model_memory`)."""
        if self.description.runtime != FIRMWARE_RUNTIME or Path(model).suffix != ".tflite":
            return None
        from kenning_hil.sim.firmware_ops import load_refusal

        data = Path(model).read_bytes()
        reason = load_refusal(data, len(data), self.model_memory(), str(model))
        return None if reason is None else f"MODEL refused: {reason}"

    def model_memory(self) -> int | None:
        """Bytes the board has for the model and its tensor arena (the description's
        `memory.ram`), None when unknown (then memory is not checked on the host)."""
        return self.description.ram

    def alive(self, session: TargetSession) -> bool:
        """Whether a session kept open between uses can still be used (a kind that can tell
        its board died says no, and the next use boots a fresh one)."""
        return True


def _builtin_kind_names() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
    )


@cache
def _entry_point_kinds() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_kinds() -> list[str]:
    """Names of every target kind: built-in modules and entry points."""
    return sorted({*_builtin_kind_names(), *_entry_point_kinds()})


@cache
def get_kind_class(name: str) -> type[TargetKind]:
    """The TargetKind subclass of a kind name (imports its module on first use)."""
    if name in _builtin_kind_names():
        module = importlib.import_module(f"{__name__}.{name}")
        classes = [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, TargetKind) and obj.name == name
        ]
        if len(classes) != 1:
            raise ConfigurationError(
                f"target kind module {module.__name__} must define exactly one TargetKind "
                f"subclass with name = {name!r}, found {len(classes)}"
            )
        return classes[0]
    if name in _entry_point_kinds():
        cls = _entry_point_kinds()[name].load()
        if not (isinstance(cls, type) and issubclass(cls, TargetKind)):
            raise ConfigurationError(
                f"entry point {name!r} in group {ENTRY_POINT_GROUP} is not a TargetKind subclass"
            )
        return cls
    raise ConfigurationError(
        f"unknown target kind {name!r} (known kinds: {', '.join(known_kinds())})"
    )


def iter_kind_classes() -> Iterator[type[TargetKind]]:
    for name in known_kinds():
        yield get_kind_class(name)

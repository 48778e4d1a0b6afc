"""Targets: where models run. A YAML description per board (validated against a schema),
a kind per way of reaching boards (`kinds/`), pools of board instances guarded by file
locks (`pool`), and per-process sessions so a board boots once per test process (`sessions`).
Works without pytest; the pytest plugin is a thin layer over it."""

from kenning_hil.targets.catalog import DEFAULT_TARGET, TargetCatalog
from kenning_hil.targets.description import TargetDescription, load_target_file, parse_size
from kenning_hil.targets.errors import BoardBusyError, TargetError, UnknownTargetError
from kenning_hil.targets.kinds import Instance, OpenContext, TargetKind, TargetSession, Timeouts
from kenning_hil.targets.pool import BoardPool, Lease
from kenning_hil.targets.sessions import SessionManager
from kenning_hil.targets.target import Target

__all__ = [
    "DEFAULT_TARGET",
    "BoardBusyError",
    "BoardPool",
    "Instance",
    "Lease",
    "OpenContext",
    "SessionManager",
    "Target",
    "TargetCatalog",
    "TargetDescription",
    "TargetError",
    "TargetKind",
    "TargetSession",
    "Timeouts",
    "UnknownTargetError",
    "load_target_file",
    "parse_size",
]

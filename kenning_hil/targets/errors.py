"""Errors about targets that a user can fix (unknown target, unreachable board, busy pool)."""

from __future__ import annotations

from kenning_hil.core.errors import ConfigurationError, KenningHILError


class UnknownTargetError(ConfigurationError):
    """A target name was asked for that no target directory describes."""


class TargetError(KenningHILError):
    """A board could not be started, flashed, reached or talked to: an infrastructure
    problem (run/outcome.py), whose `infrastructure` category says which ("boot" unless
    given: "flash", ...; "" for none, e.g. a firmware that does not build)."""

    infrastructure = "boot"

    def __init__(self, message: str, infrastructure: str | None = None):
        super().__init__(message)
        if infrastructure is not None:
            self.infrastructure = infrastructure


class BoardBusyError(TargetError):
    """No instance of a target's pool became free within the lock timeout."""

    infrastructure = "lock"

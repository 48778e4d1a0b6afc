"""Errors about targets that a user can fix (unknown target, unreachable board, busy pool)."""

from __future__ import annotations

from kenning_hil.core.errors import ConfigurationError, KenningHILError


class UnknownTargetError(ConfigurationError):
    """A target name was asked for that no target directory describes."""


class TargetError(KenningHILError):
    """A board could not be started, flashed, reached or talked to."""


class BoardBusyError(TargetError):
    """No instance of a target's pool became free within the lock timeout."""

"""A Target: a validated description bound to its kind (how to reach it) and its pool."""

from __future__ import annotations

from pathlib import Path

from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.targets.description import TargetDescription
from kenning_hil.targets.kinds import Instance, TargetKind, Timeouts, get_kind_class
from kenning_hil.targets.pool import BoardPool


class Target:
    """What tests receive as the `target` fixture: description, kind, pool, formats."""

    def __init__(self, description: TargetDescription):
        self.description = description
        self.kind: TargetKind = get_kind_class(description.kind)(description)

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def runtime(self) -> str | None:
        return self.description.runtime

    def instances(self) -> list[Instance]:
        return self.kind.instances()

    def pool(self, lock_dir: Path | None = None) -> BoardPool:
        return BoardPool(self.name, self.instances(), lock_dir)

    def timeouts(self, default: float) -> Timeouts:
        own = self.description.timeouts
        return Timeouts(
            lock=own.get("lock", default),
            boot=own.get("boot", default),
            request=own.get("request", default),
        )

    def availability(self) -> tuple[bool, str]:
        """(usable here, reason): the runtime resolves and the kind can reach the board."""
        import importlib.util

        for module in self.description.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return False, f"Python module '{module}' is not installed"
        try:
            if self.runtime is not None and self.kind.local_runtime:
                runtime_class(self.runtime)
        except KenningHILError as exc:
            return False, str(exc)
        return self.kind.availability()

    def accepted_formats(self) -> list[str] | None:
        """Model formats the board runs: the description's `formats`, else the runtime's."""
        if self.description.formats is not None:
            return list(self.description.formats)
        if self.runtime is None:
            return None
        try:
            cls = runtime_class(self.runtime)
        except ConfigurationError:
            if self.kind.local_runtime:
                raise
            return None  # runs on the board only (firmware): unknown here, so not checked
        formats = getattr(cls, "input_formats", None)
        return list(formats) if formats else None

    def __repr__(self) -> str:
        return f"Target({self.name!r}, kind={self.description.kind!r})"

    def __str__(self) -> str:
        return self.name


def runtime_class(name: str) -> type:
    """The Runtime class of a registered short name or dotted path."""
    from kenning_hil.blocks import registry

    return registry.resolve_class("runtime", name)


def build_protocol(spec: dict, source: str, **overrides):
    """A client RuntimeProtocol from `{type: ..., <parameters>}` plus `overrides`."""
    from kenning_hil.blocks import registry

    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigurationError(f"{source}: key 'protocol' needs a 'type' (tcp or uart)")
    params = {k: v for k, v in spec.items() if k not in ("type", "parameters")}
    params.update(spec.get("parameters") or {})
    params.update(overrides)
    cls = registry.resolve_class("protocol", spec["type"])
    try:
        return cls.from_json(params)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: key 'protocol': {exc}") from exc

"""A Target: a validated description bound to its kind (how to reach it) and its pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kenning_hil.core.errors import ConfigurationError, KenningHILError
from kenning_hil.targets.description import TargetDescription
from kenning_hil.targets.kinds import Instance, TargetKind, Timeouts, get_kind_class
from kenning_hil.targets.pool import BoardPool

if TYPE_CHECKING:
    from kenning_hil.core.runtime import Runtime


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
            self.runtime_class()
        except KenningHILError as exc:
            return False, str(exc)
        return self.kind.availability()

    def runtime_class(self) -> type[Runtime] | None:
        """The Runtime class that drives this target from the host, or None when the
        target's runtime is the board's own software (the base Runtime then speaks the
        protocol to it). The kind decides which (`TargetKind.runtime_meaning`)."""
        if not self.kind.runtime_is_python_class():
            return None
        from kenning_hil.blocks import registry
        from kenning_hil.core.runtime import Runtime

        return registry.resolve_class("runtime", self.runtime, Runtime)

    def accepted_formats(self) -> list[str] | None:
        """Model formats the board runs: the description's `formats`, else the runtime's."""
        if self.description.formats is not None:
            return list(self.description.formats)
        cls = self.runtime_class()
        if cls is None:
            return None  # the board's own software: unknown here, so not checked
        return list(cls.input_formats) or None

    def model_refusal(self, model: Path) -> str | None:
        """The board's own refusal of the compiled `model`, found on the host before any
        upload (its kind's check: operators, tensor types, arena), or None."""
        return self.kind.model_refusal(Path(model))

    def __repr__(self) -> str:
        return f"Target({self.name!r}, kind={self.description.kind!r})"

    def __str__(self) -> str:
        return self.name


def build_protocol(spec: dict, source: str, **overrides):
    """A client RuntimeProtocol from `{type: ..., <parameters>}` plus `overrides`."""
    from kenning_hil.blocks import registry
    from kenning_hil.blocks.entries import inline_entry

    protocol = inline_entry(spec, f"{source}: key 'protocol'")
    params = {**protocol["parameters"], **overrides}
    cls = registry.resolve_class("protocol", protocol["type"])
    try:
        return cls.from_json(params)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: key 'protocol': {exc}") from exc

"""`kind: tcp`: a `kenning-hil serve` (or Kenning target server) already running at host:port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from kenning_hil.core.errors import os_reason
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)

ADDRESS_SCHEMA = {"type": "string", "pattern": r"^[^\s:]+:[0-9]{1,5}$", "description": "host:port"}


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class TcpKind(TargetKind):
    name = "tcp"
    summary = "a running target server at host:port"
    properties = {"address": ADDRESS_SCHEMA}
    # a `kenning-hil serve` at the other end, or the board's own software (firmware)
    runtime_meaning = RuntimeMeaning.BY_NAME

    @classmethod
    def default_instances(cls, options: dict) -> list:
        return [options["address"]] if "address" in options else []

    @classmethod
    def check(cls, description) -> None:
        cls.check_endpoint_pool(
            description, "address", "addresses", "server", "host:port",
            lambda address: isinstance(address, str) and ":" in address,
        )

    def instances(self) -> list[Instance]:
        return [
            Instance(i, addr, f"tcp:{addr}", split_address(addr))
            for i, addr in enumerate(self.description.instances)
        ]

    def availability(self) -> tuple[bool, str]:
        reachable, failures = [], []
        for instance in self.instances():
            try:
                with socket.create_connection(instance.spec, timeout=0.5):
                    reachable.append(instance.name)
            except OSError as exc:
                failures.append(f"{instance.name}: {os_reason(exc)}")
        if reachable:
            return True, f"{len(reachable)}/{len(self.instances())} servers reachable"
        return False, f"no server reachable ({'; '.join(failures)})"

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        from kenning_hil.targets.target import build_protocol

        desc = self.description
        host, port = instance.spec
        protocol = build_protocol(
            desc.protocol or {"type": "tcp"}, desc.source, host=host, port=port,
            timeout=context.timeouts.request,
        )
        protocol.initialize_client()
        try:
            yield TargetSession(desc.name, instance, protocol, info={"address": instance.name})
        finally:
            try:
                protocol.disconnect()
            except Exception:  # the connection may already be broken
                pass

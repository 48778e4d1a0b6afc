"""`kind: host`: the runtime runs in a local target server subprocess
(`python -m kenning_hil.runtimes.serve`), reached over TCP.

The model still crosses the wire protocol, so host runs test the same path as boards do.
Each test process starts its own server per pool instance; the pool caps how many run at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kenning_hil.blocks.registry import resolve_class
from kenning_hil.core.runtime import Runtime
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)
from kenning_hil.targets.process import (
    server_command,
    server_env,
    start_logged,
    stop,
    wait_for_line,
)

LISTENING = r"listening on (?P<host>[^\s:]+|\[[^\]]+\]):(?P<port>\d+)"


class HostKind(TargetKind):
    name = "host"
    summary = "runtime in a local target server subprocess over TCP"
    properties = {
        "serve_args": {
            "type": "array",
            "items": {"type": "string"},
            "description": "extra arguments for the target server (as `kenning-hil serve`)",
        },
    }
    required = ("runtime",)
    private_sessions = True
    runtime_meaning = RuntimeMeaning.PYTHON_CLASS

    @classmethod
    def default_instances(cls, options: dict) -> int:
        return os.cpu_count() or 1

    def availability(self) -> tuple[bool, str]:
        return True, f"local server, up to {len(self.instances())} at once"

    def alive(self, session: TargetSession) -> bool:
        return session.handle is None or session.handle.poll() is None

    def serve_command(self) -> list[str]:
        desc = self.description
        command = server_command("--runtime", desc.runtime, "--host", "127.0.0.1", "--port", "0")
        if desc.runtime_parameters:
            command += ["--runtime-parameters", json.dumps(desc.runtime_parameters)]
        header = (desc.protocol or {}).get("header") or (
            (desc.protocol or {}).get("parameters") or {}).get("header")
        if header:  # the server speaks the header layout the client is set to
            command += ["--header", str(header)]
        if resolve_class("runtime", desc.runtime, Runtime).loads_native_code:
            # this server is the test process's own, on loopback, loading what it compiled
            command.append("--allow-native-models")
        return [*command, *desc.options.get("serve_args", [])]

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        from kenning_hil.targets.target import build_protocol

        desc = self.description
        log_path = Path(context.workdir) / f"{desc.name}-{instance.index}-pid{os.getpid()}.log"
        proc = start_logged(self.serve_command(), log_path, env=server_env())
        protocol = None
        try:
            match = wait_for_line(
                proc, log_path, LISTENING, context.timeouts.boot, f"target '{desc.name}' server",
                offset=proc.log_offset,
            )
            host, port = match.group("host").strip("[]"), int(match.group("port"))
            protocol = build_protocol(
                desc.protocol or {"type": "tcp"}, desc.source, host=host, port=port,
                timeout=context.timeouts.request,
            )
            protocol.initialize_client()
            yield TargetSession(
                desc.name,
                instance,
                protocol,
                info={"address": f"{host}:{port}", "pid": proc.pid, "log": str(log_path)},
                handle=proc,
            )
        finally:
            if protocol is not None:
                try:
                    protocol.disconnect()
                except Exception:  # the server may already be gone; stopping it is what matters
                    pass
            stop(proc)

"""`kind: serial`: a board on a serial line (pyserial URL), optionally flashed and reset by
commands before the session opens.

Flashing happens once per board and firmware: a marker next to the board's lock records the
firmware hash and command last flashed, so other test processes and later runs skip it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.targets.kinds import (
    Instance,
    OpenContext,
    RuntimeMeaning,
    TargetKind,
    TargetSession,
)
from kenning_hil.targets.process import board_commands_problem, run_board_command

COMMAND_HELP = "a command line; {port}, {firmware} and {instance} are replaced"


def is_device_path(port: str) -> bool:
    return "://" not in port


class SerialKind(TargetKind):
    name = "serial"
    summary = "a board on a serial line (device path or pyserial URL)"
    properties = {
        "port": {"type": "string", "description": "/dev/ttyACM0, socket://host:port, rfc2217://..."},
        "baudrate": {"type": "integer", "minimum": 1},
        "firmware": {"type": "string", "description": "firmware image passed to the flash command"},
        "flash": {"type": "string", "description": COMMAND_HELP},
        "reset": {"type": "string", "description": COMMAND_HELP},
        "reflash": {"type": "string", "enum": ["changed", "always"]},
        "settle": {"type": "number", "minimum": 0, "description": "seconds to wait after reset"},
    }
    # a `kenning-hil serve` at the other end, or the board's own software (firmware)
    runtime_meaning = RuntimeMeaning.BY_NAME

    @classmethod
    def default_instances(cls, options: dict) -> list:
        return [options["port"]] if "port" in options else []

    @classmethod
    def check(cls, description) -> None:
        cls.check_endpoint_pool(description, "port", "ports", "board", "a port")
        if "flash" in description.options and "firmware" not in description.options:
            if "{firmware}" in description.options["flash"]:
                raise ConfigurationError(
                    f"{description.source}: key 'flash' uses {{firmware}} but key "
                    f"'firmware' is missing"
                )

    def instances(self) -> list[Instance]:
        result = []
        for i, port in enumerate(self.description.instances):
            # by-id symlinks and the tty they point to are one board: lock the real path
            key = os.path.realpath(port) if is_device_path(port) else port
            result.append(Instance(i, port, f"serial:{key}", port))
        return result

    def firmware_path(self) -> Path | None:
        return self.description.option_path("firmware")

    def availability(self) -> tuple[bool, str]:
        import serial

        problem = board_commands_problem(self.description.options, ("flash", "reset"),
                                         self.firmware_path())
        if problem is not None:
            return False, problem
        present, missing = [], []
        for instance in self.instances():
            port = instance.spec
            if is_device_path(port):
                if os.path.exists(port) and os.access(port, os.R_OK | os.W_OK):
                    present.append(port)
                else:
                    why = "no permission" if os.path.exists(port) else "not present"
                    missing.append(f"{port}: {why}")
            else:
                try:
                    serial.serial_for_url(port, do_not_open=True)
                except (ValueError, serial.SerialException) as exc:
                    missing.append(f"{port}: {exc}")
                else:
                    present.append(port)
        if present:
            return True, f"{len(present)}/{len(present) + len(missing)} ports present"
        return False, "; ".join(missing)

    def _command(self, key: str, instance: Instance) -> list[str]:
        firmware = self.firmware_path()
        text = self.description.options[key].format(
            port=instance.spec, firmware=firmware or "", instance=instance.index
        )
        return shlex.split(text)

    def _run(self, key: str, instance: Instance, context: OpenContext) -> str:
        log = Path(context.workdir) / f"{self.description.name}-{instance.index}-{key}.log"
        return run_board_command(
            self._command(key, instance), key,
            f"target '{self.description.name}' instance {instance.name}", log,
            context.timeouts.boot)

    def _flash_if_needed(self, instance: Instance, context: OpenContext) -> bool:
        """Runs the flash command unless this firmware is known to be on the board."""
        opts = self.description.options
        if "flash" not in opts:
            return False
        firmware = self.firmware_path()
        digest = hashlib.sha256(firmware.read_bytes()).hexdigest() if firmware else ""
        wanted = {"firmware": digest, "command": opts["flash"]}
        from kenning_hil.targets.pool import lock_file_name

        marker = Path(context.state_dir) / (lock_file_name(instance.lock_key) + ".flashed")
        if opts.get("reflash", "changed") == "changed" and marker.is_file():
            try:
                if json.loads(marker.read_text()) == wanted:
                    return False
            except json.JSONDecodeError:
                pass
        marker.unlink(missing_ok=True)  # a failed flash leaves the board state unknown
        self._run("flash", instance, context)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(wanted))
        return True

    @contextmanager
    def open(self, instance: Instance, context: OpenContext) -> Iterator[TargetSession]:
        from kenning_hil.targets.target import build_protocol

        desc = self.description
        flashed = self._flash_if_needed(instance, context)
        if "reset" in desc.options:
            self._run("reset", instance, context)
        time.sleep(desc.options.get("settle", 0))
        params = {"port": instance.spec, "timeout": context.timeouts.request}
        if "baudrate" in desc.options:
            params["baudrate"] = desc.options["baudrate"]
        protocol = build_protocol(desc.protocol or {"type": "uart"}, desc.source, **params)
        protocol.initialize_client()
        try:
            yield TargetSession(
                desc.name, instance, protocol, info={"port": instance.spec, "flashed": flashed}
            )
        finally:
            try:
                protocol.disconnect()
            except Exception:  # the board may have dropped the line; the port closes anyway
                pass

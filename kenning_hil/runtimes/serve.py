"""The target server: one runtime served to a host over TCP or a serial line.

    python -m kenning_hil.runtimes.serve --runtime onnxruntime --port 0

prints ``listening on ADDRESS`` once ready and serves one client at a time until SIGTERM or
Ctrl-C. `kenning-hil serve` is this program behind the command line; the `host` target kind
starts this module directly. The protocol and the runtime are looked up by their registered
names, so this module depends on neither package.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

from kenning_hil.blocks.registry import registered_names, resolve_class
from kenning_hil.core.errors import ConfigurationError, KenningHILError, one_line

MODULE = "kenning_hil.runtimes.serve"
"""This module's name, for `python -m` (``__name__`` is ``__main__`` when it runs so)."""
DESCRIPTION = (
    "Serve a runtime over the kenning-hil/Kenning wire protocol, one client at a time, until "
    "interrupted. Prints 'listening on ADDRESS' once ready (with --port 0 the port is chosen "
    "by the system)."
)
EXIT_USER_ERROR = 2
DEFAULT_REQUEST_TIMEOUT = 300.0
"""Seconds a model load or an inference may take in the runtime worker (--request-timeout)."""

log = logging.getLogger("kenning_hil.serve")
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
"""The server's log lines (its runtime worker logs in the same form)."""


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


ANY_ADDRESS = ["0.0.0.0/0", "::/0"]
"""The allow list of --allow-any."""


def _memory(text: str) -> int:
    from kenning_hil.runtimes.worker import parse_memory

    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, e.g. 300, got {text!r}") from None
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _allow_list(text: str) -> list[str]:
    # checked as networks by the TCP protocol, which names the entry that is not one
    entries = [part.strip() for part in text.split(",") if part.strip()]
    if not entries:
        raise argparse.ArgumentTypeError("expected CIDR[,CIDR...], e.g. 10.0.0.0/8")
    return entries


def native_code_runtimes() -> list[str]:
    """Registered runtimes whose model loader runs native code that comes with the model."""
    from kenning_hil.core.runtime import Runtime

    names = []
    for name in registered_names("runtime"):
        try:
            cls = resolve_class("runtime", name, Runtime)
        except KenningHILError:
            continue
        if cls.loads_native_code:
            names.append(name)
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options, shared by `python -m` and `kenning-hil serve`."""
    parser.add_argument(
        "--runtime", required=True, help=f"runtime type: {', '.join(registered_names('runtime'))}"
    )
    parser.add_argument(
        "--runtime-parameters",
        type=_json_object,
        default={},
        help='JSON object of runtime parameters, e.g. \'{"num_threads": 1}\'',
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (TCP)")
    parser.add_argument("--port", type=int, default=12345, help="TCP port; 0: any free port")
    parser.add_argument("--serial", help="serve on this serial device or pyserial URL instead")
    parser.add_argument("--baudrate", type=int, default=115200, help="serial line rate")
    parser.add_argument(
        "--checksum",
        choices=["verify", "ignore"],
        default="verify",
        help="received checksums: verify (default) or ignore",
    )
    parser.add_argument(
        "--header",
        choices=["v3", "v2"],
        default="v3",
        help="frame header layout: v3 (12 bytes, default; Kenning since April 2026) or v2 "
        "(8 bytes, for hosts built against older Kenning)",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=64 << 20,
        help="largest message (e.g. model) accepted, in bytes",
    )
    parser.add_argument("--max-frame-size", type=int, help="largest frame, header included")
    parser.add_argument(
        "--frame-timeout", type=float, help="seconds before a stalled partial frame is dropped"
    )
    parser.add_argument(
        "--allow",
        type=_allow_list,
        action="append",
        metavar="CIDR[,CIDR...]",
        help="accept TCP clients from these networks only (e.g. 10.0.0.0/8,192.168.1.7); "
        "others are closed at accept. Required, or --allow-any, on a non-loopback --host",
    )
    parser.add_argument(
        "--allow-any",
        action="store_true",
        help="accept TCP clients from any address on a non-loopback --host (the wire "
        "protocol has no authentication)",
    )
    parser.add_argument(
        "--allow-native-models",
        action="store_true",
        help="accept uploaded models that the runtime runs as native code (runtimes that "
        "load native code refuse them otherwise: tvm); any client that can connect then "
        "runs code as the server's user",
    )
    parser.add_argument(
        "--max-memory",
        type=_memory,
        default=None,
        metavar="SIZE",
        help="memory cap of the runtime worker process that loads and runs models, e.g. 1GiB "
        "(default: half of this machine's RAM); a model exceeding it gets a FAIL and the "
        "worker is restarted",
    )
    parser.add_argument(
        "--request-timeout",
        type=_seconds,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="longest a model load or an inference may take in the worker before it is "
        f"killed and restarted (default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="run the runtime in the server process itself (no memory cap, no crash "
        "isolation; a crash in the runtime stops the server)",
    )
    parser.add_argument("--log-level", default="INFO", help="server log level (default: INFO)")


def _who_may_connect(allow: list[str], allow_any: bool) -> dict[str, Any]:
    """The TCP protocol's `allow` parameter from the flags. Without either flag it is left
    out, and the protocol refuses to listen on a non-loopback address."""
    if allow and allow_any:
        raise ConfigurationError("--allow and --allow-any exclude each other: give one")
    if allow:
        log.info("accepting clients from %s only", ",".join(allow))
        return {"allow": allow}
    if allow_any:
        log.warning("--allow-any: accepting clients from any address")
        return {"allow": ANY_ADDRESS}
    return {}


def serve(args: argparse.Namespace) -> int:
    """Builds the protocol and the runtime from `args` and serves until stopped; raises
    KenningHILError (ConfigurationError) on options that name nothing usable."""
    from kenning_hil.core.runtime import Runtime

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    params: dict[str, Any] = {
        "checksum": args.checksum,
        "header": getattr(args, "header", "v3"),
        "max_message_size": args.max_message_size,
    }
    if args.max_frame_size is not None:
        params["max_frame_size"] = args.max_frame_size
    if args.frame_timeout is not None:
        params["frame_timeout"] = args.frame_timeout
    allow = [cidr for group in (getattr(args, "allow", None) or []) for cidr in group]
    allow_any = getattr(args, "allow_any", False)
    if args.serial is not None:
        if allow or allow_any:
            raise ConfigurationError("--allow and --allow-any apply to TCP, not to --serial")
        protocol_type = "uart"
        params.update(port=args.serial, baudrate=args.baudrate)
    else:
        protocol_type = "tcp"
        params.update(host=args.host, port=args.port)
        params.update(_who_may_connect(allow, allow_any))
    protocol = resolve_class("protocol", protocol_type).from_json(params)
    runtime_cls = resolve_class("runtime", args.runtime, Runtime)
    worker = None
    if getattr(args, "no_worker", False) or not runtime_cls.isolated_when_served:
        if getattr(args, "max_memory", None) is not None:
            log.warning("--max-memory: no effect, %s runs in the server process", args.runtime)
        runtime = runtime_cls.from_json(args.runtime_parameters, protocol=protocol)
    else:
        from kenning_hil.runtimes.worker import WorkerRuntime, default_max_memory

        max_memory = getattr(args, "max_memory", None) or default_max_memory()
        runtime = WorkerRuntime(
            args.runtime,
            args.runtime_parameters,
            protocol=protocol,
            max_memory=max_memory,
            request_timeout=getattr(args, "request_timeout", DEFAULT_REQUEST_TIMEOUT),
        )
        worker = runtime
    if getattr(args, "allow_native_models", False):
        runtime.allow_native_models = True
        log.warning(
            "--allow-native-models: %s",
            "any client that can connect runs native code as this server's user"
            if runtime_cls.loads_native_code
            else f"no effect, {args.runtime} does not load native code",
        )
    runtime.prepare_server()
    if worker is not None:
        worker.start_worker()  # warm before the first client, after the address checks
    # SIGTERM stops the server cleanly (closes the port) instead of killing it mid-answer
    signal.signal(signal.SIGTERM, lambda signum, frame: runtime.close_server())
    print(f"listening on {protocol.address}", flush=True)
    runtime.run_server()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except KenningHILError as exc:
        print(f"{parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

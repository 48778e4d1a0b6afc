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
from kenning_hil.core.errors import KenningHILError, one_line

MODULE = "kenning_hil.runtimes.serve"
"""This module's name, for `python -m` (``__name__`` is ``__main__`` when it runs so)."""
DESCRIPTION = (
    "Serve a runtime over the kenning-hil/Kenning wire protocol, one client at a time, until "
    "interrupted. Prints 'listening on ADDRESS' once ready (with --port 0 the port is chosen "
    "by the system)."
)
EXIT_USER_ERROR = 2


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


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
        "--max-message-size",
        type=int,
        default=64 << 20,
        help="largest message (e.g. model) accepted, in bytes",
    )
    parser.add_argument("--max-frame-size", type=int, help="largest frame, header included")
    parser.add_argument(
        "--frame-timeout", type=float, help="seconds before a stalled partial frame is dropped"
    )
    parser.add_argument("--log-level", default="INFO", help="server log level (default: INFO)")


def serve(args: argparse.Namespace) -> int:
    """Builds the protocol and the runtime from `args` and serves until stopped; raises
    KenningHILError (ConfigurationError) on options that name nothing usable."""
    from kenning_hil.core.runtime import Runtime

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    params: dict[str, Any] = {
        "checksum": args.checksum,
        "max_message_size": args.max_message_size,
    }
    if args.max_frame_size is not None:
        params["max_frame_size"] = args.max_frame_size
    if args.frame_timeout is not None:
        params["frame_timeout"] = args.frame_timeout
    if args.serial is not None:
        protocol_type = "uart"
        params.update(port=args.serial, baudrate=args.baudrate)
    else:
        protocol_type = "tcp"
        params.update(host=args.host, port=args.port)
    protocol = resolve_class("protocol", protocol_type).from_json(params)
    runtime_cls = resolve_class("runtime", args.runtime, Runtime)
    runtime = runtime_cls.from_json(args.runtime_parameters, protocol=protocol)
    runtime.prepare_server()
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

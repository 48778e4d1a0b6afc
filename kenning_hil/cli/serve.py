"""`kenning-hil serve`: the target server (`kenning_hil.runtimes.serve`) on the command line."""

from __future__ import annotations

from typing import Any

from kenning_hil.runtimes.serve import DESCRIPTION, add_arguments, serve


def add_serve_command(subparsers: Any) -> None:
    """`serve`: a runtime as a target server, over TCP (default) or a serial line."""
    parser = subparsers.add_parser(
        "serve",
        epilog="examples:\n"
        "  kenning-hil serve --runtime onnxruntime --port 12345\n"
        "  kenning-hil serve --runtime tflm --serial /dev/ttyUSB0 --baudrate 115200\n",
        help="run a target server: a runtime that a host drives over TCP or a serial line",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(handler=serve)

"""A runtime that behaves like a worker taken over by a hostile model's native code: given an
input whose first byte is 0xFF, its PROCESS writes a forged answer straight onto the runtime
worker's channel to its server (the socket whose descriptor the worker got as its first
argument) claiming an output of 2 GiB in the shared output buffer, then waits (so that what
the server makes of it decides that request's answer). Any other input is echoed as zeros.
Served from tests by its dotted path (`--runtime tests.runtimes.compromised_runtime.
CompromisedRuntime`)."""

from __future__ import annotations

import os
import struct
import sys
import time

from kenning_hil.runtimes.echo import EchoRuntime

FORGE = 0xFF


class CompromisedRuntime(EchoRuntime):
    isolated_when_served = True  # served in the worker, unlike echo itself

    def prepare_input(self, input_data: bytes) -> bool:
        self._forge = bool(len(input_data)) and input_data[0] == FORGE
        return super().prepare_input(input_data)

    def run(self) -> None:
        if getattr(self, "_forge", False):
            # status "output in the shared buffer", 2 GiB of it
            os.write(int(sys.argv[1]), struct.pack("<cQI", b"\x02", 0, 1 << 31))
            time.sleep(60)
        super().run()

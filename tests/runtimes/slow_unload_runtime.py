"""The echo runtime served in a runtime worker, whose model takes half a second to unload
(a large model being freed): the end of each session takes longer than the server's busy
check. Served from tests by its dotted path (`--runtime tests.runtimes.slow_unload_runtime.
SlowUnloadRuntime`)."""

from __future__ import annotations

import time

from kenning_hil.runtimes.echo import EchoRuntime

UNLOAD_SECONDS = 0.5


class SlowUnloadRuntime(EchoRuntime):
    isolated_when_served = True  # served in the worker, unlike echo itself

    def unload_model(self) -> None:
        time.sleep(UNLOAD_SECONDS)
        super().unload_model()

"""`kenning-hil run` against a target that is not there: an infrastructure error (#16
finding 9) says so and exits with 3, not with the 2 of a user error."""

from __future__ import annotations

import socket

from test_cli import kenning_hil, write_scenario


def test_unreachable_target_is_an_infrastructure_error(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scenario = write_scenario(
        tmp_path / "remote.json",
        protocol={"type": "tcp", "parameters": {"host": "127.0.0.1", "port": port,
                                                "timeout": 2.0}},
    )
    done = kenning_hil("run", scenario, "--output", tmp_path / "out.json")
    assert done.returncode == 3, done.stderr
    assert "\nkenning-hil: error: infrastructure error (connection): " in done.stderr, (
        done.stderr)  # after the line naming the partial measurements file
    assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr

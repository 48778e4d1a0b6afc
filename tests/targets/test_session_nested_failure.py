"""A failure inside a nested use of a board (hil.run under a test holding `target_session`)
closes the session when the outer use ends, so the next test or a --hil-retries rerun
reconnects instead of reusing a broken connection (#16 finding 9)."""

import pytest

from kenning_hil.targets import SessionManager
from tests.targets.test_sessions import HOST, server_alive, target


def test_failure_in_a_nested_use_closes_the_session_at_the_outer_end(tmp_path):
    manager = SessionManager(tmp_path / "work", tmp_path / "locks", default_timeout=20)
    board = target(HOST)
    try:
        with manager.use(board, "holder") as outer:
            with pytest.raises(ConnectionError), manager.use(board, "hil.run") as nested:
                assert nested is outer
                raise ConnectionError("lost")
            assert outer.protocol.connected  # still the holder's until it lets go
        assert not server_alive(outer)
        with manager.use(board, "next") as fresh:
            assert fresh is not outer and fresh.protocol.connected
        assert manager.boots == 2
    finally:
        manager.close_all()

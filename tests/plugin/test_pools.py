"""Board pools under pytest-xdist: real worker processes share instances through file locks;
a killed worker's board is taken over by the others."""

import json

from tests.plugin.conftest import meeting_holders, run, write_target

pytest_plugins = ["pytester"]

HOLDER = """
import json, os, time

def hold(target_session, log):
    start = time.time()
    time.sleep({hold})
    with open(log, "a") as f:
        f.write(json.dumps({{"instance": target_session.instance.index, "start": start,
                            "end": time.time(), "pid": os.getpid()}}) + "\\n")

{tests}
"""


def holder_tests(project, count: int, hold: float, extra: str = "") -> None:
    log = project.path / "holds.jsonl"
    tests = "\n".join(
        f"def test_hold_{i}(target_session):\n    hold(target_session, {str(log)!r})\n"
        for i in range(count)
    )
    project.makepyfile(test_holders=HOLDER.format(hold=hold, tests=tests + extra))


def holds(project) -> list[dict]:
    return [json.loads(line) for line in (project.path / "holds.jsonl").read_text().splitlines()]


def overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]




def test_two_workers_use_both_instances_at_once(hil_project):
    write_target(hil_project, "pool2", "kind: host\nruntime: onnxruntime\ninstances: 2\n")
    log = hil_project.path / "holds.jsonl"
    hil_project.makepyfile(test_holders=meeting_holders(log, 4))
    result = run(hil_project, "-p", "xdist", "-n", "2", "--target=pool2")
    result.assert_outcomes(passed=4)
    records = holds(hil_project)
    assert len({r["pid"] for r in records}) == 2
    pairs = [(a, b) for i, a in enumerate(records) for b in records[i + 1:]]
    # both instances were busy at the same time, by different workers ...
    assert any(overlap(a, b) and a["instance"] != b["instance"] for a, b in pairs)
    # ... and an instance was never held by two tests at once
    assert not any(overlap(a, b) and a["instance"] == b["instance"] for a, b in pairs)


def test_one_instance_is_never_shared(hil_project):
    write_target(hil_project, "pool1", "kind: host\nruntime: onnxruntime\ninstances: 1\n")
    holder_tests(hil_project, 4, hold=0.3)
    result = run(hil_project, "-p", "xdist", "-n", "2", "--target=pool1")
    result.assert_outcomes(passed=4)
    records = sorted(holds(hil_project), key=lambda r: r["start"])
    assert len({r["pid"] for r in records}) == 2
    assert all(a["end"] <= b["start"] for a, b in zip(records, records[1:]))


def test_busy_pool_times_out_with_a_clear_message(hil_project):
    write_target(hil_project, "pool1", "kind: host\nruntime: onnxruntime\ninstances: 1\n"
                                       "timeouts: {lock: 0.5}\n")
    holder_tests(hil_project, 2, hold=2.0)
    result = run(hil_project, "-p", "xdist", "-n", "2", "--target=pool1")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.re_match_lines([  # a lock timeout is an infrastructure error (#16)
        r"infrastructure error \(lock\): target 'pool1': no free instance after waiting "
        r"0\.5 s \(all 1 busy — 0: pid \d+ "
        r"pytest gw\d: test_holders\.py::test_hold_\d\[pool1\]\); raise --hil-timeout or the "
        r"target's timeouts\.lock, or add instances"
    ])
    assert "Traceback" not in result.stdout.str()


KILLER = """
def test_0_killer(target_session):
    import os, signal, time
    with open({log!r}, "a") as f:
        f.write(json.dumps({{"instance": target_session.instance.index, "start": time.time(),
                            "end": time.time(), "pid": os.getpid(), "killed": True}}) + "\\n")
    time.sleep(1.0)  # the other worker is now waiting for the board
    os.kill(os.getpid(), signal.SIGKILL)  # dies holding the board
"""


def test_killed_worker_releases_its_board(hil_project):
    write_target(hil_project, "pool1", "kind: host\nruntime: onnxruntime\ninstances: 1\n")
    log = hil_project.path / "holds.jsonl"
    # the killer comes first in the file, so xdist starts it at once on one worker
    hil_project.makepyfile(test_killer=HOLDER.format(hold=0, tests=KILLER.format(log=str(log))))
    holder_tests(hil_project, 5, hold=0.2)
    result = run(hil_project, "-p", "xdist", "-n", "2", "--max-worker-restart=2",
                 "--target=pool1", "test_killer.py", "test_holders.py")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.re_match_lines([r".*worker 'gw\d' crashed while running "
                                  r"'test_killer.py::test_0_killer\[pool1\]'"])
    records = holds(hil_project)
    killed = next(r for r in records if r.get("killed"))
    others = [r for r in records if not r.get("killed")]
    assert len(others) == 5
    # on a loaded machine the other worker may take the board first; whoever held it before
    # the killer released it before, and whoever came after got it only once the killer died
    for r in others:
        if r["start"] < killed["start"]:
            assert r["end"] <= killed["start"]
        else:
            assert r["start"] > killed["start"] + 0.9
    assert any(r["start"] > killed["start"] for r in others), "no holder waited for the killer"

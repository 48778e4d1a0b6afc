"""`kenning-hil targets`: the real console script lists targets and why they are unavailable."""

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from kenning_hil.targets.catalog import SHIPPED_TARGETS_DIR, TargetCatalog

CLI = [sys.executable, "-c", "import sys; from kenning_hil.cli import main; sys.exit(main())"]
# the package's own descriptions, listed after a project's in every project
SHIPPED_NAMES = set(TargetCatalog([SHIPPED_TARGETS_DIR]).names())


def run_targets(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "targets", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_lists_availability_and_reasons(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]  # bound, not listening: connections are refused
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "up.yaml").write_text(f"kind: tcp\naddress: 127.0.0.1:{port}\n")
    (boards / "down.yaml").write_text(f"kind: tcp\naddress: 127.0.0.1:{closed_port}\n")
    (boards / "tty.yaml").write_text(f"kind: serial\nport: {tmp_path}/ttyNONE\nformats: [tflite]\n")
    (boards / "broken.yaml").write_text("kind: tcp\nadress: 1\n")
    try:
        done = run_targets(tmp_path, "--target-dir", str(boards), "--json")
    finally:
        listener.close()
        closed.close()
    # an invalid target file fails the command (CI gates on it); unavailable ones do not
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"kenning-hil targets: 1 invalid target file(s): "
                           f"{boards / 'broken.yaml'}\n")
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"up", "down", "tty", "broken", *SHIPPED_NAMES}
    assert rows["up"]["available"] and rows["up"]["reason"] == "1/1 servers reachable"
    assert not rows["down"]["available"]
    assert "no server reachable" in rows["down"]["reason"]
    assert rows["tty"]["reason"] == f"{tmp_path}/ttyNONE: not present"
    assert not rows["broken"]["available"]
    assert "broken.yaml: unknown key 'adress' (did you mean 'address'? known keys: " in rows[
        "broken"]["reason"]
    assert not rows["broken"]["valid"] and rows["down"]["valid"]
    # without the broken file: every file valid, exit 0 though targets are unavailable here
    (boards / "broken.yaml").unlink()
    again = run_targets(tmp_path, "--target-dir", str(boards))
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert "no server reachable" in again.stdout
    assert rows["host-onnxruntime"]["source"] == str(SHIPPED_TARGETS_DIR / "host-onnxruntime.yaml")


def test_table_output(tmp_path):
    done = run_targets(tmp_path)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[:5] == ["TARGET", "KIND", "RUNTIME", "POOL", "AVAILABLE"]
    rows = {line.split()[0]: line for line in lines[:-2]}
    assert set(rows) == SHIPPED_NAMES
    assert re.match(r"host-onnxruntime +host +onnxruntime ", rows["host-onnxruntime"])
    # whether gpu-marked tests can run here: nvidia-smi's answer (none on CI machines)
    from kenning_hil.targets.gpu import detect_gpus

    assert lines[-1] == f"gpu: {detect_gpus().describe()}"
    # which runtimes run a served model as native code (`kenning-hil serve` refuses them)
    assert lines[-2].startswith("native code: runtime(s) tvm run an uploaded model as native")


def test_from_a_subdirectory_the_projects_targets_are_listed(tmp_path):
    """As pytest does, the project root is found upwards (its pytest.ini) and its targets/
    and hil_target_dir are used, wherever in the project the command runs."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nhil_target_dir = boards\n")
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "lab.yaml").write_text("kind: tcp\naddress: 127.0.0.1:9\n")
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "bench.yaml").write_text("kind: tcp\naddress: 127.0.0.1:9\n")
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    done = run_targets(tmp_path / "docs" / "deep", "--json")
    assert done.returncode == 0, done.stderr
    assert {row["name"] for row in json.loads(done.stdout)} == {"lab", "bench", *SHIPPED_NAMES}


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    done = subprocess.run(f"{' '.join(map(repr, CLI))} targets | head -1", shell=True,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("TARGET") and "Traceback" not in done.stderr, done.stderr

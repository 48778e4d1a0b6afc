"""Compile cache: one build per distinct input, shared by concurrent processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.run.compile_cache import CompileCache, cache_key, file_digest

BUILDER = """
import sys, time
from pathlib import Path
from kenning_hil.run.compile_cache import CompileCache
root, counter, source = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
def build(workdir):
    with open(counter, "a") as f:
        f.write("built\\n")
    time.sleep(0.3)  # long enough for the other process to arrive while we build
    out = workdir / "model.bin"
    out.write_bytes(source.read_bytes()[::-1])
    (workdir / "model.bin.json").write_text("{}")
    return out
material = {"model": source.read_bytes().hex()}
entry = CompileCache(root).get_or_build(material, build)
print(entry.model_path, entry.hit)
"""


def reverse_build(source: Path, counter: list):
    def build(workdir: Path) -> Path:
        counter.append(1)
        out = workdir / "model.bin"
        out.write_bytes(source.read_bytes()[::-1])
        return out

    return build


def test_build_once_then_hit_then_rebuild_on_change(tmp_path):
    source = tmp_path / "m.onnx"
    source.write_bytes(b"abc")
    cache = CompileCache(tmp_path / "cache")
    builds = []
    material = {"model": file_digest(source), "chain": [{"type": "x", "parameters": {"a": 1}}]}
    first = cache.get_or_build(material, reverse_build(source, builds))
    assert not first.hit and first.model_path.read_bytes() == b"cba" and first.size == 3
    second = cache.get_or_build(dict(material), reverse_build(source, builds))
    assert second.hit and second.model_path == first.model_path
    assert len(builds) == 1
    meta = json.loads((first.directory / "meta.json").read_text())
    assert meta["material"] == material and meta["key"] == cache_key(material)
    # a new run (new cache object) still hits
    again = CompileCache(tmp_path / "cache")
    assert again.get_or_build(material, reverse_build(source, builds)).hit
    # changing any input (bytes, parameters) builds again
    source.write_bytes(b"abcd")
    changed = {**material, "model": file_digest(source)}
    third = cache.get_or_build(changed, reverse_build(source, builds))
    assert not third.hit and third.model_path.read_bytes() == b"dcba"
    params = {**material, "chain": [{"type": "x", "parameters": {"a": 2}}]}
    assert not cache.get_or_build(params, reverse_build(source, builds)).hit
    assert len(builds) == 3
    assert (cache.hits, cache.builds) == (1, 3)


def test_key_ignores_dict_order():
    assert cache_key({"a": 1, "b": [1, {"x": 1, "y": 2}]}) == cache_key(
        {"b": [1, {"y": 2, "x": 1}], "a": 1}
    )


def test_failed_build_leaves_nothing(tmp_path):
    cache = CompileCache(tmp_path)

    def broken(workdir: Path) -> Path:
        (workdir / "half.bin").write_bytes(b"x")
        raise RuntimeError("compiler crashed")

    with pytest.raises(RuntimeError, match="compiler crashed"):
        cache.get_or_build({"m": 1}, broken)
    assert cache.lookup({"m": 1}) is None
    assert list((tmp_path / "tmp").iterdir()) == []

    def no_output(workdir: Path) -> Path:
        return workdir / "missing.bin"

    with pytest.raises(ConfigurationError, match="produced no model file"):
        cache.get_or_build({"m": 1}, no_output)


def test_concurrent_processes_build_once(tmp_path):
    source = tmp_path / "m.onnx"
    source.write_bytes(b"model bytes")
    counter = tmp_path / "count"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(tmp_path / "cache"), str(counter), str(source)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=30)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert counter.read_text().count("built") == 1
    paths = {out[0] for out in outputs}
    assert len(paths) == 1
    assert sorted(out[1] for out in outputs) == ["False", "True", "True"]
    entry_dir = Path(paths.pop()).parent
    names = sorted(p.name for p in entry_dir.iterdir())
    assert names == ["meta.json", "model.bin", "model.bin.json"]

"""Compile cache: a compiled model is built once per distinct input, across processes and runs.

The key is a SHA-256 over a canonical JSON of everything that decides the output: the input
model's bytes (and its io spec), the model wrapper's class and parameters, each optimizer's
class, parameters, framework and version, the versions of every framework a chain may run
through (`COMPILE_FRAMEWORKS`: the ONNX export or quantisation one optimizer uses is not
always its own), the contents of data files a parameter names (calibration data, io specs),
and this package's version. An entry is a directory built in a temporary place and renamed
into position (atomic on one filesystem); a per-key file lock makes concurrent processes
wait for the one that builds instead of building too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kenning_hil.core.errors import ConfigurationError

META = "meta.json"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Distributions whose version can change a compiled model: numpy (arrays in every step) and
# the frameworks the wrappers and optimizers use. Read from package metadata, so nothing is
# imported to build a key.
COMPILE_FRAMEWORKS = (
    "numpy", "onnx", "onnxruntime", "torch", "tensorflow", "tensorflow-cpu", "ai-edge-litert",
    "apache-tvm",
)


def installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def framework_versions() -> dict[str, str | None]:
    """The installed version (None: not installed) of each of `COMPILE_FRAMEWORKS`."""
    return {name: installed_version(name) for name in COMPILE_FRAMEWORKS}


# file digests by (path, inode, size, mtime): a data file is read once per process, not
# once per test
_DIGESTS: dict[tuple, str] = {}


def _stat_digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def path_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes, or of a directory's files (relative names and contents);
    None when nothing is there (yet)."""
    path = Path(path)
    if path.is_file():
        return _stat_digest(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(child.relative_to(path).as_posix().encode() + b"\0")
        digest.update(_stat_digest(child).encode())
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(material: dict) -> str:
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


@dataclass
class CacheEntry:
    """A compiled model in the cache."""

    key: str
    directory: Path
    model_path: Path
    hit: bool  # True when this call found it built (by an earlier run or another process)
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.model_path.stat().st_size


class CompileCache:
    """A directory of compiled models keyed by content hash, safe for concurrent processes."""

    def __init__(self, root: Path, lock_timeout: float = 600.0):
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self.hits = 0
        self.builds = 0

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _load(self, key: str) -> CacheEntry | None:
        directory = self.entry_dir(key)
        try:
            meta = json.loads((directory / META).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        model_path = directory / meta.get("model", "")
        if not model_path.is_file():
            return None
        return CacheEntry(key, directory, model_path, hit=True, meta=meta)

    def lookup(self, material: dict) -> CacheEntry | None:
        """The entry for `material` if it is built, without building or locking."""
        return self._load(cache_key(material))

    def get_or_build(self, material: dict, build: Callable[[Path], Path]) -> CacheEntry:
        """The entry for `material`, calling ``build(workdir) -> model path`` if absent.

        `build` writes the compiled model (and any side files such as its ``.json`` io spec)
        into `workdir`; everything it leaves there becomes the entry.
        """
        from filelock import FileLock, Timeout

        key = cache_key(material)
        entry = self._load(key)
        if entry is not None:
            self.hits += 1
            return entry
        lock_path = self.root / "locks" / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(lock_path), timeout=self.lock_timeout):
                entry = self._load(key)  # another process may have built it while we waited
                if entry is not None:
                    self.hits += 1
                    return entry
                entry = self._build(key, material, build)
        except Timeout as exc:
            raise ConfigurationError(
                f"compile cache {self.root}: waited {self.lock_timeout:.0f} s for another "
                f"process compiling {key[:12]} (lock {lock_path})"
            ) from exc
        self.builds += 1
        return entry

    def _build(self, key: str, material: dict, build: Callable[[Path], Path]) -> CacheEntry:
        tmp_root = self.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=tmp_root))
        try:
            start = time.perf_counter()
            produced = Path(build(workdir))
            seconds = time.perf_counter() - start
            if not produced.is_file():
                raise ConfigurationError(f"compilation produced no model file at {produced}")
            try:
                relative = produced.resolve().relative_to(workdir.resolve())
            except ValueError:  # written elsewhere: bring it in so the entry is complete
                relative = Path(produced.name)
                shutil.copy2(produced, workdir / relative)
            meta = {
                "key": key,
                "model": str(relative),
                "size": (workdir / relative).stat().st_size,
                "compile_seconds": seconds,
                "created": time.time(),
                "pid": os.getpid(),
                "material": material,
            }
            (workdir / META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # an incomplete entry from an interrupted older layout
                shutil.rmtree(final)
            os.rename(workdir, final)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return CacheEntry(key, final, final / relative, hit=False, meta=meta)

"""Where firmware builds go: the user cache folder and the key naming one build of one set of
sources (an installed package builds there; tests/test_installed_package.py runs it)."""

from __future__ import annotations

import shutil
from pathlib import Path

from kenning_hil.sim.firmware_build import (
    CHECKOUT_FIRMWARE_DIR,
    FIRMWARE_DIR,
    build_root,
    sources_key,
    user_cache_dir,
)


def test_user_cache_dir_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "kenning-hil"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "kenning-hil"


def test_a_checkout_builds_into_its_firmware_build_folder():
    assert FIRMWARE_DIR == CHECKOUT_FIRMWARE_DIR  # these tests run from the checkout
    assert build_root() == FIRMWARE_DIR / "build"


def test_sources_key_changes_with_the_sources_not_with_builds(tmp_path):
    sources = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, sources, ignore=shutil.ignore_patterns("build"))
    key = sources_key(sources)
    assert len(key) == 16 and key == sources_key(sources)
    (sources / "build" / "mps2-an386").mkdir(parents=True)
    (sources / "build" / "mps2-an386" / "kenning-hil.elf").write_bytes(b"\x7fELF")
    assert sources_key(sources) == key  # build outputs are not sources
    main = sources / "main.c"
    main.write_text(main.read_text() + "\n/* edited */\n")
    edited = sources_key(sources)
    assert edited != key
    renamed = Path(shutil.move(sources / "tools", sources / "tools2"))
    assert renamed.is_dir() and sources_key(sources) not in (key, edited)  # paths count too

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


# ------------------------------------------------- one board per build folder (issue 25, #1)


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_firmware_path_of_another_board_is_an_error_and_that_board_keeps_its_elf(tmp_path):
    """A target whose machine is mps2-an386 pointing at the mps3-an547 build: an error
    naming both boards when the description is read; neither the description nor a build
    request touches the other board's ELF."""
    import pytest
    import yaml

    from kenning_hil.core.errors import ConfigurationError
    from kenning_hil.sim.firmware_build import (
        FirmwareBuildError,
        build_firmware,
        default_elf,
    )
    from kenning_hil.targets.description import load_target_file

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: gcc-arm-none-eabi)")
    m55 = build_firmware("mps3-an547")
    before = _digest(m55)
    path = tmp_path / "m4-wrong.yaml"
    path.write_text(yaml.safe_dump(
        {"kind": "qemu", "machine": "mps2-an386", "firmware": str(m55)}))
    with pytest.raises(ConfigurationError) as info:
        load_target_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key 'firmware': {m55} is the firmware of board "
                              "'mps3-an547', but this target's machine is 'mps2-an386'")
    assert str(default_elf("mps2-an386")) in message and "\n" not in message
    # the library refuses the same build directly, by the folder's name and by its flags
    with pytest.raises(FirmwareBuildError, match="belongs to board 'mps3-an547', not "
                                                 "'mps2-an386'"):
        build_firmware("mps2-an386", build_dir=m55.parent)
    variant = tmp_path / "elsewhere"
    variant.mkdir()
    (variant / "flags").write_text((m55.parent / "flags").read_text())
    with pytest.raises(FirmwareBuildError, match="belongs to board 'mps3-an547'"):
        build_firmware("mps2-an386", build_dir=variant)
    assert _digest(m55) == before
    assert "-mcpu=cortex-m55" in (m55.parent / "flags").read_text()


def test_a_build_folder_named_after_no_board_is_refused(tmp_path):
    import pytest

    from kenning_hil.sim.firmware_build import FirmwareBuildError, build_firmware

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: gcc-arm-none-eabi)")
    with pytest.raises(FirmwareBuildError, match="is not named after board 'mps2-an386'"):
        build_firmware("mps2-an386", build_dir=build_root() / "my-build")
    assert not (build_root() / "my-build").exists()


def test_builds_of_one_folder_wait_for_each_other(tmp_path):
    """Two processes building one board's folder take turns: while another holds the
    folder's build lock, a build waits, and past its timeout says so (nothing is built)."""
    import pytest
    from filelock import FileLock

    from kenning_hil.sim.firmware_build import (
        FirmwareBuildError,
        board_lock_name,
        build_firmware,
        build_lock_path,
    )

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: gcc-arm-none-eabi)")
    out = tmp_path / "mps2-an386"
    with FileLock(str(build_lock_path(board_lock_name(out)))):
        with pytest.raises(FirmwareBuildError, match="another process held the build lock"):
            build_firmware("mps2-an386", build_dir=out, timeout=0.5)
    assert not out.exists()


def test_the_elf_is_linked_under_another_name_and_renamed_into_place():
    """The link step never writes the ELF in place (a QEMU booting meanwhile would read half
    of one): `make -n` shows it linked to a temporary name and moved."""
    import subprocess

    import pytest

    if shutil.which("make") is None:
        pytest.skip("make not installed")
    for goal, name in (("firmware", "kenning-hil.elf"), ("drain", "uart-drain.elf")):
        done = subprocess.run(
            ["make", "-n", "-B", "-C", str(FIRMWARE_DIR), "BOARD=mps2-an386",
             "BUILD_DIR=/nonexistent/mps2-an386", goal],
            capture_output=True, text=True, check=True)
        link = [line for line in done.stdout.splitlines() if f"-o /nonexistent/mps2-an386/{name}"
                in line]
        assert link and all(".tmp" in line and f"mv -f /nonexistent/mps2-an386/{name}." in line
                            for line in link), done.stdout[-2000:]


def test_a_board_build_writes_only_into_its_build_folder():
    """Every file a board's build writes (objects, dependency files, flags, map, ELFs) is under
    its BUILD_DIR: `make -n -B` lists each command; each one that writes names its output
    (-o, -Map=, mkdir -p, a redirection, mv's destination), and none is elsewhere, so a build
    of one board cannot change another board's folder or the sources."""
    import re
    import subprocess

    import pytest

    if shutil.which("make") is None:
        pytest.skip("make not installed")
    writes = re.compile(r"(?:-o|-Map=|mkdir -p|>)\s*(\S+)|mv -f \S+ (\S+)")
    for board in ("mps2-an386", "mps3-an547"):
        out = f"/nonexistent/{board}-variant"
        done = subprocess.run(
            ["make", "-n", "-B", "-C", str(FIRMWARE_DIR), f"BOARD={board}", f"BUILD_DIR={out}",
             "ML_REGION_SIZE=65536", "firmware", "drain"],
            capture_output=True, text=True, check=True)
        commands = [line for line in done.stdout.splitlines()
                    if line and not line.startswith(("make", 'echo "'))
                    and not line.startswith("arm-none-eabi-size")]
        assert len(commands) > 20, done.stdout[-2000:]
        for command in commands:
            outputs = [a or b for a, b in writes.findall(command)]
            assert outputs, f"a build command that names no output: {command[:300]}"
            outside = [path for path in outputs if not path.startswith(out + "/")
                       and path != out]
            assert not outside, f"{board}: writes {outside} outside {out}: {command[:300]}"

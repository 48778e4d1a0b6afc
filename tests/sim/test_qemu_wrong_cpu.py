"""A QEMU board given firmware built for another CPU (issue 25, #5): the error shows QEMU's
first fatal line, not only the end of its register dump, and says the ELF was built for
another architecture than the machine's CPU."""

from __future__ import annotations

import shutil

import pytest

from kenning_hil.core.errors import KenningHILError
from kenning_hil.sim.elf_arch import elf_arch
from kenning_hil.sim.firmware_build import build_firmware
from kenning_hil.sim.qemu import cpu_mismatch, first_fatal_line
from kenning_hil.targets import SessionManager, Target, load_target_file

from .conftest import require_simulation


def test_elf_architecture_and_the_mismatch_note(tmp_path):
    require_simulation()
    m4, m55 = build_firmware("mps2-an386"), build_firmware("mps3-an547")
    assert (elf_arch(m4), elf_arch(m55)) == ("v7E-M", "v8.1-M.mainline")
    not_elf = tmp_path / "x.elf"
    not_elf.write_bytes(b"not an ELF at all, just bytes")
    assert elf_arch(not_elf) is None and elf_arch(tmp_path / "absent.elf") is None
    assert cpu_mismatch(m4, "mps2-an386") is None and cpu_mismatch(m55, "mps3-an547") is None
    assert cpu_mismatch(m55, "mps2-an386") == (
        f"{m55} was built for Armv8.1-M.mainline, but machine mps2-an386 is a cortex-m4 "
        f"(Armv7E-M): use firmware built for mps2-an386")
    assert cpu_mismatch(m55, "virt") is None  # no firmware board: nothing to compare with


def test_first_fatal_line():
    log = ("qemu-system-arm: warning: nic lan9118.0 has no peer\n"
           "qemu: fatal: Lockup: can't escalate 3 to HardFault (current priority -1)\n\n"
           "R00=00000000 R01=00000000\nFPSCR: 00000000\n")
    assert first_fatal_line(log) == (
        "qemu: fatal: Lockup: can't escalate 3 to HardFault (current priority -1)")
    assert first_fatal_line("R00=0\n") is None


def test_wrong_cpu_firmware_names_the_fatal_line_and_the_cpu(tmp_path):
    """The Cortex-M55 firmware, copied out of its build folder, on an mps2-an386 (Cortex-M4):
    QEMU locks up at reset; the session error says so and why."""
    require_simulation()
    elf = tmp_path / "fw.elf"
    shutil.copyfile(build_firmware("mps3-an547"), elf)
    path = tmp_path / "m4-with-m55-fw.yaml"
    path.write_text(f"kind: qemu\nmachine: mps2-an386\nfirmware: {elf}\ninstances: 1\n"
                    "timeouts: {boot: 30, request: 30}\n")
    target = Target(load_target_file(path))
    manager = SessionManager(tmp_path / "work", lock_dir=tmp_path / "locks",
                             default_timeout=60)
    try:
        with pytest.raises(KenningHILError) as info:
            with manager.use(target):
                pass
    finally:
        manager.close_all()
    message = str(info.value)
    assert "QEMU exited with code" in message, message
    assert ("QEMU says: qemu: fatal: Lockup: can't escalate 3 to HardFault" in message), message
    assert (f"{elf} was built for Armv8.1-M.mainline, but machine mps2-an386 is a cortex-m4 "
            "(Armv7E-M)") in message, message
    # the fatal line comes before the register dump's tail
    assert message.index("QEMU says:") < message.index("QEMU output:")

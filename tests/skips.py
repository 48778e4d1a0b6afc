"""Skips for what a test needs and this machine lacks, each naming what is missing and the
Debian package that brings it."""

from __future__ import annotations

import shutil

import pytest

# what a qemu-m4/qemu-m55 target needs here: the emulator, and the Arm toolchain that builds
# the reference firmware
SIMULATION_TOOLS = (
    ("qemu-system-arm", "qemu-system-arm"),
    ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
)


def require_simulation(needed_by: str = "") -> None:
    """Skips the calling test unless QEMU and the Arm toolchain are installed; `needed_by`
    says what needs them (e.g. "target qemu-m4")."""
    for tool, package in SIMULATION_TOOLS:
        if shutil.which(tool) is None:
            why = f", needed by {needed_by}" if needed_by else ""
            pytest.skip(f"{tool} not installed (Debian: {package}){why}")

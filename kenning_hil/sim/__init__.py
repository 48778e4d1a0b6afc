"""Simulated boards: QEMU, the firmware build, the host build of the firmware's interpreter."""

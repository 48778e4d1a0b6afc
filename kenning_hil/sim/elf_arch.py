"""Which Arm architecture an ELF was built for, and which one a board's CPU runs: enough to
say "this firmware was built for another CPU" when QEMU dies on it. Also the size of its
image (`image_size`: what is flashed), for the code size column of reports.

The architecture comes from the ELF's build attributes (section type SHT_ARM_ATTRIBUTES,
vendor "aeabi", file-scope ``Tag_CPU_arch``), which GCC always writes; ``Tag_CPU_name`` is not
used because GCC writes the architecture there for some CPUs ("7E-M" for a Cortex-M4).
"""

from __future__ import annotations

import struct
from pathlib import Path

SHT_ARM_ATTRIBUTES = 0x70000003
TAG_FILE = 1
TAG_CPU_ARCH = 6

# Tag_CPU_arch values (ARM IHI 0045, Addenda to the Arm ABI) of the M profile and neighbours
ARCH_NAMES = {
    10: "v7", 11: "v6-M", 12: "v6S-M", 13: "v7E-M", 14: "v8-A", 16: "v8-M.baseline",
    17: "v8-M.mainline", 21: "v8.1-M.mainline",
}
# the architecture each Cortex-M CPU implements (-mcpu name -> Tag_CPU_arch name)
CPU_ARCH = {
    "cortex-m0": "v6-M", "cortex-m0plus": "v6-M", "cortex-m1": "v6-M", "cortex-m3": "v7",
    "cortex-m4": "v7E-M", "cortex-m7": "v7E-M", "cortex-m23": "v8-M.baseline",
    "cortex-m33": "v8-M.mainline", "cortex-m35p": "v8-M.mainline",
    "cortex-m52": "v8.1-M.mainline", "cortex-m55": "v8.1-M.mainline",
    "cortex-m85": "v8.1-M.mainline",
}


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return value, pos


def _ntbs(data: bytes, pos: int) -> int:
    end = data.find(b"\0", pos)
    return len(data) if end < 0 else end + 1


def _file_attributes_arch(content: bytes) -> int | None:
    if not content or content[0] != ord("A"):
        return None
    pos = 1
    while pos + 4 <= len(content):
        (length,) = struct.unpack_from("<I", content, pos)
        end = pos + length
        vendor_end = _ntbs(content, pos + 4)
        if content[pos + 4:vendor_end - 1] == b"aeabi":
            sub = vendor_end
            while sub + 5 <= end:
                tag, (sub_length,) = content[sub], struct.unpack_from("<I", content, sub + 1)
                if tag == TAG_FILE:
                    return _find_cpu_arch(content[sub + 5:sub + sub_length])
                sub += max(sub_length, 5)
        pos = max(end, pos + 4)
    return None


def _find_cpu_arch(data: bytes) -> int | None:
    pos = 0
    while pos < len(data):
        tag, pos = _uleb(data, pos)
        if tag == TAG_CPU_ARCH:
            return _uleb(data, pos)[0]
        if tag in (4, 5, 67) or (tag > 32 and tag % 2):
            pos = _ntbs(data, pos)  # a string
        elif tag == 32:  # Tag_compatibility: a number, then a string
            pos = _ntbs(data, _uleb(data, pos)[1])
        else:
            pos = _uleb(data, pos)[1]
    return None


def _elf32_le(path: Path) -> bytes | None:
    """The bytes of a 32-bit little-endian ELF file, None when it is unreadable or not one."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        return None
    return data


def elf_arch(path: Path) -> str | None:
    """The Arm architecture of a 32-bit little-endian ELF (e.g. 'v7E-M'), None when the file
    is not one or carries no build attributes."""
    data = _elf32_le(path)
    if data is None:
        return None
    (shoff,) = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    for index in range(shnum):
        header = shoff + index * shentsize
        if header + 24 > len(data):
            return None
        sh_type, = struct.unpack_from("<I", data, header + 4)
        if sh_type == SHT_ARM_ATTRIBUTES:
            offset, size = struct.unpack_from("<II", data, header + 16)
            arch = _file_attributes_arch(data[offset:offset + size])
            return None if arch is None else ARCH_NAMES.get(arch, f"arch {arch}")
    return None


PT_LOAD = 1


def image_size(path: Path) -> int | None:
    """Bytes a 32-bit little-endian ELF puts into the board's memory from the file: its
    loadable segments (code, read-only data, initialised data; what is flashed), None when
    the file is not such an ELF."""
    data = _elf32_le(path)
    if data is None:
        return None
    (phoff,) = struct.unpack_from("<I", data, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x2A)
    total = 0
    for index in range(phnum):
        header = phoff + index * phentsize
        if header + 20 > len(data):
            return None
        p_type, = struct.unpack_from("<I", data, header)
        if p_type == PT_LOAD:
            (filesz,) = struct.unpack_from("<I", data, header + 16)
            total += filesz
    return total

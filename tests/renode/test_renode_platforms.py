"""Each Renode platform in renode/ against the firmware board folder built for it: the .repl
must have the CPU the board compiles for, its UART where the board's driver writes (model,
address, interrupt) and memory wherever the board's linker script puts code and data, and the
target descriptions must connect that UART. Read from the files, no Renode needed; the
firmware of every Renode board builds (the CI build of those boards)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from kenning_hil.sim.firmware_build import FIRMWARE_DIR, boards, build_firmware

REPO = Path(__file__).resolve().parents[2]
RENODE_DIR = REPO / "renode"
# the UART driver a board compiles -> the Renode model of that UART
UART_MODELS = {"stm32_usart.c": "UART.STM32_UART"}


def renode_boards() -> dict[str, Path]:
    """Firmware board -> its Renode platform (board.mk's RENODE_PLATFORM)."""
    found = {}
    for board in boards():
        text = (FIRMWARE_DIR / "boards" / board / "board.mk").read_text()
        named = re.search(r"^RENODE_PLATFORM\s*:=\s*(\S+)", text, re.MULTILINE)
        if named:
            found[board] = RENODE_DIR / named.group(1)
    return found


def parse_repl(path: Path) -> dict[str, dict]:
    """name -> {type, address, attrs, irq} of each peripheral of a .repl."""
    peripherals: dict[str, dict] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.split("//")[0].rstrip()
        head = re.match(r"^(\w+):\s*([\w.]+)\s*@\s*sysbus\s*(.*)$", line)
        if head:
            address = re.search(r"0x[0-9a-fA-F]+", head.group(3))
            current = peripherals[head.group(1)] = {
                "type": head.group(2), "address": int(address.group(0), 16) if address else None,
                "attrs": {}, "irq": None}
            continue
        irq = re.match(r"^\s+->\s*nvic@(\d+)", line)
        if irq and current is not None:
            current["irq"] = int(irq.group(1))
            continue
        attr = re.match(r"^\s+(\w+):\s*(.+)$", line)
        if attr and current is not None:
            current["attrs"][attr.group(1)] = attr.group(2).strip().strip('"')
    return peripherals


def board_facts(board: str) -> dict:
    """What the board folder assumes: CPU, UART driver, base and IRQ, memory regions."""
    folder = FIRMWARE_DIR / "boards" / board
    mk, c_file = (folder / "board.mk").read_text(), (folder / "board.c").read_text()
    linker = (folder / "linker.ld").read_text()
    drivers = [name for name in UART_MODELS if f"boards/common/{name}" in mk]
    base = re.search(r"#define \w*U(?:S)?ART\d*_BASE (0x[0-9a-fA-F]+)u", c_file)
    irq = re.search(r"#define \w*U(?:S)?ART\d*_(?:RX_)?IRQ (\d+)u", c_file)
    regions = {name: (int(origin, 16), _size(length)) for name, origin, length in re.findall(
        r"^\s*(\w+)\s*\([rwx]+\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+),\s*LENGTH\s*=\s*(\w+)",
        linker, re.MULTILINE)}
    return {"cpu": re.search(r"-mcpu=([\w-]+)", mk).group(1), "drivers": drivers,
            "uart_base": int(base.group(1), 16) if base else None,
            "uart_irq": int(irq.group(1)) if irq else None, "regions": regions}


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text, 0)


def test_there_is_a_renode_board():
    assert set(renode_boards()) >= {"stm32f4-discovery", "stm32f205"}


@pytest.mark.parametrize("board", sorted(renode_boards()))
def test_platform_names_the_uart_and_memory_map_of_the_board(board):
    repl_path = renode_boards()[board]
    assert repl_path.is_file(), f"{board}: {repl_path} missing"
    repl = parse_repl(repl_path)
    facts = board_facts(board)
    cpus = [p for p in repl.values() if p["type"] == "CPU.CortexM"]
    assert [c["attrs"].get("cpuType") for c in cpus] == [facts["cpu"]]
    # the UART the driver writes: Renode's model of it, at the base, on the IRQ
    assert len(facts["drivers"]) == 1, f"{board}: no UART driver with a Renode model"
    uarts = [name for name, p in repl.items() if p["type"] == UART_MODELS[facts["drivers"][0]]
             and p["address"] == facts["uart_base"]]
    assert len(uarts) == 1, f"{repl_path.name}: no {UART_MODELS[facts['drivers'][0]]} at " \
                            f"{facts['uart_base']:#x}"
    assert repl[uarts[0]]["irq"] == facts["uart_irq"]
    # every region of the linker script lies in one memory of the platform
    memories = [(p["address"], int(p["attrs"]["size"], 0)) for p in repl.values()
                if p["type"] == "Memory.MappedMemory"]
    for name, (origin, length) in facts["regions"].items():
        assert any(base <= origin and origin + length <= base + size
                   for base, size in memories), f"{board}: region {name} outside the memories"
    # the CPU fetches SP and PC where the image starts
    assert int(cpus[0]["attrs"].get("VectorTableOffset", "0"), 0) == facts["regions"]["CODE"][0]
    # the targets and the script connect that UART
    for target in (REPO / "targets").glob("renode-*.yaml"):
        data = yaml.safe_load(target.read_text())
        if data.get("board") == board and "platform" in data:
            assert (target.parent / data["platform"]).resolve() == repl_path
            assert data["uart"] == uarts[0]
    for script in RENODE_DIR.glob("*.resc"):
        if repl_path.name in script.read_text():
            assert f"connector Connect sysbus.{uarts[0]} term" in script.read_text()


@pytest.mark.parametrize("board", sorted(renode_boards()))
def test_firmware_of_the_renode_board_builds(board):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: gcc-arm-none-eabi "
                    "libnewlib-arm-none-eabi)")
    assert build_firmware(board).is_file()


def test_a_wrong_uart_address_is_caught(tmp_path, monkeypatch):
    """The check fails when the platform and the board disagree (here: the USART moved)."""
    repl = tmp_path / "stm32f4_discovery.repl"
    repl.write_text((RENODE_DIR / "stm32f4_discovery.repl").read_text().replace(
        "0x40011000", "0x40004400"))
    monkeypatch.setitem(globals(), "RENODE_DIR", tmp_path)
    with pytest.raises(AssertionError, match="no UART.STM32_UART at 0x40011000"):
        test_platform_names_the_uart_and_memory_map_of_the_board("stm32f4-discovery")

"""Target descriptions: schema validation with errors naming the file and the key."""

from pathlib import Path

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.targets import (
    Target,
    TargetCatalog,
    UnknownTargetError,
    load_target_file,
    parse_size,
)
from kenning_hil.targets.kinds import get_kind_class, known_kinds

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, expected",
    [
        (4096, 4096),
        ("4MiB", 4 * 1024 * 1024),
        ("256 KiB", 256 * 1024),
        ("1.5M", int(1.5 * 1024 * 1024)),
        ("1MB", 1_000_000),
        ("640K", 640 * 1024),
        ("12B", 12),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["lots", "4 parsecs", "-1K", True])
def test_parse_size_rejects(bad):
    with pytest.raises(ConfigurationError, match="expected a size"):
        parse_size(bad, "memory.ram")


def test_shipped_targets_are_valid():
    catalog = TargetCatalog([REPO / "targets"])
    for entry in catalog.entries():
        assert entry.error is None, entry.error
    host = catalog.get("host-onnxruntime")
    assert host.kind == "host" and host.runtime == "onnxruntime"
    assert host.source.endswith("host-onnxruntime.yaml")
    serial = catalog.get("example-serial")
    assert serial.memory == {"flash": 2 * 1024**2, "ram": 640 * 1024}
    assert Target(serial).instances()[0].spec == "/dev/ttyACM0"


def test_defaults_and_name_from_file(tmp_path):
    path = write(tmp_path, "my-board.yaml", "kind: tcp\naddress: 127.0.0.1:5000\nruntime: x\n")
    desc = load_target_file(path)
    assert desc.name == "my-board"
    assert desc.instances == ["127.0.0.1:5000"]
    instance = Target(desc).instances()[0]
    assert instance.spec == ("127.0.0.1", 5000) and instance.lock_key == "tcp:127.0.0.1:5000"


@pytest.mark.parametrize(
    "text, message",
    [
        ("kind: host\nruntime: onnxruntime\nmemroy: {ram: 1K}\n",
         "unknown key 'memroy' (did you mean 'memory'? known keys: "),
        ("kind: qemu\nmachine: mps2-an386\nicounts: 1\n",
         "unknown key 'icounts' (did you mean 'icount'? known keys: "),
        ("kind: host\nruntime: x\ntimeouts: {boto: 3}\n",
         "unknown key 'timeouts.boto' (did you mean 'timeouts.boot'? known keys of timeouts: "),
        ("kind: host\nruntime: x\nzzz: 1\n", "unknown key 'zzz' (known keys: "),
        ("kind: host\nruntime: x\nmemory: {ram: lots}\n", "key 'memory.ram' must be bytes"),
        ("kind: host\nruntime: onnxruntime\nmemory: {rom: 1K}\n", "unknown key 'memory.rom'"),
        ("kind: host\n", "missing required key 'runtime'"),
        ("runtime: x\n", "missing required key 'kind'"),
        # every kind module, built in or added (labgrid, renode, ...)
        ("kind: jtag\nruntime: x\n", f"key 'kind' must be one of {', '.join(known_kinds())}"),
        ("kind: host\nruntime: x\ninstances: 0\n", "key 'instances' must be pool size"),
        ("kind: host\nruntime: x\ntiming: wallclock\n", "key 'timing' must be one of"),
        ("kind: host\nruntime: x\ntimeouts: {lock: -1}\n", "key 'timeouts.lock'"),
        ("kind: serial\nruntime: x\n", "kind 'serial' needs key 'port'"),
        ("kind: tcp\naddress: nowhere\n", "key 'address' has an invalid value 'nowhere'"),
        ("kind: host\nruntime: [a, b]\n", "key 'runtime' must be of type string"),
        ("- kind: host\n", "must be a mapping, got list"),
        ("kind: host\nruntime: x\n  bad: indent\n", "not valid YAML (line 3)"),
        ("kind: serial\nport: /dev/x\nflash: prog {firmware}\n", "key 'firmware' is missing"),
    ],
)
def test_errors_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, "board.yaml", text)
    with pytest.raises(ConfigurationError) as info:
        load_target_file(path)
    text = str(info.value)
    assert text.startswith(str(path) + ":"), text
    assert message in text, text
    assert "\n" not in text


def test_catalog_search_order_and_errors(tmp_path):
    user = tmp_path / "user"
    shipped = tmp_path / "shipped"
    user.mkdir()
    shipped.mkdir()
    write(user, "board.yaml", "kind: tcp\naddress: 10.0.0.1:1\nruntime: user\n")
    write(shipped, "board.yaml", "kind: tcp\naddress: 10.0.0.2:2\nruntime: shipped\n")
    write(shipped, "broken.yaml", "kind: tcp\n")
    catalog = TargetCatalog([user, shipped])
    assert catalog.names() == ["board", "broken"]
    assert catalog.get("board").runtime == "user"
    with pytest.raises(ConfigurationError, match="broken.yaml: kind 'tcp' needs key 'address'"):
        catalog.get("broken")
    with pytest.raises(UnknownTargetError, match="unknown target 'nope' .*known: board, broken"):
        catalog.get("nope")


def test_catalog_rejects_duplicate_names_in_one_dir(tmp_path):
    write(tmp_path, "a.yaml", "name: same\nkind: tcp\naddress: h:1\n")
    write(tmp_path, "b.yaml", "name: same\nkind: tcp\naddress: h:2\n")
    with pytest.raises(ConfigurationError, match="b.yaml: target name 'same' is already described"):
        TargetCatalog([tmp_path]).names()


def test_every_kind_declares_schema_and_name():
    assert {"host", "tcp", "serial"} <= set(known_kinds())
    for name in known_kinds():
        cls = get_kind_class(name)
        assert cls.name == name
        assert isinstance(cls.properties, dict)

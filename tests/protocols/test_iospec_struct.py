"""The packed 356-byte UART io spec struct."""

import struct

import pytest

from kenning_hil.core.errors import ConfigurationError
from kenning_hil.protocols.iospec_struct import (
    IOSPEC_STRUCT_SIZE,
    dlpack_type,
    pack_io_spec,
    unpack_io_spec,
    unpack_names,
)

KWS_LIKE = {
    "input": [{"name": "x", "shape": [1, 49, 10, 1], "dtype": "float32"}],
    "processed_input": [
        {"name": "x", "shape": [1, 49, 10, 1], "dtype": "int8", "scale": 0.5, "zero_point": -3}
    ],
    "output": [{"name": "y", "shape": [1, 12], "dtype": "int8", "scale": 0.1, "zero_point": 0}],
}


def test_packs_to_exactly_356_bytes_with_documented_layout():
    data = pack_io_spec(KWS_LIKE)
    assert len(data) == IOSPEC_STRUCT_SIZE == 356
    assert struct.unpack_from("<I", data, 0) == (1,)  # num_input
    assert struct.unpack_from("<2I", data, 4) == (4, 0)  # num_input_dim
    assert struct.unpack_from("<8I", data, 12) == (1, 49, 10, 1, 0, 0, 0, 0)
    assert data[44:48] == bytes([0, 8, 0, 0])  # processed input: int8 = (code 0, 8 bits)
    assert struct.unpack_from("<I", data, 48) == (1,)  # num_output
    assert struct.unpack_from("<2I", data, 52) == (2, 0)  # num_output_dim[0..1]
    assert struct.unpack_from("<4I", data, 100) == (1, 12, 0, 0)  # output_shape[0]
    assert data[292:294] == bytes([0, 8])  # output int8
    assert data[316:336] == b"\0" * 20  # entry_func
    assert data[336:356].rstrip(b"\0") == b"module"


def test_round_trip():
    spec = {
        "input": [
            {"name": "a", "shape": [1, 3], "dtype": "float32"},
            {"name": "b", "shape": [2], "dtype": "uint8"},
        ],
        "output": [{"name": f"o{i}", "shape": [1, i + 1], "dtype": "int16"} for i in range(12)],
        "entry_func": "module.main",
    }
    packed = pack_io_spec(spec, model_name="m")
    unpacked = unpack_io_spec(packed)
    assert set(unpacked) == {"input", "output"}
    assert [(e["shape"], e["dtype"]) for e in unpacked["input"]] == [
        ([1, 3], "float32"), ([2], "uint8")
    ]
    assert [e["shape"] for e in unpacked["output"]] == [[1, i + 1] for i in range(12)]
    assert unpack_names(packed) == ("module.main", "m")


def test_shapes_are_padded_per_tensor():
    # two inputs of 2 dims each: the second starts at row 1, not right after the first
    spec = {
        "input": [
            {"name": "a", "shape": [1, 5], "dtype": "int8"},
            {"name": "b", "shape": [1, 7], "dtype": "int8"},
        ],
        "output": [],
    }
    data = pack_io_spec(spec)
    assert struct.unpack_from("<8I", data, 12) == (1, 5, 0, 0, 1, 7, 0, 0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"input": [{"name": "i", "shape": [1], "dtype": "int8"}] * 3, "output": []},
         "3 inputs, the UART struct holds at most 2"),
        ({"input": [], "output": [{"name": "o", "shape": [1], "dtype": "int8"}] * 13},
         "13 outputs, the UART struct holds at most 12"),
        ({"input": [{"name": "i", "shape": [1, 2, 3, 4, 5], "dtype": "int8"}], "output": []},
         "has 5 dimensions, the UART struct holds at most 4"),
        ({"input": [{"name": "i", "shape": [1], "dtype": "complex64"}], "output": []},
         "no DLPack code"),
        ({"input": [{"name": "i", "shape": [1, -1], "dtype": "int8"}], "output": []},
         "only the batch dimension may be dynamic"),
    ],
)
def test_clear_errors_before_sending(spec, message):
    with pytest.raises(ConfigurationError, match=message):
        pack_io_spec(spec)


def test_dlpack_codes():
    assert dlpack_type("int8") == (0, 8)
    assert dlpack_type("uint8") == (1, 8)
    assert dlpack_type("float32") == (2, 32)
    assert dlpack_type("bool") == (6, 8)


def test_unpack_rejects_wrong_size_and_counts():
    with pytest.raises(ConfigurationError, match="expected 356 bytes, got 10"):
        unpack_io_spec(b"\0" * 10)
    bad = bytearray(pack_io_spec(KWS_LIKE))
    bad[0] = 3
    with pytest.raises(ConfigurationError, match="num_input is 3, at most 2"):
        unpack_io_spec(bytes(bad))

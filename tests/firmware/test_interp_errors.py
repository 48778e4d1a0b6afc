"""Failure paths of the firmware interpreter: corrupt and truncated models, unsupported
operators and types, too small arenas, calls in the wrong state. A corrupt model must fail with
a clear message and never read outside the model (checked under AddressSanitizer)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kenning_hil.core.errors import InputSizeError, ModelLoadError
from kenning_hil.sim.interp_lib import (
    VARIANT_SINGLE_ROUNDING,
    FirmwareInterpreter,
    InterpreterError,
    InterpreterLoadError,
    load_library,
)

from . import khil_tflite_builder as tb
from .conftest import FIRMWARE_DIR


def small_model(op=tb.FULLY_CONNECTED, dtype=np.int8) -> bytes:
    b = tb.TFLiteBuilder()
    quant = {"scale": 0.05, "zero_point": 0} if dtype == np.int8 else {}
    x = b.tensor((1, 8), dtype=dtype, **quant)
    if op == tb.FULLY_CONNECTED:
        w = b.tensor((4, 8), dtype=dtype, data=np.ones((4, 8)), **quant)
        y = b.tensor((1, 4), dtype=dtype, **quant)
        b.op(op, [x, w, -1], [y], tb.fully_connected_options())
    else:  # MUL: not supported by the firmware
        y = b.tensor((1, 8), dtype=dtype, **quant)
        b.op(op, [x, x], [y], [(0, "u8", 0)])
    return b.build([x], [y])


def test_wrong_identifier_is_named(interp_library):
    data = bytearray(small_model())
    data[4:8] = b"XYZ!"
    expected = r"not a TFLite flatbuffer \(identifier 'XYZ!'\)"
    with pytest.raises(InterpreterLoadError, match=expected):
        FirmwareInterpreter(bytes(data), library=interp_library)


def test_load_error_is_a_model_load_error_with_status(interp_library):
    with pytest.raises(ModelLoadError) as info:
        FirmwareInterpreter(b"\x00" * 4, library=interp_library)
    assert info.value.status_name == "KHIL_ERR_PARSE"


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_model_fails_cleanly(fraction, mlperf_tiny_dir, interp_library):
    data = (mlperf_tiny_dir / "kws_ref_model.tflite").read_bytes()
    cut = data[: int(len(data) * fraction)]
    with pytest.raises(InterpreterLoadError) as info:
        FirmwareInterpreter(cut, library=interp_library)
    assert info.value.status_name == "KHIL_ERR_PARSE"


def test_random_bytes_with_identifier_fail_cleanly(interp_library):
    rng = np.random.default_rng(3)
    for _ in range(200):
        data = bytearray(rng.integers(0, 256, size=int(rng.integers(8, 600)), dtype=np.uint8))
        data[4:8] = b"TFL3"
        with pytest.raises(InterpreterLoadError):
            FirmwareInterpreter(bytes(data), library=interp_library)


def test_unsupported_operator_is_named(interp_library):
    with pytest.raises(InterpreterLoadError,
                       match=r"unsupported operator MUL \(builtin 18\) in subgraph 0 op 0") as info:
        FirmwareInterpreter(small_model(tb.MUL), library=interp_library)
    assert info.value.status_name == "KHIL_ERR_UNSUPPORTED_OP"


def test_patched_opcode_in_real_model_is_named(mlperf_tiny_dir, interp_library, tmp_path):
    """ad01's only operator code is FULLY_CONNECTED (9); patch it to MUL (18) in a copy."""
    data = bytearray((mlperf_tiny_dir / "ad01_int8.tflite").read_bytes())
    root = int.from_bytes(data[0:4], "little")

    def table_field(table: int, slot: int) -> int:
        vtable = table - int.from_bytes(data[table:table + 4], "little", signed=True)
        offset = int.from_bytes(data[vtable + 4 + 2 * slot:vtable + 6 + 2 * slot], "little")
        return table + offset if offset else 0

    codes_field = table_field(root, 1)
    codes = codes_field + int.from_bytes(data[codes_field:codes_field + 4], "little")
    first = codes + 4 + int.from_bytes(data[codes + 4:codes + 8], "little")
    deprecated, builtin = table_field(first, 0), table_field(first, 3)
    assert data[deprecated] == 9
    data[deprecated] = 18
    if builtin:
        data[builtin:builtin + 4] = (18).to_bytes(4, "little")
    patched = tmp_path / "ad01_mul.tflite"
    patched.write_bytes(data)
    with pytest.raises(InterpreterLoadError,
                       match=r"unsupported operator MUL \(builtin 18\) in subgraph 0 op 0"):
        FirmwareInterpreter(patched.read_bytes(), library=interp_library)


def test_unsupported_tensor_type_is_named(interp_library):
    with pytest.raises(InterpreterLoadError,
                       match=r"unsupported tensor type FLOAT32 for FULLY_CONNECTED input") as info:
        FirmwareInterpreter(small_model(dtype=np.float32), library=interp_library)
    assert info.value.status_name == "KHIL_ERR_UNSUPPORTED_TYPE"


def test_arena_too_small_for_metadata(interp_library):
    with pytest.raises(InterpreterLoadError, match=r"arena has 64") as info:
        FirmwareInterpreter(small_model(), arena_size=64, library=interp_library)
    assert info.value.status_name == "KHIL_ERR_ARENA"


def test_input_of_wrong_size_is_refused(interp_library):
    ours = FirmwareInterpreter(small_model(), library=interp_library)
    with pytest.raises(InputSizeError, match="input 0 expects int8 of shape"):
        ours.set_input(0, np.zeros(9, dtype=np.int8))
    with pytest.raises(InputSizeError):
        ours.set_input(0, np.zeros(8, dtype=np.int16))


def test_invoke_without_model_reports_state(interp_library):
    lib = load_library(interp_library)
    ip = ctypes.create_string_buffer(lib.khil_interp_struct_size())
    err = ctypes.create_string_buffer(128)
    assert lib.khil_invoke(ip, err, 128) == 5  # KHIL_ERR_STATE
    assert err.value == b"khil_invoke: no model loaded"
    assert lib.khil_num_inputs(ip) == 0


def test_variants_need_the_variants_build(interp_library):
    with pytest.raises(InterpreterError, match="need a build with -DKHIL_VARIANTS"):
        FirmwareInterpreter(small_model(), library=interp_library,
                            variant=VARIANT_SINGLE_ROUNDING)


FUZZ_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from kenning_hil.sim.interp_lib import FirmwareInterpreter, InterpreterLoadError
    lib, model_path = sys.argv[1], sys.argv[2]
    data = open(model_path, "rb").read()
    rng = np.random.default_rng(1)
    loaded = refused = 0
    for i in range(300):
        mutated = bytearray(data)
        if i % 3 == 0:
            mutated = mutated[: int(rng.integers(8, len(data)))]
        for _ in range(int(rng.integers(1, 8))):
            mutated[int(rng.integers(8, len(mutated)))] = int(rng.integers(0, 256))
        try:
            fw = FirmwareInterpreter(bytes(mutated), arena_size=1 << 18, library=lib)
        except InterpreterLoadError:
            refused += 1
            continue
        loaded += 1
        for k, spec in enumerate(fw.inputs):
            fw.set_input(k, np.zeros(spec.shape, dtype=spec.dtype))
        fw.invoke()
    print(f"loaded {loaded} refused {refused}")
""")


def test_mutated_models_never_read_out_of_bounds(mlperf_tiny_dir, tmp_path):
    """Bit flips and truncations of a real model under AddressSanitizer + UBSan."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    libasan = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        pytest.skip("AddressSanitizer runtime not installed")
    lib = tmp_path / "libkhil_interp_asan.so"
    sources = sorted(str(p) for p in (FIRMWARE_DIR / "interp").glob("*.c"))
    subprocess.run([gcc, "-O1", "-g", "-fPIC", "-shared", "-std=c11", "-fsanitize=address",
                    "-fno-sanitize-recover=undefined", "-fsanitize=undefined", "-o", str(lib),
                    *sources], check=True)
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ_SCRIPT)
    env = dict(os.environ, LD_PRELOAD=libasan, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0")
    result = subprocess.run([sys.executable, str(script), str(lib),
                             str(mlperf_tiny_dir / "kws_ref_model.tflite")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ERROR: AddressSanitizer" not in result.stderr
    assert "runtime error" not in result.stderr
    assert "loaded" in result.stdout

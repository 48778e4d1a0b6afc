"""What the reference firmware's interpreter runs, read from its own operator table, and the
refusal it would answer to a model — decided on the host, before any upload.

Why: a model the board cannot run used to be sent whole over the emulated UART (a 1 MB float
model: 66 s) before the firmware answered ``unsupported tensor type FLOAT32``. The operators and
tensor types live in one file, ``firmware/interp/khil_ops.def``, which the firmware's loader
compiles in (an X-macro table) and this module parses, so the two cannot disagree. The checks
run in the loader's order with its messages (khil_loader.c ``khil_load_ex``: every tensor, the
model inputs and outputs, then each operator), so the host refuses with the board's words.

The arena check is a lower bound: the bytes of the tensors live at once at the busiest
operator (the loader's planner adds records and alignment on top), so a model refused here
could never load, while one that passes may still be refused by the board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from kenning_hil.formats.tflite_flatbuffer import (
    BUILTIN_OPERATORS,
    CUSTOM_OPERATOR_CODE,
    TENSOR_TYPE_NAMES,
    TFLiteModelInfo,
    read_tflite_model,
)
from kenning_hil.sim.firmware_build import FIRMWARE_DIR

OPS_TABLE = Path("interp") / "khil_ops.def"
MAX_DIMS = 6  # khil_interp.h KHIL_MAX_DIMS
MAX_IO = 16  # khil_interp.h KHIL_MAX_IO
ARENA_ALIGN = 16  # khil_interp_runtime.c: the arena starts after the model, 16-byte aligned
# element sizes of the types the loader can size (khil_loader.c type_size); others are 0
TYPE_SIZES = {
    "INT8": 1, "UINT8": 1, "BOOL": 1, "INT16": 2, "FLOAT16": 2, "UINT16": 2,
    "INT32": 4, "FLOAT32": 4, "UINT32": 4, "INT64": 8, "FLOAT64": 8, "UINT64": 8,
}
NOT_CHECKED, ANY_TYPE = "NONE", "ANY"

_ENTRY = re.compile(r"^KHIL_OP\((?P<fields>[^)]*)\)")


@dataclass(frozen=True)
class OperatorSupport:
    """One line of the table: an operator, its inputs' names and types, its output type."""

    name: str
    code: int
    roles: tuple[str, str, str]
    types: tuple[str, str, str]  # a TensorType name, NONE (not checked) or ANY (sized)
    output_type: str


@cache
def supported_operators(firmware_dir: Path = FIRMWARE_DIR) -> dict[int, OperatorSupport]:
    """The firmware's operator table by builtin code, parsed from khil_ops.def."""
    path = Path(firmware_dir) / OPS_TABLE
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = _ENTRY.match(line.strip())
        if match is None:
            continue
        fields = [f.strip() for f in match.group("fields").split(",")]
        if len(fields) != 9:
            raise ValueError(f"{path}:{number}: KHIL_OP needs 9 fields, got {len(fields)}")
        name, code, r0, t0, r1, t1, r2, t2, out = fields
        for type_name in (t0, t1, t2, out):
            if type_name not in (*TENSOR_TYPE_NAMES, NOT_CHECKED, ANY_TYPE):
                raise ValueError(f"{path}:{number}: unknown tensor type {type_name}")
        table[int(code)] = OperatorSupport(name, int(code), (r0, r1, r2), (t0, t1, t2), out)
    return table


@cache
def board_region_size(board: str, firmware_dir: Path = FIRMWARE_DIR) -> int | None:
    """The model + arena memory of a board's firmware build (ML_REGION_SIZE in its board.mk),
    None when the board has no such line."""
    path = Path(firmware_dir) / "boards" / board / "board.mk"
    try:
        text = path.read_text()
    except OSError:
        return None
    match = re.search(r"^ML_REGION_SIZE\s*\??=\s*(\d+)\s*$", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def operator_name(code: int) -> str:
    """The firmware's name of a builtin code (khil_names.c; unknown codes: "BUILTIN")."""
    return BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else "BUILTIN"


def _type_name(code: int) -> str:
    return TENSOR_TYPE_NAMES[code] if 0 <= code < len(TENSOR_TYPE_NAMES) else "UNKNOWN"


def _size(type_code: int) -> int:
    return TYPE_SIZES.get(_type_name(type_code), 0)


def load_refusal(model: bytes | TFLiteModelInfo, model_size: int, region_size: int | None,
                 source: str = "<model>") -> str | None:
    """Why the firmware's loader would refuse `model` (its own message), or None.

    `model`: the `.tflite` bytes or their parsed form; `region_size`: the board's model +
    arena memory (ML_REGION_SIZE), None to skip the memory checks. A corrupt file raises
    ModelLoadError from the flatbuffer reader."""
    info = model if isinstance(model, TFLiteModelInfo) else read_tflite_model(model, source)
    table = supported_operators()
    tensors = info.tensors
    if region_size is not None:
        arena_offset = -(-model_size // ARENA_ALIGN) * ARENA_ALIGN
        if arena_offset >= region_size:
            return (f"model of {model_size} bytes leaves no tensor arena in the "
                    f"{region_size}-byte model + arena memory")
    for index, tensor in enumerate(tensors):
        if len(tensor.shape) > MAX_DIMS:
            return (f"tensor {index} has {len(tensor.shape)} dimensions, at most {MAX_DIMS} "
                    f"supported")
        negative = [d for d in tensor.shape if d < 0]
        if negative:
            return f"tensor {index} has a dynamic dimension ({negative[0]})"
        if tensor.constant and _size(tensor.type_code) == 0:
            return f"tensor {index} has unsupported type {_type_name(tensor.type_code)}"
    for what, indices in (("inputs", info.input_indices), ("outputs", info.output_indices)):
        if len(indices) > MAX_IO:
            return f"model has {len(indices)} {what}, at most {MAX_IO} supported"
        for position, index in enumerate(indices):
            if _size(tensors[index].type_code) == 0:
                return (f"unsupported tensor type {_type_name(tensors[index].type_code)} for "
                        f"model {what} {position}")
    for position, node in enumerate(info.nodes):
        refusal = _operator_refusal(node, position, table, tensors)
        if refusal is not None:
            return refusal
    if region_size is not None:
        arena = region_size - -(-model_size // ARENA_ALIGN) * ARENA_ALIGN
        needed = peak_activation_bytes(info)
        if needed > arena:
            return f"model needs at least {needed} arena bytes, arena has {arena}"
    return None


def _operator_refusal(node, position: int, table: dict, tensors: list) -> str | None:
    if node.code == CUSTOM_OPERATOR_CODE:
        custom = node.name.removeprefix("CUSTOM:")[:39]
        custom = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in custom)
        return f"unsupported custom operator '{custom}' in subgraph 0 op {position}"
    support = table.get(node.code)
    name = operator_name(node.code)
    if support is None:
        return (f"unsupported operator {name} (builtin {node.code}) in subgraph 0 op "
                f"{position}")
    if len(node.inputs) > 3 or len(node.outputs) != 1:
        return (f"{name} (op {position}) has {len(node.inputs)} inputs and "
                f"{len(node.outputs)} outputs")
    checks = [(i, support.roles[k], support.types[k]) for k, i in enumerate(node.inputs)]
    checks.append((node.outputs[0], "output", support.output_type))
    for index, role, wanted in checks:
        if index < 0 or wanted == NOT_CHECKED or not 0 <= index < len(tensors):
            continue
        have = tensors[index].type_code
        if wanted == ANY_TYPE:
            if _size(have) == 0:
                wanted = "INT8"  # the loader names the type it runs
            else:
                continue
        if _type_name(have) != wanted:
            return (f"unsupported tensor type {_type_name(have)} for {name} {role} "
                    f"(op {position})")
    return None


def peak_activation_bytes(info: TFLiteModelInfo) -> int:
    """The most bytes of non-constant tensors alive at once (inputs from the start, outputs
    to the end, others from the operator writing them to the last reading them); a RESHAPE
    output shares its input's memory, as in the loader."""
    tensors = info.tensors
    owner = list(range(len(tensors)))  # storage a tensor lives in (itself or an alias root)
    first = {i: -1 for i in info.input_indices}
    last: dict[int, int] = {}
    reshape = next((c for c, s in supported_operators().items() if s.name == "RESHAPE"), None)
    for position, node in enumerate(info.nodes):
        for index in node.inputs:
            if index >= 0:
                root = owner[index]
                last[root] = max(last.get(root, position), position)
        out = node.outputs[0] if node.outputs else -1
        if out < 0:
            continue
        if node.code == reshape and node.inputs and node.inputs[0] >= 0:
            owner[out] = owner[node.inputs[0]]
            continue
        first.setdefault(out, position)
    end = len(info.nodes)
    for index in info.output_indices:
        last[owner[index]] = end
    peak = 0
    for position in range(-1, end):
        live = 0
        for index, start in first.items():
            if tensors[index].constant:
                continue
            if start <= position <= last.get(index, start):
                shape_size = 1
                for d in tensors[index].shape:
                    shape_size *= max(d, 0)
                live += shape_size * _size(tensors[index].type_code)
        peak = max(peak, live)
    return peak

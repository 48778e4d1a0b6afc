"""A tuning-free CPU schedule for the TIR kernels TVM's Relax legalization produces.

TVM 0.27's `tvm.compile` lowers every operator of an `llvm` target to plain, single-threaded
loop nests: its CPU `dlight` rules only cover GEMV and row reductions, and nothing else
schedules a convolution or matmul unless meta-schedule tunes it. `CPUFallback` gives every other
kernel a fixed schedule: inline padding and elementwise stages, move reduction loops outside
the innermost spatial loop, vectorize that loop, and run the fused outer spatial loops in
parallel on TVM's thread pool.
"""

from __future__ import annotations

from typing import Any

from kenning_hil.core.errors import import_optional

# Lanes of one vectorized loop, in bytes: a 256-bit register. LLVM splits it into narrower
# instructions on targets without AVX, so it is safe for any x86/Arm CPU.
VECTOR_BYTES = 32
# Below this many loop iterations per call (symbolic batch counted as 1), waking the thread pool
# costs more than it saves (the digits MLP's layers): such kernels stay on one thread.
MIN_PARALLEL_WORK = 1 << 16


def _int_extent(sch: Any, loop: Any) -> int | None:
    extent = sch.get(loop).extent
    return int(extent.value) if hasattr(extent, "value") else None


def _lanes(extent: int | None, max_lanes: int) -> int:
    """The widest divisor of `extent` up to `max_lanes`, so no lane needs a bounds check."""
    if extent is None:
        return 1
    return max(d for d in range(1, min(extent, max_lanes) + 1) if extent % d == 0)


def _block_lanes(sch: Any, block: Any) -> int:
    dtypes = [region.source.dtype for region in sch.get(block).writes]
    bits = max((dtype.bits * dtype.lanes for dtype in dtypes), default=32)
    return max(1, VECTOR_BYTES * 8 // max(bits, 8))


def schedule_block(sch: Any, block: Any, kinds: str) -> None:
    """Parallel outer spatial loops, reductions next, the innermost spatial loop vectorized."""
    loops = sch.get_loops(block)
    spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
    reduction = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
    if not spatial or len(spatial) + len(reduction) != len(loops):
        return
    work = 1  # computed before the split below invalidates the loop handles
    for loop in loops:
        work *= _int_extent(sch, loop) or 1
    sch.reorder(*spatial, *reduction)
    inner = spatial[-1]
    lanes = _lanes(_int_extent(sch, inner), _block_lanes(sch, block))
    if lanes > 1:
        outer, inner = sch.split(inner, factors=[None, lanes])
        outer_loops = [*spatial[:-1], outer]
        if reduction:  # the vector of accumulators stays innermost, reductions around it
            sch.reorder(*outer_loops, *reduction, inner)
        sch.vectorize(inner)
    else:
        outer_loops = spatial[:-1] if len(spatial) > 1 else spatial
    outer = sch.fuse(*outer_loops) if len(outer_loops) > 1 else outer_loops[0]
    if work >= MIN_PARALLEL_WORK:
        sch.parallel(outer)
    if reduction:
        # Accumulate in a thread-local buffer LLVM keeps in vector registers, not in memory.
        write_back = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(write_back, outer)
        _inline_epilogue(sch, write_back)
        if lanes > 1:
            sch.vectorize(sch.get_loops(write_back)[-1])
        init = sch.decompose_reduction(block, reduction[0])
        if lanes > 1:
            sch.vectorize(sch.get_loops(init)[-1])


def _inline_epilogue(sch: Any, block: Any) -> None:
    """Fuse elementwise consumers (bias, residual add, ReLU) into `block`'s loop."""
    while True:
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except Exception:  # noqa: BLE001 - not an injective consumer: it stays a separate loop
            return


def cpu_fallback_rule() -> Any:
    """A `dlight` ScheduleRule applying `schedule_block` to each kernel of an llvm target."""
    tvm = import_optional("tvm", "tvm", "TVM compilation")
    from tvm.s_tir import dlight

    class CPUFallback(dlight.ScheduleRule):
        def apply(self, func: Any, target: Any, _tunable: bool) -> Any:
            if not isinstance(func, tvm.tirx.PrimFunc) or target.kind.name != "llvm":
                return None
            sch = tvm.s_tir.Schedule(func)
            infos = dlight.normalize_prim_func(sch)
            if infos is None:
                return None
            for info in dlight.try_inline(sch, infos):
                try:
                    schedule_block(sch, info.block_rv, info.dom_kind())
                except Exception:  # noqa: BLE001 - an unschedulable block stays as lowered
                    continue
            return sch

    return CPUFallback()

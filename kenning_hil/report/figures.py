"""Figures as PNG bytes (matplotlib, Agg backend); None when matplotlib is not installed.

Every figure is drawn the same way for the same data: the Okabe-Ito palette (told apart with
the common colour-vision deficiencies), PNG metadata without the matplotlib version, and no
timestamps, so a report rendered twice is byte-identical and diffs stay quiet. An axis
carries one unit: seconds and counted instructions/cycles never share one (a figure has a
panel per unit instead).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from kenning_hil.core.measurements import (
    PROTOCOL_STEP,
    SECONDS,
    TARGET_CYCLES,
    TARGET_INSTRUCTIONS,
    TARGET_STEP,
)

# Okabe & Ito, "Color Universal Design" (2008): black dropped, blue first
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000"]
DPI = 80
_STYLE = {
    "axes.prop_cycle": None,  # set on first use (needs matplotlib's cycler)
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": DPI,
    "svg.hashsalt": "kenning-hil",
    "path.simplify": True,
}


class _Figures:
    """What the figure functions draw with: bare matplotlib Figures (Agg when saved), not
    pyplot's, so drawing a report changes neither the backend nor the figures a caller has
    open, and costs no figure-manager bookkeeping."""

    @staticmethod
    def subplots(*args, figsize: tuple[float, float], **kwargs):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(*args, **kwargs)

    @staticmethod
    def close(fig) -> None:
        """Nothing to close: no pyplot manager holds the figure."""


def _pyplot() -> type[_Figures] | None:
    try:
        import matplotlib  # noqa: F401
        from cycler import cycler
    except ImportError:
        return None
    if _STYLE["axes.prop_cycle"] is None:
        _STYLE["axes.prop_cycle"] = cycler(color=PALETTE)
    return _Figures


def _styled():
    """The report's style for the figures drawn inside (the caller's rcParams untouched)."""
    import matplotlib

    _pyplot()
    return matplotlib.rc_context(_STYLE)


def _margins(fig, left: float = 0.75, right: float = 0.2, bottom: float = 0.55,
             top: float = 0.3, wspace: float = 0.3, hspace: float = 0.5) -> None:
    """Fixed margins in inches: what tight_layout would find, at a fraction of its cost
    (it draws every text once more to measure it; a report has a hundred figures)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wspace, hspace=hspace)


def _label_inches(labels: Sequence[str], fontsize: float = 7) -> float:
    """About how wide the longest of `labels` is set in `fontsize` points."""
    return max((len(label) for label in labels), default=0) * fontsize * 0.0085 + 0.15


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    # no "Software" (matplotlib's version) in the PNG: the same data, the same bytes
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ drawing

PARALLEL_FROM = 8  # figures: fewer are drawn in this process alone


def _draw_one(job: tuple[Callable[..., bytes | None], tuple]) -> bytes | None:
    draw, args = job
    if _pyplot() is None:
        return None
    with _styled():
        return draw(*args)


_JOBS: Sequence = ()  # what forked workers draw, by index (inherited, never pickled)


DRAWING_CPU: dict[int, float] = {}
"""CPU seconds each process spent drawing in the last `draw_all`, by pid: the busiest one
bounds its wall time on an idle machine (benchmarks/bench_report.py prints it)."""


def _draw_index(index: int) -> tuple[bytes | None, int, float]:
    import os
    import time

    start = time.process_time()
    data = _draw_one(_JOBS[index])
    return data, os.getpid(), time.process_time() - start


def _timed_here(jobs: Sequence) -> list[bytes | None]:
    import os
    import time

    start = time.process_time()
    drawn = [_draw_one(job) for job in jobs]
    DRAWING_CPU[os.getpid()] = time.process_time() - start
    return drawn


def draw_all(jobs: Sequence[tuple[Callable[..., bytes | None], tuple]]) -> list[bytes | None]:
    """PNG bytes (or None) of each (function, args) job, in order: spread over forked
    worker processes when there are many, more than one CPU and no other thread in this
    process (a fork copies a lock another thread holds, held forever); else here."""
    global _JOBS
    DRAWING_CPU.clear()
    import multiprocessing
    import os
    import threading

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = min(4, cpus or 1, len(jobs))
    if (len(jobs) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods() or _pyplot() is None):
        return _timed_here(jobs)
    _JOBS = jobs
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            drawn = pool.map(_draw_index, range(len(jobs)), chunksize=1)
    except OSError:  # no processes to be had: draw them here
        return _timed_here(jobs)
    finally:
        _JOBS = ()
    for _, pid, cpu in drawn:
        DRAWING_CPU[pid] = DRAWING_CPU.get(pid, 0.0) + cpu
    return [data for data, _, _ in drawn]


# -------------------------------------------------------------------------------- units


def unit_scale(values: Sequence[float] | np.ndarray, unit: str) -> tuple[float, str]:
    """(factor, axis label) showing `values` (seconds or a count) with readable digits:
    milliseconds or microseconds, k or M instructions."""
    array = np.asarray(values, dtype=np.float64)
    typical = float(np.median(np.abs(array))) if array.size else 0.0
    if unit == SECONDS:
        for factor, name in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")):
            if typical * factor >= 1:
                return factor, name
        return 1e9, "ns"
    if typical >= 1e6:
        return 1e-6, f"M {unit}"
    if typical >= 1e4:
        return 1e-3, f"k {unit}"
    return 1.0, unit


def axis_label(unit: str) -> str:
    """'latency' for times, the count's own name otherwise."""
    return "latency" if unit == SECONDS else f"{unit} per inference"


def _short(label: str, width: int = 40) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1):]


def test_label(test: str, width: int = 48) -> str:
    """A test id as a figure names it: without its file (``suites/digits.yaml::``), which
    every run of a suite shares, so the model, chain and target part stays readable."""
    return _short(test.rsplit("::", 1)[-1], width)


SOURCE_NAMES = {
    TARGET_STEP: "time on the target",
    TARGET_INSTRUCTIONS: "instructions counted by the simulated board",
    TARGET_CYCLES: "cycles counted by the board",
    PROTOCOL_STEP: "protocol round trip, timed by the host",
}
"""What a latency source measures, in words (the key stays in the figure for searching)."""


# ------------------------------------------------------------------------- one run


def latency_run_png(series: Sequence[tuple[str, str, Sequence[float]]]) -> bytes | None:
    """Per-inference latency over the run (left) and its histogram (right), a row per
    (source, unit, values): the target's own measure and the protocol round trip."""
    plt = _pyplot()
    series = [s for s in series if len(s[2])]
    if plt is None or not series:
        return None
    fig, axes = plt.subplots(len(series), 2, figsize=(8, 2.3 * len(series)),
                             width_ratios=[2, 1], squeeze=False)
    for row, (source, unit, values) in enumerate(series):
        factor, name = unit_scale(values, unit)
        data = np.asarray(values, dtype=np.float64) * factor
        colour = PALETTE[row % len(PALETTE)]
        trace, hist = axes[row]
        trace.plot(*_envelope(data), linewidth=0.7, color=colour)
        if data.size <= 60:
            trace.plot(np.arange(1, data.size + 1), data, ".", markersize=3, color=colour)
        trace.set_xlabel("inference")
        trace.set_ylabel(name)
        trace.set_title(f"{SOURCE_NAMES.get(source, source)} ({source})")
        _pad_flat(trace, data)
        # the histogram shows the body: a few slow outliers would squash it into one bar
        top = float(np.percentile(data, 99)) if data.size >= 100 else float(data.max())
        beyond = int((data > top).sum())
        # one filled outline, not a patch per bin: the same picture, drawn much faster
        flat = _pad_flat(hist, data, "x")
        span = (float(np.median(data)) * 0.99, float(np.median(data)) * 1.01) if flat else None
        hist.hist(data[data <= top], bins=min(40, max(5, data.size // 5)), color=colour,
                  histtype="stepfilled", range=span)
        hist.axvline(float(np.median(data)), color="#000000", linewidth=0.8, linestyle="--",
                     label=f"median {np.median(data):.4g}")
        hist.set_xlabel(name + (f" ({beyond} above p99 not shown)" if beyond else ""))
        hist.set_ylabel("inferences")
        hist.legend(loc="upper right")
        hist.locator_params(axis="x", nbins=4)  # room for the digits of each tick
        hist.yaxis.get_major_locator().set_params(integer=True)
        hist.ticklabel_format(axis="x", useOffset=False, style="plain")
    _margins(fig, hspace=0.75 if len(series) > 1 else 0.5)
    return _png(fig, plt)


def _envelope(data: np.ndarray, width: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a trace to draw: the data itself, or for long runs the minimum and maximum
    of each of `width` consecutive slices in turn, which looks the same at a figure's
    resolution (every spike stays) and draws ten times faster."""
    x = np.arange(1, data.size + 1)
    if data.size <= 2 * width:
        return x, data
    edges = np.linspace(0, data.size, width + 1).astype(int)
    lows = np.minimum.reduceat(data, edges[:-1])
    highs = np.maximum.reduceat(data, edges[:-1])
    xs = np.repeat(x[edges[:-1]], 2)
    ys = np.empty(2 * width)
    ys[0::2], ys[1::2] = lows, highs
    return xs, ys


def _pad_flat(ax, data: np.ndarray, axis: str = "y") -> bool:
    """A run that barely varies (counted instructions) gets a range of ±1 % around it
    instead of an offset axis ('+3.75e7') or ticks like 17.59432 that hide the values;
    True when it was that flat."""
    ax.ticklabel_format(axis=axis, useOffset=False, style="plain")
    low, high = float(data.min()), float(data.max())
    if high - low >= 0.01 * max(abs(high), 1e-12):
        return False
    centre = (low + high) / 2
    span = max(abs(centre) * 0.01, 1e-12)
    (ax.set_ylim if axis == "y" else ax.set_xlim)(centre - span, centre + span)
    return True


def system_stats_png(time_s: Sequence[float], cpus_percent: Sequence[Sequence[float]],
                     mem_percent: Sequence[float], gpu_percent: Sequence[float] = (),
                     gpu_mem_percent: Sequence[float] = ()) -> bytes | None:
    """CPU busy % per core and memory % over the run (SystemStatsCollector), GPU when seen."""
    plt = _pyplot()
    if plt is None or not len(time_s):
        return None
    panels = 3 if len(gpu_percent) else 2
    fig, axes = plt.subplots(1, panels, figsize=(8, 2.4))
    cpus = np.asarray([list(c) for c in cpus_percent], dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    if cpus.ndim == 2 and cpus.size:
        marker = "o" if len(t) <= 30 else None
        for core in range(cpus.shape[1]):
            axes[0].plot(t, cpus[:, core], linewidth=0.6, alpha=0.6, marker=marker,
                         markersize=2, color=PALETTE[(core + 1) % len(PALETTE)])
        axes[0].plot(t, cpus.mean(axis=1), linewidth=1.4, color=PALETTE[0],
                     label=f"mean of {cpus.shape[1]} cores")
        axes[0].legend(loc="upper right")
    axes[0].set_title("CPU per core")
    axes[1].plot(t, mem_percent, color=PALETTE[5])
    axes[1].set_title("memory in use (of the host's RAM)")
    if panels == 3:
        axes[2].plot(t[: len(gpu_percent)], gpu_percent, color=PALETTE[2], label="GPU")
        if len(gpu_mem_percent):
            axes[2].plot(t[: len(gpu_mem_percent)], gpu_mem_percent, color=PALETTE[3],
                         label="GPU memory")
        axes[2].set_title("GPU")
        axes[2].legend(loc="upper right")
    for ax in axes:
        ax.set_xlabel("time in run (s)")
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
    _margins(fig)
    return _png(fig, plt)


def confusion_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str] = ()) -> bytes | None:
    """The confusion matrix, each row (true class) normalised to its count; counts written
    in the cells when there are few classes, names on the axes when they fit."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=np.float64)
    if plt is None or counts.ndim != 2 or not counts.size:
        return None
    n = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = 3.2 if n <= 4 else min(6.0, 2.5 + 0.3 * n)
    fig, ax = plt.subplots(figsize=(side + (1.0 if n > 15 else 0.3), side))
    image = ax.imshow(share, cmap="cividis", vmin=0, vmax=1, interpolation="nearest")
    if n > 15:  # no counts in the cells: the colour is all there is to read
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    else:
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=6,
                        color="#000000" if share[i, j] > 0.6 else "#ffffff")
    if n <= 30:
        names = [_short(str(c), 12) for c in class_names] if len(class_names) == n else [
            str(i) for i in range(n)]
        ax.set_xticks(range(n), names, rotation=90 if n > 10 else 0)
        ax.set_yticks(range(n), names)
        ax.grid(False)
    else:
        ax.grid(False)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix ({int(counts.sum())} samples, {n} classes; colour: share "
                 "of the true class)")
    _margins(fig, left=0.6, right=0.1, bottom=0.55, top=0.3)
    return _png(fig, plt)


# ------------------------------------------------------------------------- comparisons


def _horizontal() -> dict:
    """Horizontal violins and boxes: `orientation` since matplotlib 3.10, `vert` before."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def distributions_png(groups: Sequence[tuple[str, Sequence[float]]], unit: str) -> bytes | None:
    """Latency distributions side by side, one violin (with its box) per run, all in one
    unit."""
    plt = _pyplot()
    groups = [(label, np.asarray(v, dtype=np.float64)) for label, v in groups if len(v)]
    if plt is None or not groups:
        return None
    factor, name = unit_scale(np.concatenate([v for _, v in groups]), unit)
    data = [v * factor for _, v in groups]
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(groups) + 1.3))
    positions = np.arange(1, len(groups) + 1)
    # violins of the 1st to 99th percentile: a rare stall would stretch the axis tenfold
    body = [d[(d >= np.percentile(d, 1)) & (d <= np.percentile(d, 99))] if d.size >= 100 else d
            for d in data]
    varied = [i for i, d in enumerate(body) if d.size > 1 and np.ptp(d) > 0]
    if varied:
        parts = ax.violinplot([body[i] for i in varied], positions[varied], **_horizontal(),
                              showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_facecolor(PALETTE[4])
            body.set_alpha(0.5)
    ax.boxplot(data, positions=positions, **_horizontal(), widths=0.25, showfliers=False,
               medianprops={"color": PALETTE[5]})
    medians = [float(np.median(d)) for d in data if d.size]
    if min(medians) > 0 and max(medians) / min(medians) > 30:
        # models a thousand times apart: on a linear axis all but the slowest are a dot
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_yticks(positions, [test_label(label) for label, _ in groups])
    ax.invert_yaxis()
    ax.set_xlabel(f"{axis_label(unit)} ({name}{', log scale' if ax.get_xscale() == 'log' else ''}"
                  "; whiskers 1.5 IQR, violins p1 to p99)")
    if ax.get_xscale() != "log":
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    _margins(fig, left=_label_inches([test_label(label) for label, _ in groups]))
    return _png(fig, plt)


def bubbles_png(points: Sequence[tuple[str, float, float, float | None]], unit: str,
                metric: str = "accuracy") -> bytes | None:
    """Accuracy (y) against median latency (x, one unit), the bubble's area the compiled
    model size; (label, latency, accuracy, size bytes)."""
    plt = _pyplot()
    if plt is None or not points:
        return None
    factor, name = unit_scale([p[1] for p in points], unit)
    sizes = [p[3] or 0 for p in points]
    largest = max(sizes) or 1
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, (label, latency, accuracy, size) in enumerate(points):
        area = 40 + 900 * (size or 0) / largest
        ax.scatter(latency * factor, accuracy, s=area, alpha=0.6,
                   color=PALETTE[i % len(PALETTE)], edgecolors="#000000", linewidths=0.5,
                   label=f"{test_label(label, 44)} ({_size(size)})")
    ax.set_xlabel(f"median {axis_label(unit)} ({name})")
    ax.set_ylabel(metric)
    low = min(p[2] for p in points)
    ax.set_ylim(max(0.0, low - 0.05), min(1.02, max(p[2] for p in points) + 0.03))
    ax.margins(x=0.15)
    legend = ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5),
                       title="bubble area = compiled size", frameon=False)
    for handle in legend.legend_handles:  # the legend's markers name, not size, the runs
        handle.set_sizes([40])
    _margins(fig, right=3.3)
    return _png(fig, plt)


def _size(size: float | None) -> str:
    if not size:
        return "size ?"
    return f"{size / 1024:.0f} KiB" if size >= 10240 else f"{int(size)} B"


def trends_png(series: Mapping[str, Sequence[tuple[str, float, bool]]], ylabel: str,
               unit: str) -> bytes | None:
    """Each test's value over successive results (x: the run's label, a date or commit);
    (label, value, regressed) points, regressions marked with a red cross."""
    plt = _pyplot()
    series = {k: v for k, v in series.items() if v}
    if plt is None or not series:
        return None
    labels: list[str] = []
    for points in series.values():
        labels += [p[0] for p in points if p[0] not in labels]
    x_of = {label: i for i, label in enumerate(labels)}
    factor, name = unit_scale([p[1] for pts in series.values() for p in pts], unit)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    marked = False
    for i, (test, points) in enumerate(sorted(series.items())):
        xs = [x_of[p[0]] for p in points]
        ys = [p[1] * factor for p in points]
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1,
                color=PALETTE[i % len(PALETTE)], label=test_label(test, 50))
        bad = [(x, y) for x, y, p in zip(xs, ys, points) if p[2]]
        if bad:
            ax.scatter(*zip(*bad), marker="x", s=60, color=PALETTE[5], zorder=3,
                       label=None if marked else "regression")
            marked = True
    step = max(1, len(labels) // 12)
    ax.set_xticks(range(0, len(labels), step), [labels[i] for i in range(0, len(labels), step)],
                  rotation=30, ha="right")
    ax.set_ylabel(f"{ylabel} ({name})" if name else ylabel)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _margins(fig, right=3.0, bottom=0.85)
    return _png(fig, plt)


def agreement_png(series: Mapping[str, Sequence[float]], unit: str) -> bytes | None:
    """Each compared pair's largest output difference per sample (0: bit-exact)."""
    plt = _pyplot()
    series = {k: v for k, v in series.items() if len(v)}
    if plt is None or not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 2.8))
    for i, (label, values) in enumerate(sorted(series.items())):
        ax.plot(np.arange(1, len(values) + 1), values, linewidth=0.8, marker="o" if len(
            values) <= 60 else None, markersize=2, color=PALETTE[i % len(PALETTE)],
                label=test_label(label, 50))
    ax.set_xlabel("sample")
    ax.set_ylabel(f"max difference ({unit})")
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=unit == "steps")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _margins(fig, right=3.0)
    return _png(fig, plt)


def latency_bars_png(rows: Sequence[tuple[str, float, float | None]]) -> bytes | None:
    """One bar per (label, p50 s, p95 s)."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    factor, name = unit_scale([v for _, v, _ in rows], SECONDS)
    labels = [test_label(label, 50) for label, _, _ in rows]
    p50 = [v * factor for _, v, _ in rows]
    p95 = [(w if w is not None else v) * factor for _, v, w in rows]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    positions = range(len(rows))
    ax.barh(positions, p50, color=PALETTE[0], label="p50")
    ax.errorbar(p95, positions, fmt="|", color=PALETTE[5], markersize=10, label="p95")
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"latency ({name})")
    ax.legend(fontsize=7)
    _margins(fig, left=_label_inches(labels))
    return _png(fig, plt)

"""Figures as PNG bytes (matplotlib, Agg backend); None when matplotlib is not installed."""

from __future__ import annotations

import io
from collections.abc import Sequence


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def latency_samples_png(samples_s: Sequence[float], title: str, source: str) -> bytes | None:
    """Per-inference latency over the run and its histogram."""
    plt = _pyplot()
    if plt is None or not samples_s:
        return None
    ms = [s * 1e3 for s in samples_s]
    fig, (trace, hist) = plt.subplots(1, 2, figsize=(8, 2.6), width_ratios=[2, 1])
    trace.plot(range(len(ms)), ms, linewidth=0.8)
    trace.set_xlabel("inference")
    trace.set_ylabel("ms")
    trace.set_title(f"{title} ({source})", fontsize=8)
    hist.hist(ms, bins=min(40, max(5, len(ms) // 5)))
    hist.set_xlabel("ms")
    fig.tight_layout()
    return _png(fig, plt)


def latency_bars_png(rows: Sequence[tuple[str, float, float | None]]) -> bytes | None:
    """One bar per (label, p50 s, p95 s)."""
    plt = _pyplot()
    if plt is None or not rows:
        return None
    labels = [label if len(label) <= 50 else "…" + label[-49:] for label, _, _ in rows]
    p50 = [v * 1e3 for _, v, _ in rows]
    p95 = [(w if w is not None else v) * 1e3 for _, v, w in rows]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    positions = range(len(rows))
    ax.barh(positions, p50, color="#4c72b0", label="p50")
    ax.errorbar(p95, positions, fmt="|", color="#c44e52", label="p95")
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency (ms)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig, plt)

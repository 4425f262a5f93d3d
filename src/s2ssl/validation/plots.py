"""Plots of the validation results (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from s2ssl.data.stats import NormStats
from s2ssl.io import atomic_path


def band_stats_png(stats: dict[str, NormStats], path: str | Path) -> Path:
    """Per-band mean ± std and the low-high quantile range of each dataset, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    if not stats:
        ax.text(0.5, 0.5, "no usable dataset: no statistics", ha="center", va="center")
        ax.set_axis_off()
    else:
        names = list(stats)
        bands = next(iter(stats.values())).bands
        x = np.arange(len(bands))
        width = 0.8 / len(names)
        for k, name in enumerate(names):
            s = stats[name]
            xs = x - 0.4 + width * (k + 0.5)
            low, high, mean, std = (np.array(v) for v in (s.low, s.high, s.mean, s.std))
            ax.bar(xs, high - low, width * 0.9, bottom=low, alpha=0.35, label=f"{name} q-range")
            ax.errorbar(xs, mean, yerr=std, fmt="o", ms=3, capsize=2, label=f"{name} mean ± std")
        q = next(iter(stats.values())).quantiles
        ax.set_xticks(x, bands)
        ax.set_ylabel("reflectance")
        ax.set_title(
            f"Normalisation statistics of valid cloud-free pixels (bars: {q[0]:.0%}-{q[1]:.0%})"
        )
        ax.legend(fontsize=7, ncols=len(names), loc="upper left")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return target

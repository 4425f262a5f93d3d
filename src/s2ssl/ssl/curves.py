"""The pre-training curves a person looks at (``reports/pretrain/<method>/curves.png``): the
method's own objective per epoch, with the online probe's accuracy beside it, so one can see
whether the budget trained the objective to a plateau."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from s2ssl.io import atomic_path

__all__ = ["curves_png", "loss_plateau"]


def loss_plateau(history: Sequence[Mapping[str, float]]) -> float:
    """Relative drop of the training loss over the last third of the epochs (``(first - last) /
    |first|`` of that third): near 0 when the objective has plateaued; NaN with < 3 epochs."""
    losses = [float(r["loss"]) for r in history if math.isfinite(float(r.get("loss", math.nan)))]
    if len(losses) < 3:
        return math.nan
    tail = losses[len(losses) - max(2, len(losses) // 3) :]
    return (tail[0] - tail[-1]) / max(abs(tail[0]), 1e-12)


def curves_png(method: str, history: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Training loss (left axis) and probe accuracy (right axis) against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) + 1 for r in history]
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.plot(epochs, [r.get("loss", math.nan) for r in history], "o-", color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (own objective)", color="tab:blue")
    probe = ax.twinx()
    probe.plot(epochs, [r.get("knn_acc", math.nan) for r in history], "s--", color="tab:orange")
    probe.set_ylabel("kNN probe accuracy (val)", color="tab:orange")
    drop = loss_plateau(history)
    note = "" if math.isnan(drop) else f" — loss drop over the last third: {100 * drop:.1f} %"
    ax.set_title(f"{method}{note}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

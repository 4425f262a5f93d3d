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


def curves_png(
    method: str, histories: Mapping[str, Sequence[Mapping[str, float]]], path: Path
) -> Path:
    """Training loss (left) and probe accuracy (right) against the epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, probe) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    drops = []
    for unit, history in histories.items():
        epochs = [int(r["epoch"]) + 1 for r in history]
        ax.plot(epochs, [r.get("loss", math.nan) for r in history], "o-", label=unit)
        probe.plot(epochs, [r.get("knn_acc", math.nan) for r in history], "s--", label=unit)
        drops.append(loss_plateau(history))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (own objective)")
    probe.set_xlabel("epoch")
    probe.set_ylabel("kNN probe accuracy (val; a monitor)")
    finite = [d for d in drops if not math.isnan(d)]
    note = (
        f" — loss drop over the last third: {100 * min(finite):.1f} to {100 * max(finite):.1f} %"
        if finite
        else ""
    )
    fig.suptitle(f"{method}: {len(histories)} run(s){note}", fontsize=9)
    for a in (ax, probe):
        a.grid(alpha=0.3)
    if len(histories) <= 12:
        probe.legend(fontsize=6, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

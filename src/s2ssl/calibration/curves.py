"""Has a fine-tuning budget converged? Plateau statistics of one validation history, and the
validation curves of every random-init run as rows (``curves.csv``) and a figure (``curves.png``).

A history is what :func:`s2ssl.finetune.train.fit` records: one dict per validation,
``{"step": s, "train_loss": l, "val_<metric>": v}``, in step order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from s2ssl.io import atomic_path

__all__ = [
    "CURVE_COLUMNS",
    "CurveSeries",
    "PlateauStats",
    "curve_rows",
    "plateau_stats",
    "plot_curves",
]

CURVE_COLUMNS: Final[tuple[str, ...]] = ("task", "fraction", "step", "train_loss", "val_score")
"""The columns of ``curves.csv`` (one row per validation of every random-init run)."""


@dataclass(frozen=True)
class PlateauStats:
    """How a run's validation score evolved.

    Attributes:
        best_step: the step of the best validation score (the first one, as training keeps it).
        last_step: the step of the last validation (the end of the budget).
        val_gain_second_half: best validation score among the validations after
            ``last_step / 2`` minus the best among those at or before it; ``nan`` when one half
            has no validation. A run that has plateaued gains little (≈ 0 or negative) in its
            second half; a large gain says the budget is too short.
    """

    best_step: int
    last_step: int
    val_gain_second_half: float


def plateau_stats(history: Sequence[Mapping[str, float]], metric: str) -> PlateauStats:
    """The :class:`PlateauStats` of a validation ``history`` scored as ``val_<metric>``.

    Raises:
        ValueError: an empty history or one without ``step`` / ``val_<metric>`` in every entry.
    """
    key = f"val_{metric}"
    if not history:
        raise ValueError("the validation history is empty: the run was never validated")
    missing = [i for i, row in enumerate(history) if "step" not in row or key not in row]
    if missing:
        raise ValueError(f"history entries {missing} lack 'step' or {key!r}")
    steps = [int(row["step"]) for row in history]
    values = [float(row[key]) for row in history]
    best = max(range(len(values)), key=lambda i: (values[i], -i))  # first of the best
    last = max(steps)
    middle = last / 2
    first = [v for s, v in zip(steps, values, strict=True) if s <= middle]
    second = [v for s, v in zip(steps, values, strict=True) if s > middle]
    gain = max(second) - max(first) if first and second else math.nan
    return PlateauStats(best_step=steps[best], last_step=last, val_gain_second_half=gain)


def curve_rows(
    task: str, fraction_label: str, history: Sequence[Mapping[str, float]], metric: str
) -> list[dict[str, Any]]:
    """One ``curves.csv`` row (:data:`CURVE_COLUMNS`) per validation of one run."""
    return [
        {
            "task": task,
            "fraction": fraction_label,
            "step": int(row["step"]),
            "train_loss": float(row.get("train_loss", math.nan)),
            "val_score": float(row[f"val_{metric}"]),
        }
        for row in history
    ]


@dataclass(frozen=True)
class CurveSeries:
    """The validation curve of one run, for :func:`plot_curves`."""

    fraction_label: str
    steps: list[int]
    values: list[float]
    best_step: int


def plot_curves(
    panels: Mapping[str, tuple[str, Sequence[CurveSeries]]], path: str | Path
) -> Path | None:
    """``curves.png``: one panel per task (``panels[task] = (metric label, series)``), the
    validation score against the step for each label fraction, its best step marked.

    Returns the path, or ``None`` (nothing written) when there is no panel.
    """
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.0 * len(panels), 4.0), squeeze=False, layout="constrained"
    )
    for ax, (task, (label, series)) in zip(axes[0], panels.items(), strict=True):
        for s in series:
            (line,) = ax.plot(s.steps, s.values, marker=".", label=f"{s.fraction_label} %")
            if s.best_step in s.steps:
                best = s.values[s.steps.index(s.best_step)]
                ax.plot([s.best_step], [best], marker="*", markersize=12, color=line.get_color())
        ax.plot([], [], marker="*", linestyle="none", color="grey", label="best step")
        ax.set_title(f"{task}: random init")
        ax.set_xlabel("step")
        ax.set_ylabel(f"val {label}")
        ax.grid(alpha=0.3)
        ax.legend(title="labels", fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)

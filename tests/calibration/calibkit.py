"""Helpers of the calibration tests (importable as ``calibkit``): tiny params and hand-made
run records."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s2ssl.config import set_dotted
from testkit import TINY_SIZES, read_repo_params, write_params

HOLDOUT = "south_pampa"
"""The region held out in the ``holdout_world`` fixture (it has train, val and test samples)."""

TINY_CALIBRATE: dict[str, Any] = {
    "calibrate.pixel_classifier.max_train_pixels": 500,
    "calibrate.pixel_classifier.max_iter": 5,
    "finetune.torch_threads": 1,
}
"""Overrides (on top of :data:`testkit.TINY_SIZES`) that make the baselines take milliseconds."""


def write_calibrate_params(path: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """The repo's params at the tiny sizes with :data:`TINY_CALIBRATE` and the dotted
    ``overrides`` applied."""
    raw = read_repo_params()
    for key, value in {**TINY_SIZES, **TINY_CALIBRATE, **(overrides or {})}.items():
        set_dotted(raw, key, value)
    return write_params(path, raw)


def record(
    task: str,
    fraction_label: str,
    test: float,
    *,
    metric: str = "miou",
    history: list[dict[str, float]] | None = None,
    zero_shot: float | None = None,
) -> dict[str, Any]:
    """A random-init run record as :func:`s2ssl.calibration.random_init.execute_run` writes it
    (only the fields the summary and the report read)."""
    hist = history or [
        {"step": 10.0, "train_loss": 1.0, f"val_{metric}": test - 0.1},
        {"step": 20.0, "train_loss": 0.5, f"val_{metric}": test},
    ]
    return {
        "key": f"{task}.random.f{fraction_label}",
        "task": task,
        "fraction_label": fraction_label,
        "metric": metric,
        "test_score": test,
        "val_score": max(h[f"val_{metric}"] for h in hist),
        "per_class": {"a": test, "b": float("nan")},
        "best_step": 20,
        "last_step": 20,
        "val_gain_second_half": 0.1,
        "history": hist,
        "n_train": 5,
        "wall_s": 1.5,
        "zero_shot": None
        if zero_shot is None
        else {"score": zero_shot, "drop": test - zero_shot, "n_test": 3},
    }

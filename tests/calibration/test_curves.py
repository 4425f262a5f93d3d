"""Plateau statistics against hand-computed histories, and the curves' CSV rows and figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from s2ssl.calibration.curves import CurveSeries, curve_rows, plateau_stats, plot_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(steps: list[int], values: list[float]) -> list[dict[str, float]]:
    return [
        {"step": float(s), "train_loss": 1.0 / (i + 1), "val_miou": v}
        for i, (s, v) in enumerate(zip(steps, values, strict=True))
    ]


def test_gain_in_the_second_half_of_a_still_improving_run() -> None:
    stats = plateau_stats(_history([10, 20, 30, 40], [0.1, 0.5, 0.6, 0.55]), "miou")
    # halves split at step 20 (≤ 20: 0.1, 0.5; after: 0.6, 0.55)
    assert stats.best_step == 30 and stats.last_step == 40
    assert stats.val_gain_second_half == pytest.approx(0.1)


def test_a_plateaued_run_gains_nothing_or_loses() -> None:
    stats = plateau_stats(
        _history([15, 30, 45, 60, 75, 90], [0.3, 0.7, 0.7, 0.69, 0.7, 0.68]), "miou"
    )
    assert stats.best_step == 30  # the first of the equal best scores, as training keeps it
    assert stats.last_step == 90
    assert stats.val_gain_second_half == pytest.approx(0.0)
    worse = plateau_stats(_history([15, 30, 45], [0.3, 0.8, 0.6]), "miou")  # middle 22.5
    assert worse.val_gain_second_half == pytest.approx(0.8 - 0.3)
    overfit = plateau_stats(_history([10, 20, 30, 40], [0.2, 0.9, 0.5, 0.4]), "miou")
    assert overfit.val_gain_second_half == pytest.approx(0.5 - 0.9)


def test_one_validation_has_no_second_half() -> None:
    stats = plateau_stats(_history([60], [0.4]), "miou")
    assert stats.best_step == 60 and stats.last_step == 60
    assert math.isnan(stats.val_gain_second_half)


def test_plateau_stats_refuse_empty_or_foreign_histories() -> None:
    with pytest.raises(ValueError, match="never validated"):
        plateau_stats([], "miou")
    with pytest.raises(ValueError, match="val_top1"):
        plateau_stats(_history([1], [0.1]), "top1")


def test_curve_rows_and_the_figure(tmp_path: Path) -> None:
    history = _history([1, 2], [0.2, 0.3])
    rows = curve_rows("landcover", "10", history, "miou")
    assert rows == [
        {"task": "landcover", "fraction": "10", "step": 1, "train_loss": 1.0, "val_score": 0.2},
        {"task": "landcover", "fraction": "10", "step": 2, "train_loss": 0.5, "val_score": 0.3},
    ]
    series = [CurveSeries("10", [1, 2], [0.2, 0.3], 2), CurveSeries("100", [1, 2], [0.4, 0.35], 1)]
    path = plot_curves(
        {"landcover": ("mIoU", series), "scene": ("top-1", series[:1])}, tmp_path / "c.png"
    )
    assert path is not None and path.read_bytes().startswith(PNG_MAGIC)
    assert plot_curves({}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()

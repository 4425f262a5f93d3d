"""Figures of the ``evaluate`` stage (s2ssl.evaluation.figures): the image / truth / prediction
strip, on small hand-made fine-tuning run records."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from runkit import (
    PNG_SIGNATURE,
    lc,
    sc,
    write_runs,
)

from s2ssl.bands import BAND_NAMES
from s2ssl.evaluation.figures import strip_png
from s2ssl.synthetic_vocabulary import LANDCOVER_CLASSES

# ---------------------------------------------------------------------------------------- strip


def test_strip_needs_a_prediction_preview(tmp_path: Path) -> None:
    records = [lc("random", 0.1, 0.4), lc("dense", 0.1, 0.5)]
    write_runs(tmp_path, records)
    path = tmp_path / "strip.png"
    assert strip_png("landcover", records, tmp_path, tmp_path / "none", None, 4, path) is None
    assert not path.exists()


def _fake_test_split(
    monkeypatch: pytest.MonkeyPatch, ids: tuple[str, ...], *, scene: bool = False
) -> None:
    """``load_task_data`` answering a test split whose sample ``i`` has truth ``i`` (everywhere)."""
    import torch

    import s2ssl.evaluation.figures

    n = len(ids)
    label = torch.arange(n)
    test = SimpleNamespace(
        ids=ids,
        image=torch.full((n, 1, len(BAND_NAMES), 6, 6), 1000, dtype=torch.int16),
        label=label if scene else label.view(n, 1, 1).expand(n, 6, 6).clone(),
    )
    monkeypatch.setattr(
        s2ssl.evaluation.figures, "load_task_data", lambda *a, **k: SimpleNamespace(test=test)
    )


def test_strip_pairs_each_image_with_its_own_prediction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s2ssl.evaluation.figures as figures

    _fake_test_split(monkeypatch, ("s0", "s1", "s2", "s3", "s4"))
    records = [lc("random", 1.0, 0.4), lc("dense", 1.0, 0.5), lc("dense", 0.1, 0.3)]
    write_runs(tmp_path, records)
    # previews in the finetune layout; "gone" is not (any more) a test sample
    ids = np.array(["s1", "gone", "s3", "s4"])
    for r in records[:2]:
        pred = np.stack([np.full((6, 6), i, np.uint8) for i in (1, 5, 3, 4)])
        np.savez(tmp_path / "landcover" / "runs" / f"{r['key']}.npz", ids=ids, pred=pred)
    drawn: list[Any] = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (drawn.append(fig), save(fig, path))[1])

    path = tmp_path / "figures" / "landcover_strip.png"
    assert strip_png("landcover", records, tmp_path, tmp_path, None, 3, path) == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    # rows: s1 and s3 (of the first 3 preview ids); columns: image, truth, dense, random
    (fig,) = drawn
    grid = np.array(fig.axes[: 2 * 4], dtype=object).reshape(2, 4)
    for row, truth in enumerate((1, 3)):
        shown = [np.asarray(ax.images[0].get_array()) for ax in grid[row][1:]]
        assert [int(a.max()) for a in shown] == [truth] * 3, f"row {row}"


def test_scene_strip_titles_pair_truth_and_guess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s2ssl.evaluation.figures as figures

    _fake_test_split(monkeypatch, ("s0", "s1", "s2"), scene=True)
    records = [sc("random", "linear", 1.0, 0.5), sc("seco", "finetune", 1.0, 0.8)]
    write_runs(tmp_path, records)
    np.savez(
        tmp_path / "scene" / "runs" / f"{records[1]['key']}.npz",
        ids=np.array(["s2", "gone", "s0"]),
        pred=np.array([2, 5, 0], np.uint8),
    )
    drawn: list[Any] = []
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: (drawn.append(fig), save(fig, path))[1])

    path = tmp_path / "scene_strip.png"
    assert strip_png("scene", records, tmp_path, tmp_path, None, 4, path) == path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    titles = [ax.get_title() for ax in drawn[0].axes]
    water, grassland = LANDCOVER_CLASSES[0], LANDCOVER_CLASSES[2]
    assert titles == [f"true {grassland}\nseco: {grassland}", f"true {water}\nseco: {water}"]


def test_strip_without_any_known_test_sample_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_test_split(monkeypatch, ("s0", "s1"))
    records = [lc("random", 1.0, 0.4)]
    write_runs(tmp_path, records)
    np.savez(
        tmp_path / "landcover" / "runs" / f"{records[0]['key']}.npz",
        ids=np.array(["x", "y"]),
        pred=np.zeros((2, 6, 6), np.uint8),
    )
    path = tmp_path / "strip.png"
    assert strip_png("landcover", records, tmp_path, tmp_path, None, 4, path) is None
    assert not path.exists()

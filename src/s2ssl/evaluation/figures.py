"""The ``evaluate`` stage's figures (``reports/evaluate/figures/``): PNGs a person looks at.

Label-fraction curves (:func:`curves_png`), confusion matrices (:func:`confusion_png`), and a
strip of image / truth / prediction per task (:func:`strip_png`), all drawn from the fine-tuning
run records (:mod:`s2ssl.evaluation.records`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2ssl.data.quicklooks import class_legend, true_colour
from s2ssl.evaluation.records import score
from s2ssl.finetune.data import load_task_data
from s2ssl.io import atomic_path
from s2ssl.taskspec import task_spec

__all__ = ["confusion_png", "curves_png", "strip_png"]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def curves_png(task: str, records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Headline metric vs label fraction, one line per init (one panel per protocol, in domain);
    region transfer as separate markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = task_spec(task).headline
    protocols = list(dict.fromkeys(r["protocol"] for r in records))
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.2 * len(protocols), 3.4), squeeze=False)
    for ax, protocol in zip(axes[0], protocols, strict=True):
        for setting, style in (("in_domain", "-o"), ("transfer", "--^")):
            for i, init in enumerate(dict.fromkeys(r["init"] for r in records)):
                pts = sorted(
                    (float(r["fraction"]) * 100, score(r, metric))
                    for r in records
                    if r["init"] == init and r["protocol"] == protocol and r["setting"] == setting
                )
                pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y)]
                if not pts:
                    continue
                xs, ys = zip(*pts, strict=True)
                label = init if setting == "in_domain" else f"{init} (unseen region)"
                ax.plot(
                    xs,
                    ys,
                    style,
                    color=f"C{i}",
                    label=label,
                    alpha=1.0 if setting == "in_domain" else 0.6,
                )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training samples (% of train split)")
        ax.set_ylabel(metric)
        ax.set_title(f"{task} — {protocol}")
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, path)


def confusion_png(task: str, records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Row-normalised test confusion matrices of each init at the largest in-domain fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocol = (
        "finetune" if any(r["protocol"] == "finetune" for r in records) else records[0]["protocol"]
    )
    rows = [r for r in records if r["setting"] == "in_domain" and r["protocol"] == protocol]
    top = max(float(r["fraction"]) for r in rows)
    rows = [r for r in rows if float(r["fraction"]) == top]
    classes = task_spec(task).classes
    fig, axes = plt.subplots(1, len(rows), figsize=(3.3 * len(rows), 3.4), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        cm = np.asarray(r["test"]["confusion"], dtype=np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(f"{r['init']} ({r['fraction_label']} %)", fontsize=9)
        ax.set_xticks(range(len(classes)), [c[:6] for c in classes], rotation=90, fontsize=6)
        ax.set_yticks(range(len(classes)), [c[:6] for c in classes], fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
    axes[0][0].set_ylabel("true", fontsize=7)
    fig.suptitle(f"{task}: test confusion (row-normalised)", fontsize=10)
    return _save(fig, path)


def strip_png(
    task: str,
    records: Sequence[Mapping[str, Any]],
    runs_dir: Path,
    data_dir: Path,
    holdout_region: str | None,
    n: int,
    path: Path,
    *,
    scene_tile: int | None = None,
) -> Path | None:
    """Image / truth / prediction of each init (largest in-domain fraction) on ``n`` test images
    (``scene_tile``: the scene task's tile edge, ``finetune.scene.tile_size``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    protocol = (
        "finetune" if any(r["protocol"] == "finetune" for r in records) else records[0]["protocol"]
    )
    rows = [r for r in records if r["setting"] == "in_domain" and r["protocol"] == protocol]
    if not rows:
        return None
    top = max(float(r["fraction"]) for r in rows)
    rows = [r for r in rows if float(r["fraction"]) == top]
    previews = {}
    for r in rows:
        file = runs_dir / task / "runs" / f"{r['key']}.npz"
        if file.is_file():
            with np.load(file) as z:
                previews[r["init"]] = (list(z["ids"]), z["pred"])
    if not previews:
        return None
    data = load_task_data(task, data_dir, "in_domain", holdout_region, scene_tile=scene_tile)
    test = data.test
    ids = next(iter(previews.values()))[0][:n]
    # (row of the preview, position in the test split) of the preview ids still in the test split
    pairs = [(j, test.ids.index(str(i))) for j, i in enumerate(ids) if str(i) in test.ids]
    if not pairs:
        return None
    spec = task_spec(task)
    classes, colours = spec.classes, spec.colours
    cmap = ListedColormap(colours)
    cols = 2 + len(previews) if not spec.is_scene_level else 1
    fig, axes = plt.subplots(
        len(pairs), cols, figsize=(1.7 * cols + 1.5, 1.7 * len(pairs)), squeeze=False
    )
    for row, (j, p) in enumerate(pairs):
        image = test.image[p].numpy().astype(np.float32) * 1e-4  # [T, C, H, W]
        date = image.shape[0] // 2
        axes[row][0].imshow(true_colour(image[date]))
        if spec.is_scene_level:
            truth = classes[int(test.label[p])]
            guesses = ", ".join(
                f"{init}: {classes[int(pred[j])]}" for init, (_, pred) in previews.items()
            )
            axes[row][0].set_title(f"true {truth}\n{guesses}", fontsize=6)
            continue
        label = test.label[p].numpy()
        axes[row][1].imshow(
            np.ma.masked_equal(label, 255),
            cmap=cmap,
            vmin=0,
            vmax=len(classes) - 1,
            interpolation="nearest",
        )
        for k, (init, (_, pred)) in enumerate(previews.items()):
            axes[row][2 + k].imshow(
                pred[j], cmap=cmap, vmin=0, vmax=len(classes) - 1, interpolation="nearest"
            )
            if row == 0:
                axes[row][2 + k].set_title(init, fontsize=8)
        if row == 0:
            axes[row][0].set_title("image", fontsize=8)
            axes[row][1].set_title("truth", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if not spec.is_scene_level:
        class_legend(axes[0][-1], classes, colours)
    fig.suptitle(f"{task}: test images, {rows[0]['fraction_label']} % labels", fontsize=9)
    return _save(fig, path)

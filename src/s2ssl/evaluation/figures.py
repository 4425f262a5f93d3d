"""The ``evaluate`` stage's figures (``reports/evaluate/figures/``): PNGs a person looks at.

A forest plot of every paired gain with its interval (:func:`forest_png`), per-class gains
(:func:`class_gains_png`), label-fraction curves with every replicate (:func:`curves_png`),
confusion matrices (:func:`confusion_png`, replicate 0), and a strip of image / truth /
prediction per task (:func:`strip_png`, replicate 0), drawn from the fine-tuning run records
(:mod:`s2ssl.evaluation.records`) and the gains (:mod:`s2ssl.evaluation.comparisons`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2ssl.bands import RGB, select_bands
from s2ssl.data.quicklooks import class_legend, rgb_to_display
from s2ssl.evaluation.comparisons import Gain
from s2ssl.evaluation.records import record_classes, score
from s2ssl.finetune.data import load_task_data
from s2ssl.io import atomic_path
from s2ssl.taskspec import task_spec

__all__ = ["class_gains_png", "confusion_png", "curves_png", "forest_png", "strip_png"]

VERDICT_COLOURS = {"holds": "tab:green", "refuted": "tab:red", "inconclusive": "tab:grey"}


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
                by_fraction: dict[float, list[float]] = {}
                for r in records:
                    if r["init"] == init and r["protocol"] == protocol and r["setting"] == setting:
                        y = score(r, metric)
                        if y is not None and math.isfinite(y):
                            by_fraction.setdefault(float(r["fraction"]) * 100, []).append(y)
                if not by_fraction:
                    continue
                xs = sorted(by_fraction)
                label = init if setting == "in_domain" else f"{init} (unseen region)"
                alpha = 1.0 if setting == "in_domain" else 0.6
                ax.plot(
                    xs,
                    [float(np.mean(by_fraction[x])) for x in xs],
                    style,
                    color=f"C{i}",
                    label=label,
                    alpha=alpha,
                )
                for x in xs:  # every replicate, so the spread is visible
                    ys = by_fraction[x]
                    ax.scatter([x] * len(ys), ys, s=8, color=f"C{i}", alpha=0.4 * alpha)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training samples (% of train split)")
        ax.set_ylabel(f"{metric} (line: mean over replicates)")
        ax.set_title(f"{task} — {protocol}")
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, path)


def confusion_png(task: str, records: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Row-normalised test confusion matrices of each init at the largest in-domain fraction
    (``None`` for a multi-label task: its runs have no confusion matrix)."""
    if task_spec(task).is_multilabel:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocol = (
        "finetune" if any(r["protocol"] == "finetune" for r in records) else records[0]["protocol"]
    )
    rows = [
        r
        for r in records
        if r["setting"] == "in_domain"
        and r["protocol"] == protocol
        and int(r.get("replicate", 0)) == 0
    ]
    top = max(float(r["fraction"]) for r in rows)
    rows = [r for r in rows if float(r["fraction"]) == top]
    classes = record_classes(rows).names
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
    fig.suptitle(f"{task}: test confusion (row-normalised, replicate 0)", fontsize=10)
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
    (``scene_tile``: the scene task's tile edge, ``finetune.scene.tile_size``); ``None`` for a
    multi-label task (a label set is not drawn as a class colour)."""
    if task_spec(task).is_multilabel:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    protocol = (
        "finetune" if any(r["protocol"] == "finetune" for r in records) else records[0]["protocol"]
    )
    rows = [
        r
        for r in records
        if r["setting"] == "in_domain"
        and r["protocol"] == protocol
        and int(r.get("replicate", 0)) == 0
    ]
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
    classes, colours = data.class_set.names, data.class_set.colours
    cmap = ListedColormap(colours)
    cols = 2 + len(previews) if not spec.is_scene_level else 1
    fig, axes = plt.subplots(
        len(pairs), cols, figsize=(1.7 * cols + 1.5, 1.7 * len(pairs)), squeeze=False
    )
    for row, (j, p) in enumerate(pairs):
        image = test.image[p].numpy().astype(np.float32) * 1e-4  # [T, C, H, W]
        date = image.shape[0] // 2
        axes[row][0].imshow(rgb_to_display(select_bands(image[date], data.bands, RGB, axis=0)))
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


def forest_png(task: str, task_gains: Sequence[Gain], path: Path) -> Path | None:
    """Every paired gain of ``task`` over random init with its interval, one row per init ×
    setting × protocol × fraction (× pixel part), coloured by what the interval says."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [g for g in task_gains if math.isfinite(g.estimate.value)]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.0, 0.32 * len(rows) + 1.4))
    for y, g in enumerate(rows):
        e = g.estimate
        lo = e.lo if math.isfinite(e.lo) else e.value
        hi = e.hi if math.isfinite(e.hi) else e.value
        side = "holds" if e.lo > 0 else "refuted" if e.hi < 0 else "inconclusive"
        colour = VERDICT_COLOURS[side]
        ax.plot([lo * 100, hi * 100], [y, y], "-", color=colour, lw=2)
        ax.plot([e.value * 100], [y], "o", color=colour)
        ax.scatter([v * 100 for v in e.per_replicate], [y] * len(e.per_replicate), s=8,
                   color="black", alpha=0.5, zorder=3)  # fmt: skip
    ax.axvline(0.0, color="black", lw=0.8)
    part = {True: "", False: " [{}]"}
    ax.set_yticks(
        range(len(rows)),
        [
            f"{g.arm.init} · {g.arm.setting} · {g.arm.protocol} · "
            f"{g.arm.fraction * 100:.6g} %" + part[g.part == "all"].format(g.part)
            for g in rows
        ],
        fontsize=7,
    )
    ax.invert_yaxis()
    conf = rows[0].estimate.confidence
    ax.set_xlabel(
        f"gain over random init ({rows[0].metric}, points; bar: {conf:.0%} interval, "
        "dots: replicates)",
        fontsize=8,
    )
    ax.set_title(f"{task}: what each init buys (green: above 0, red: below, grey: unclear)",
                 fontsize=9)  # fmt: skip
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def class_gains_png(
    task: str, rows: Sequence[tuple[str, np.ndarray]], classes: Sequence[str], path: Path
) -> Path | None:
    """Per-class gains over random init (IoU, recall for scenes; mean over replicates) as a
    heat map: one row per ``(label, gains)``, one column per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    grid = np.vstack([g for _, g in rows]) * 100
    finite = grid[np.isfinite(grid)]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    fig, ax = plt.subplots(figsize=(0.6 * len(classes) + 3.0, 0.3 * len(rows) + 1.6))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=-limit, vmax=limit,
                      aspect="auto")  # fmt: skip
    for (i, j), value in np.ndenumerate(grid):
        if math.isfinite(value):
            ax.text(j, i, f"{value:+.0f}", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(classes)), [c[:10] for c in classes], rotation=60, fontsize=7)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    spec = task_spec(task)
    kind = "AP" if spec.is_multilabel else "recall" if spec.is_scene_level else "IoU"
    fig.colorbar(image, ax=ax, label=f"{kind} gain (points)")
    ax.set_title(f"{task}: per-class gain over random init (mean over replicates)", fontsize=9)
    return _save(fig, path)

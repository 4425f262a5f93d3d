"""Quicklook PNGs of a fetched dataset, for a person to check what was generated or downloaded.

* ``seasons.png``: true-colour composites of one location per region across its acquisition dates,
  with clouds outlined (red) and shadows (blue);
* ``landcover.png``: true colour next to the land-cover mask, two patches per region;
* ``croptype.png``: mid-season true colour, crop types and parcels (margins in black);
* ``ndvi_curves.png``: mean NDVI of each crop-type class across the season per hemisphere, with
  the configured peak of the synthetic world's crops marked (dotted).

Classes and colours are the dataset's own (attrs ``classes``); bands are found by name in the
dataset's ``bands`` (true colour: B04, B03, B02, else the first band in grey; NDVI: B08 and B04,
else a figure saying they are missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from s2ssl import bands
from s2ssl.bands import (
    BAND_NAMES,
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_SHADOW,
    RGB,
    band_positions,
    dn_to_reflectance,
    missing_bands,
)
from s2ssl.classes import LABEL_IGNORE
from s2ssl.data.sources.spectra import CROP_TABLE
from s2ssl.data.store import ShardedDataset
from s2ssl.io import atomic_path

_RGB_GAIN: Final[float] = 3.2


def rgb_to_display(rgb: np.ndarray) -> np.ndarray:
    """``[3, H, W]`` red, green, blue reflectance -> ``[H, W, 3]`` display RGB in [0, 1]."""
    return np.clip(np.asarray(rgb).transpose(1, 2, 0) * _RGB_GAIN, 0.0, 1.0) ** (1 / 1.3)


def true_colour(reflectance: np.ndarray, bands: Sequence[str] = BAND_NAMES) -> np.ndarray:
    """``[C, H, W]`` reflectance holding ``bands`` -> ``[H, W, 3]`` display RGB (B04, B03, B02
    found by name; ``ValueError`` naming them when absent)."""
    return rgb_to_display(reflectance[band_positions(bands, RGB, what="the true-colour input")])


def display(reflectance: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """True colour when ``bands`` hold B04, B03 and B02, else the first band in grey."""
    if not missing_bands(bands, RGB):
        return true_colour(reflectance, bands)
    return rgb_to_display(np.repeat(reflectance[:1], 3, axis=0))


def has_ndvi_bands(bands: Sequence[str]) -> bool:
    """Whether ``bands`` hold what NDVI needs (B08 and B04)."""
    return not missing_bands(bands, ("B08", "B04"))


def _reflectance(ds: ShardedDataset, i: int) -> np.ndarray:
    offsets = np.asarray(ds.index["dn_offset"].iloc[i])[:, None, None, None]
    return dn_to_reflectance(np.asarray(ds.read("image", i)), offsets)


def _pick(ds: ShardedDataset, per_region: int) -> list[int]:
    picks: list[int] = []
    for _, rows in ds.index.groupby("region", sort=False):
        picks.extend(rows.index[:per_region].tolist())
    return picks


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def class_legend(ax: object, names: tuple[str, ...], colours: tuple[str, ...]) -> None:
    """A legend of ``names`` in ``colours`` to the right of matplotlib axes ``ax``."""
    from matplotlib.patches import Patch

    handles = [
        Patch(color=c, label=n.replace("_", " ")) for n, c in zip(names, colours, strict=True)
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)  # type: ignore[attr-defined]


def seasons_png(ds: ShardedDataset, path: Path) -> Path:
    """One location per region (rows) across its dates (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = _pick(ds, 1)
    t = ds.specs["image"].shape[0]
    fig, axes = plt.subplots(len(picks), t, figsize=(2.2 * t, 2.3 * len(picks)), squeeze=False)
    for r, i in enumerate(picks):
        refl = _reflectance(ds, i)
        mask = np.asarray(ds.read("mask", i))
        row = ds.index.iloc[i]
        for k in range(t):
            ax = axes[r, k]
            ax.imshow(display(refl[k], ds.bands))
            for code, colour in ((MASK_CLOUD, "red"), (MASK_SHADOW, "deepskyblue")):
                if (mask[k] == code).any():
                    ax.contour(mask[k] == code, levels=[0.5], colors=colour, linewidths=0.6)
            ax.set_title(f"{row['dates'][k]}  cloud {row['cloud_fraction'][k]:.0%}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{row['region']}\n({row['hemisphere']})", fontsize=8)
    fig.suptitle(f"{ds.meta.get('name', '')}: seasonal acquisitions per region", fontsize=10)
    return _save(fig, path)


def landcover_png(ds: ShardedDataset, path: Path) -> Path:
    """True colour and land-cover mask, two patches per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    picks = _pick(ds, 2)
    classes = ds.classes("landcover") if "landcover" in ds.array_names else None
    n_rows = (len(picks) + 1) // 2
    fig, axes = plt.subplots(n_rows, 4, figsize=(9.5, 2.4 * n_rows), squeeze=False)
    for j, i in enumerate(picks):
        row = ds.index.iloc[i]
        ax_rgb, ax_lc = axes[j // 2, 2 * (j % 2)], axes[j // 2, 2 * (j % 2) + 1]
        ax_rgb.imshow(display(_reflectance(ds, i)[0], ds.bands))
        ax_rgb.set_title(f"{row['region']} {row['dates'][0]}", fontsize=7)
        if classes is not None:
            ax_lc.imshow(
                np.ma.masked_equal(np.asarray(ds.read("landcover", i)), LABEL_IGNORE),
                cmap=ListedColormap(classes.colours),
                vmin=0,
                vmax=len(classes) - 1,
                interpolation="nearest",
            )
            ax_lc.set_title("land cover", fontsize=7)
        else:  # an unlabelled real source: show the quality mask instead
            ax_lc.imshow(np.asarray(ds.read("mask", i))[0], cmap="gray_r", vmin=0, vmax=3)
            ax_lc.set_title("no labels: quality mask", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if classes is not None:
        class_legend(axes[0, -1], classes.names, classes.colours)
    return _save(fig, path)


def croptype_png(ds: ShardedDataset, path: Path) -> Path:
    """Mid-season true colour, crop-type map and parcels, one patch per region."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    picks = _pick(ds, 1)
    classes = ds.classes("croptype") if "croptype" in ds.array_names else None
    fig, axes = plt.subplots(len(picks), 3, figsize=(8.5, 2.6 * len(picks)), squeeze=False)
    rng = np.random.default_rng(0)
    for r, i in enumerate(picks):
        row = ds.index.iloc[i]
        refl = _reflectance(ds, i)
        mask = np.asarray(ds.read("mask", i))
        n_real = int(row["n_dates"]) if "n_dates" in row.index else len(mask)
        clear = (mask[:n_real] == MASK_CLEAR).mean(axis=(1, 2))
        lo = max(n_real // 2 - 3, 0)
        k = int(np.argmax(clear[lo : n_real // 2 + 3])) + lo
        axes[r, 0].imshow(display(refl[k], ds.bands))
        axes[r, 0].set_title(f"{row['region']} {row['dates'][k]}", fontsize=7)
        if classes is None:  # an unlabelled real source
            if has_ndvi_bands(ds.bands):
                ndvi = bands.ndvi(refl[k], band_axis=0, bands=ds.bands)
                axes[r, 1].imshow(ndvi, cmap="YlGn", vmin=-0.2, vmax=1.0)
            axes[r, 1].set_title("NDVI (no labels)", fontsize=7)
            axes[r, 2].imshow(mask[k], cmap="gray_r", vmin=0, vmax=3)
            axes[r, 2].set_title("quality mask", fontsize=7)
            continue
        axes[r, 1].imshow(
            np.ma.masked_equal(np.asarray(ds.read("croptype", i)), LABEL_IGNORE),
            cmap=ListedColormap(classes.colours),
            vmin=0,
            vmax=len(classes) - 1,
            interpolation="nearest",
        )
        axes[r, 1].set_title("crop type", fontsize=7)
        parcel = np.asarray(ds.read("parcel", i))
        colours = np.vstack([[0, 0, 0], rng.uniform(0.25, 1.0, (int(parcel.max()) + 1, 3))])
        axes[r, 2].imshow(colours[parcel], interpolation="nearest")
        axes[r, 2].set_title(f"{int(parcel.max())} parcels (black: margins, non-crop)", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if classes is not None:
        class_legend(axes[0, 1], classes.names, classes.colours)
    return _save(fig, path)


def _short(name: str, width: int = 28) -> str:
    """``name`` cut to ``width`` characters for a small panel title."""
    return name if len(name) <= width else name[: width - 1].rstrip() + "…"


def scenes_png(ds: ShardedDataset, path: Path, per_class: int = 4, max_rows: int = 10) -> Path:
    """True colour of labelled scenes with their class: ``per_class`` patches of each class (one
    class per row) for a single-label ``scene`` array, else the first patches with the names of
    their label set (``multilabel``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = ds.index
    if "scene" in ds.array_names:
        names = ds.classes("scene").names
        labels = np.asarray(ds.read_many("scene", np.arange(len(ds))), np.int64)
        rows = [
            (names[c], np.flatnonzero(labels == c)[:per_class].tolist())
            for c in range(len(names))
            if (labels == c).any()
        ][:max_rows]
        titles = {
            i: f"{_short(name)}\n{_short(str(index['sample_id'].iloc[i]))}"
            for name, ids in rows
            for i in ids
        }
        grid = [ids for _, ids in rows]
    else:
        names = ds.classes("multilabel").names
        n = min(len(ds), per_class * max_rows)
        sets = np.asarray(ds.read_many("multilabel", np.arange(n)))
        titles = {
            i: "\n".join(_short(names[k]) for k in np.flatnonzero(sets[i])[:3]) for i in range(n)
        }
        grid = [list(range(r, min(r + per_class, n))) for r in range(0, n, per_class)]
    n_rows = max(len(grid), 1)
    fig, axes = plt.subplots(
        n_rows, per_class, figsize=(2.1 * per_class, 2.3 * n_rows), squeeze=False
    )
    for r, ids in enumerate(grid):
        for c, i in enumerate(ids):
            axes[r, c].imshow(display(_reflectance(ds, i)[0], ds.bands))
            axes[r, c].set_title(titles[i], fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.axis("off")
    return _save(fig, path)


def crop_ndvi_table(ds: ShardedDataset) -> dict[str, np.ndarray]:
    """Per-sample, per-date mean NDVI of each crop-type class (the dataset's classes) over its
    clear pixels.

    Returns arrays ``doy [n, T]``, ``ndvi [n, T, n_classes]`` (NaN where the class is absent or
    cloudy) and ``hemisphere [n]`` — the data behind ``ndvi_curves.png``.
    """
    n_crops = len(ds.classes("croptype"))
    ndvi_rows, doys = [], []
    for rows, images in ds.iter_shards("image"):
        crops = np.asarray(ds.read_many("croptype", rows.index.to_numpy()))
        masks = np.asarray(ds.read_many("mask", rows.index.to_numpy()))
        offsets = np.stack(rows["dn_offset"].map(np.asarray).to_list()).astype(np.float32)
        refl = dn_to_reflectance(np.asarray(images), offsets[:, :, None, None, None])
        ndvi = bands.ndvi(refl, band_axis=2, bands=ds.bands)
        clear = masks == MASK_CLEAR
        out = np.full((*ndvi.shape[:2], n_crops), np.nan, np.float32)
        for c in range(n_crops):
            sel = (crops == c)[:, None] & clear
            count = sel.sum(axis=(-2, -1))
            total = np.where(sel, ndvi, 0.0).sum(axis=(-2, -1))
            out[:, :, c] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        ndvi_rows.append(out)
        doys.append(np.stack(rows["doy"].map(np.asarray).to_list()))
    return {
        "doy": np.concatenate(doys),
        "ndvi": np.concatenate(ndvi_rows),
        "hemisphere": ds.index["hemisphere"].to_numpy(),
    }


def ndvi_curves_png(ds: ShardedDataset, path: Path) -> Path:
    """Mean NDVI per crop over the day of year, one panel per hemisphere."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not has_ndvi_bands(ds.bands):
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no NDVI: the dataset holds {', '.join(ds.bands)} (needs B04, B08)",
                ha="center", va="center", fontsize=9)  # fmt: skip
        return _save(fig, path)
    if "croptype" not in ds.array_names:
        return _ndvi_unlabelled_png(ds, path)
    table = crop_ndvi_table(ds)
    classes = ds.classes("croptype")
    peaks = {crop.name: crop.peak for crop in CROP_TABLE}
    hemispheres = [h for h in ("north", "south") if (table["hemisphere"] == h).any()]
    fig, axes = plt.subplots(
        1, len(hemispheres), figsize=(6.5 * len(hemispheres), 4), squeeze=False
    )
    bins = np.arange(0, 381, 15)
    for ax, hemi in zip(axes[0], hemispheres, strict=True):
        sel = table["hemisphere"] == hemi
        doy = table["doy"][sel].ravel()
        shift = 182 if hemi == "south" else 0
        for c, (name, colour) in enumerate(zip(classes.names, classes.colours, strict=True)):
            values = table["ndvi"][sel][:, :, c].ravel()
            ok = np.isfinite(values)
            if ok.sum() < 5:
                continue
            which = np.digitize(doy[ok], bins)
            centres = [bins[b - 1] + 7.5 for b in np.unique(which)]
            means = [np.nanmean(values[ok][which == b]) for b in np.unique(which)]
            ax.plot(centres, means, "-o", ms=3, color=colour, label=name.replace("_", " "))
            if name in peaks:
                ax.axvline((peaks[name] + shift) % 365, color=colour, ls=":", lw=1)
        ax.set_title(f"{hemi}ern hemisphere (dotted: configured peak)", fontsize=9)
        ax.set_xlabel("day of year")
        ax.set_ylabel("mean NDVI of clear parcel pixels")
        ax.set_xlim(0, 366)
        ax.set_ylim(-0.1, 1.0)
        ax.grid(alpha=0.3)
    if axes[0, -1].get_legend_handles_labels()[0]:
        axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, path)


def _ndvi_unlabelled_png(ds: ShardedDataset, path: Path) -> Path:
    """Without crop labels: mean NDVI of the clear pixels of each sample and date over the
    day of year, one panel per hemisphere."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doys, means, hemis = [], [], []
    for rows, images in ds.iter_shards("image"):
        masks = np.asarray(ds.read_many("mask", rows.index.to_numpy()))
        offsets = np.stack(rows["dn_offset"].map(np.asarray).to_list()).astype(np.float32)
        ndvi = bands.ndvi(
            dn_to_reflectance(np.asarray(images), offsets[:, :, None, None, None]),
            band_axis=2,
            bands=ds.bands,
        )
        clear = masks == MASK_CLEAR
        count = clear.sum(axis=(-2, -1))
        total = np.where(clear, ndvi, 0.0).sum(axis=(-2, -1))
        means.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
        doys.append(np.stack(rows["doy"].map(np.asarray).to_list()))
        hemis.append(rows["hemisphere"].to_numpy())
    doy, mean, hemi = np.concatenate(doys), np.concatenate(means), np.concatenate(hemis)
    names = [h for h in ("north", "south") if (hemi == h).any()]
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sel = hemi == name
        ax.plot(doy[sel].ravel(), mean[sel].ravel(), ".", ms=4, alpha=0.6)
        ax.set_title(
            f"{name}ern hemisphere: mean NDVI of clear pixels (no crop labels)", fontsize=9
        )
        ax.set_xlabel("day of year")
        ax.set_xlim(0, 366)
        ax.set_ylim(-0.1, 1.0)
        ax.grid(alpha=0.3)
    return _save(fig, path)

"""The products of a prediction: class maps and probability rasters as Cloud-Optimized GeoTIFFs,
class areas in hectares, and a PNG quicklook with a legend.

**Class map** (``classes.tif``): uint8, one band, class id per pixel, :data:`NODATA_CLASS` (255)
where the input was nodata or cloud-masked; the colour table carries the class colours (those of
the model's :class:`~s2ssl.classes.ClassSet`; nodata transparent); the class names are embedded
as the dataset tag ``CLASS_NAMES`` (a JSON list, index = class id) and the band tags
``CLASS_<id>``; the band description is ``class``. Overviews use nearest resampling.

**Probabilities** (``probabilities.tif``, optional): uint8, one band per class (band description =
class name), ``round(p × 254)`` with 255 as nodata; the GDAL band scale ``1/254`` turns them back
into probabilities (``rasterio``: ``read(masked=True) * scales``).

Both are written block by block into tiled intermediate GeoTIFFs, then copied by GDAL's COG
driver (deflate, 512-px tiles, overviews) to a temporary name and renamed into place
(:func:`s2ssl.io.atomic_path`), so a failed run never leaves a half-written map.

**Areas**: pixel area from the geotransform (``|det|`` × the CRS's linear unit², i.e. map area)
in a projected CRS; in a geographic CRS the exact ellipsoidal area of each row's cells (north-up
grids only; rotated geographic grids are refused).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.windows import Window

from s2ssl.classes import LABEL_IGNORE
from s2ssl.data.quicklooks import rgb_to_display
from s2ssl.io import atomic_path

__all__ = [
    "CLASS_NAMES_TAG",
    "NODATA_CLASS",
    "PROBA_NODATA",
    "PROBA_SCALE",
    "MapWriter",
    "QuicklookPanel",
    "areas_summary",
    "pixel_areas_m2",
    "read_class_names",
    "read_decimated",
    "render_quicklook",
    "to_cog",
]

NODATA_CLASS: Final[int] = LABEL_IGNORE
"""Class-map value of nodata / cloud-masked pixels (255)."""

PROBA_SCALE: Final[int] = 254
"""Probability p is stored as ``round(p × 254)``."""

PROBA_NODATA: Final[int] = 255
"""Probability-raster value of nodata pixels."""

CLASS_NAMES_TAG: Final[str] = "CLASS_NAMES"
"""Dataset tag holding the class names as a JSON list (index = class id)."""

_NODATA_GREY: Final[tuple[float, float, float, float]] = (0.85, 0.85, 0.85, 1.0)


# --------------------------------------------------------------------------------------- areas
def pixel_areas_m2(transform: Affine, crs: CRS | None, height: int) -> np.ndarray:
    """The area in m² of one pixel of each of the ``height`` rows (float64, shape ``(height,)``).

    Projected CRS: ``|det(transform)|`` × (metres per CRS unit)², the same for every row.
    Geographic CRS: the ellipsoidal area of a ``|a|``-degree × ``|e|``-degree cell at each row.

    Raises:
        ValueError: no CRS, a rotated or sheared geographic grid, latitudes beyond ±90°, or a CRS
            without a linear unit.
    """
    if crs is None:
        raise ValueError("cannot compute areas without a CRS")
    if crs.is_geographic:
        if transform.b != 0 or transform.d != 0:
            raise ValueError(
                "cannot compute areas of a rotated/sheared geographic grid "
                f"{tuple(transform)[:6]}; reproject the input to a projected CRS (e.g. its UTM "
                "zone) first"
            )
        import pyproj

        geod = pyproj.CRS.from_user_input(crs.to_wkt()).get_geod()
        if geod is None:
            raise ValueError(f"cannot compute areas: CRS {crs} has no ellipsoid")
        lat = np.radians(transform.f + transform.e * np.arange(height + 1, dtype=np.float64))
        if np.abs(lat).max() > np.pi / 2 + 1e-9:
            raise ValueError(
                f"the raster reaches latitudes beyond ±90° (transform {tuple(transform)[:6]}); "
                "check its georeference"
            )
        s = np.sin(np.clip(lat, -np.pi / 2, np.pi / 2))
        e2 = float(geod.es)
        if e2 > 0:
            e = np.sqrt(e2)
            q = s / (1 - e2 * s**2) + np.log((1 + e * s) / (1 - e * s)) / (2 * e)
        else:
            q = 2 * s
        dlon = np.radians(abs(transform.a))
        return np.abs(np.diff(q)) * float(geod.b) ** 2 * dlon / 2
    try:
        _, factor = crs.linear_units_factor
    except CRSError:
        raise ValueError(
            f"cannot compute areas in CRS {crs}: it has no linear unit; reproject the input to a "
            "projected CRS (e.g. its UTM zone)"
        ) from None
    return np.full(height, abs(transform.determinant) * float(factor) ** 2, np.float64)


def areas_summary(
    area_m2: np.ndarray, pixels: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Class areas as JSON-ready numbers; ``area_m2`` / ``pixels`` have one entry per class then
    one for nodata. Fractions are of the valid (not nodata) area."""
    k = len(class_names)
    valid = float(area_m2[:k].sum())
    return {
        "class_area_ha": {n: round(float(area_m2[i]) / 1e4, 6) for i, n in enumerate(class_names)},
        "class_pixels": {n: int(pixels[i]) for i, n in enumerate(class_names)},
        "class_fraction": {
            n: round(float(area_m2[i]) / valid, 6) if valid > 0 else 0.0
            for i, n in enumerate(class_names)
        },
        "nodata_area_ha": round(float(area_m2[k]) / 1e4, 6),
        "nodata_pixels": int(pixels[k]),
        "valid_area_ha": round(valid / 1e4, 6),
        "total_area_ha": round(float(area_m2.sum()) / 1e4, 6),
    }


# --------------------------------------------------------------------------------------- rasters
def to_cog(src: str | Path, dst: str | Path, *, resampling: str = "NEAREST") -> Path:
    """Copy the raster ``src`` to a Cloud-Optimized GeoTIFF at ``dst`` (atomically): deflate,
    512-px tiles, overviews computed with ``resampling``; colour table, tags, band descriptions,
    scales and nodata are kept."""
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), atomic_path(dst) as tmp:
        rasterio.shutil.copy(
            str(src),
            str(tmp),
            driver="COG",
            COMPRESS="DEFLATE",
            BLOCKSIZE=512,
            OVERVIEWS="AUTO",
            RESAMPLING=resampling,
            BIGTIFF="IF_SAFER",
        )
    return Path(dst)


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """The class names embedded in a class map written by :class:`MapWriter`.

    Raises:
        ValueError: the raster carries no (valid) ``CLASS_NAMES`` tag.
    """
    with rasterio.open(path) as ds:
        raw = ds.tags().get(CLASS_NAMES_TAG)
    try:
        names = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{path} has no valid {CLASS_NAMES_TAG} tag (a JSON list of class names); it was not "
            "written by s2ssl predict"
        )
    return tuple(names)


def read_decimated(path: str | Path, max_size: int = 1024, band: int = 1) -> np.ndarray:
    """Band ``band`` of a raster decimated (nearest, from overviews when present) to at most
    ``max_size`` pixels on its long side."""
    with rasterio.open(path) as ds:
        f = max(1.0, max(ds.height, ds.width) / max_size)
        shape = (max(1, round(ds.height / f)), max(1, round(ds.width / f)))
        return ds.read(band, out_shape=shape, resampling=Resampling.nearest)


def _hex_to_rgba(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


class MapWriter:
    """Receives blended probabilities block by block (a :class:`~s2ssl.inference.tiling.TileSink`)
    and writes the class map, optional probabilities and class areas.

    Args:
        work_dir: an existing directory for the intermediate tiled GeoTIFFs.
        height, width, crs, transform: the output grid (that of the input).
        class_names: the classes (index = class id).
        colours: one ``#rrggbb`` colour per class.
        probabilities: also write the per-class probability raster.
        tags: extra dataset tags for both rasters (e.g. the model and the input).

    Raises:
        ValueError: areas cannot be computed in this CRS (see :func:`pixel_areas_m2`), or the
            colours do not match the classes.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        height: int,
        width: int,
        crs: CRS,
        transform: Affine,
        class_names: Sequence[str],
        colours: Sequence[str],
        probabilities: bool = False,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.class_names: tuple[str, ...] = tuple(class_names)
        if len(colours) != len(self.class_names):
            raise ValueError(
                f"{len(colours)} colours for {len(self.class_names)} classes; give one per class"
            )
        k = len(self.class_names)
        self.row_area_m2: np.ndarray = pixel_areas_m2(transform, crs, height)
        self.area_m2: np.ndarray = np.zeros(k + 1, np.float64)
        self.pixels: np.ndarray = np.zeros(k + 1, np.int64)
        self._work = Path(work_dir)
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "dtype": "uint8",
            "crs": crs,
            "transform": transform,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        common = {str(a): str(b) for a, b in (tags or {}).items()}
        common[CLASS_NAMES_TAG] = json.dumps(list(self.class_names))
        self._classes = rasterio.open(
            self._work / "classes.tif", "w", count=1, nodata=NODATA_CLASS, **profile
        )
        cmap = {i: _hex_to_rgba(c) for i, c in enumerate(colours)}
        cmap[NODATA_CLASS] = (0, 0, 0, 0)
        self._classes.write_colormap(1, cmap)
        self._classes.update_tags(NODATA_CLASS=str(NODATA_CLASS), **common)
        self._classes.update_tags(1, **{f"CLASS_{i}": n for i, n in enumerate(self.class_names)})
        self._classes.set_band_description(1, "class")
        self._proba = None
        if probabilities:
            self._proba = rasterio.open(
                self._work / "probabilities.tif", "w", count=k, nodata=PROBA_NODATA, **profile
            )
            self._proba.scales = (1.0 / PROBA_SCALE,) * k
            self._proba.descriptions = self.class_names
            self._proba.update_tags(PROBA_SCALE=str(PROBA_SCALE), **common)

    def write(self, window: Window, proba: np.ndarray, valid: np.ndarray) -> None:
        """Write the classes (argmax) and probabilities of ``window``; count the areas."""
        k = len(self.class_names)
        cls = np.argmax(proba, axis=0).astype(np.uint8)
        cls[~valid] = NODATA_CLASS
        self._classes.write(cls, 1, window=window)
        if self._proba is not None:
            q = np.rint(np.clip(proba, 0.0, 1.0) * PROBA_SCALE).astype(np.uint8)
            q[:, ~valid] = PROBA_NODATA
            self._proba.write(q, window=window)
        h = cls.shape[0]
        idx = np.where(valid, cls, k).astype(np.int64)
        counts = np.bincount(
            (np.arange(h)[:, None] * (k + 1) + idx).ravel(), minlength=h * (k + 1)
        ).reshape(h, k + 1)
        rows = self.row_area_m2[int(window.row_off) : int(window.row_off) + h]
        self.area_m2 += rows @ counts
        self.pixels += counts.sum(axis=0)

    def close(self) -> None:
        """Close the intermediate rasters (idempotent)."""
        if not self._classes.closed:
            self._classes.close()
        if self._proba is not None and not self._proba.closed:
            self._proba.close()

    def finish(self, classes_path: Path, probabilities_path: Path | None = None) -> None:
        """Close the intermediates and copy them to COGs at the given paths (atomically)."""
        self.close()
        to_cog(self._work / "classes.tif", classes_path, resampling="NEAREST")
        if self._proba is not None:
            if probabilities_path is None:
                raise ValueError("probabilities were written: give probabilities_path")
            to_cog(self._work / "probabilities.tif", probabilities_path, resampling="AVERAGE")

    def summary(self) -> dict[str, Any]:
        """The class areas so far (:func:`areas_summary`)."""
        return areas_summary(self.area_m2, self.pixels, self.class_names)

    def __enter__(self) -> MapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ------------------------------------------------------------------------------------ quicklook
@dataclass(frozen=True, slots=True)
class QuicklookPanel:
    """One row of a quicklook: a label, the class map and optionally the input's true colour."""

    label: str
    classes: np.ndarray
    """``(h, w)`` uint8 class ids, :data:`NODATA_CLASS` for nodata."""
    rgb: np.ndarray | None = None
    """``(3, h', w')`` red, green, blue reflectance, or None."""


def render_quicklook(
    path: str | Path,
    panels: Sequence[QuicklookPanel],
    class_names: Sequence[str],
    colours: Sequence[str],
    *,
    title: str = "",
    fractions: Mapping[str, float] | None = None,
) -> Path:
    """A PNG with one row per panel (true colour when given, then the class map) and a legend
    of the classes (with their area fractions when given) and nodata; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    if not panels:
        raise ValueError("a quicklook needs at least one panel")
    lut = np.tile(np.array(_NODATA_GREY, np.float32), (256, 1))
    for i, c in enumerate(colours):
        lut[i] = to_rgba(c)
    n_cols = 2 if any(p.rgb is not None for p in panels) else 1
    h, w = panels[0].classes.shape
    aspect = h / max(w, 1)
    cell = 4.0 if len(panels) == 1 else 2.4
    fig, axes = plt.subplots(
        len(panels),
        n_cols,
        figsize=(cell * n_cols, max(cell * aspect, 1.2) * len(panels) + 0.6),
        squeeze=False,
    )
    for r, panel in enumerate(panels):
        if n_cols == 2:
            ax = axes[r, 0]
            if panel.rgb is not None:
                ax.imshow(rgb_to_display(panel.rgb), interpolation="nearest")
            ax.set_title(f"{panel.label} true colour" if panel.label else "true colour", fontsize=8)
        ax = axes[r, n_cols - 1]
        ax.imshow(lut[panel.classes], interpolation="nearest")
        ax.set_title(f"{panel.label} classes" if panel.label else "classes", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    handles = []
    for name, colour in zip(class_names, colours, strict=True):
        label = name.replace("_", " ")
        if fractions is not None and name in fractions:
            label += f" ({100 * fractions[name]:.1f} %)"
        handles.append(Patch(color=colour, label=label))
    handles.append(Patch(color=_NODATA_GREY, label="no data / masked"))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    legend_ax = axes[min(len(panels) - 1, 1) if len(panels) > 2 else 0, n_cols - 1]
    legend_ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.03, 0.5), fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)

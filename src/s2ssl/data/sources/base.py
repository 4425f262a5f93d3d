"""What every imagery source shares: the source interface, skip records, array shapes, dataset
attributes, quality-mask codes and label rasters resampled onto a patch grid.

A source yields :class:`~s2ssl.data.sources.types.Chunk` objects (arrays + index rows) with
the same arrays, index columns and attrs as the synthetic world for the same dataset kind, so
``validate`` and ``pretrain`` take any source unchanged: ``image`` ``[T, B, H, W]`` uint16 DN
holding exactly the bands named in attrs ``bands`` (Sentinel-2 order, never a filled band),
``mask`` ``[T, H, W]`` uint8 (clear / cloud / shadow / snow / 255 no data) and, when labelled,
``landcover`` / ``croptype`` / ``parcel`` maps whose classes the attrs declare (``classes``:
label array -> :meth:`~s2ssl.classes.ClassSet.to_json`).
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from s2ssl.bands import (
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_NODATA,
    MASK_SHADOW,
    MASK_SNOW,
)
from s2ssl.classes import LABEL_IGNORE, ClassSet, LabelClass
from s2ssl.data.sources.types import Chunk, DatasetName
from s2ssl.progress import ProgressFactory

__all__ = ["Chunk", "ChunkBuffer", "DatasetName", "Skip", "Source"]

INDEX_COLUMNS: Final[tuple[str, ...]] = (
    "sample_id",
    "dataset",
    "region",
    "hemisphere",
    "location",
    "lon",
    "lat",
    "crs",
    "transform",
    "dates",
    "doy",
    "processing_baseline",
    "dn_offset",
    "harmonize_values",
    "split",
    "source",
    "cloud_fraction",
)
"""The index columns of a synthetic dataset, in its order; real sources add provenance after."""

# Sen2Cor scene classification (SCL) -> s2ssl mask codes.
SCL_TO_MASK: Final[dict[int, int]] = {
    0: MASK_NODATA,  # no data
    1: MASK_NODATA,  # saturated or defective
    2: MASK_CLEAR,  # dark area (topographic shadow)
    3: MASK_SHADOW,  # cloud shadow
    4: MASK_CLEAR,  # vegetation
    5: MASK_CLEAR,  # not vegetated
    6: MASK_CLEAR,  # water
    7: MASK_CLEAR,  # unclassified
    8: MASK_CLOUD,  # cloud, medium probability
    9: MASK_CLOUD,  # cloud, high probability
    10: MASK_CLOUD,  # thin cirrus
    11: MASK_SNOW,  # snow or ice
}
# Sentinel Hub CLM (s2cloudless) -> s2ssl mask codes.
CLM_TO_MASK: Final[dict[int, int]] = {0: MASK_CLEAR, 1: MASK_CLOUD, 255: MASK_NODATA}

MASK_CODES: Final[dict[str, int]] = {
    "clear": MASK_CLEAR,
    "cloud": MASK_CLOUD,
    "shadow": MASK_SHADOW,
    "snow": MASK_SNOW,
}


@dataclass(frozen=True)
class Skip:
    """Something that was not imported, and why (reported by name, never fatal)."""

    dataset: str
    item: str
    """A location id, scene or file path."""
    reason: str
    """A short category (``empty window``, ``wrong band count``, ...), counted in reports."""
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {
            "dataset": self.dataset,
            "item": self.item,
            "reason": self.reason,
            "detail": self.detail,
        }


class ChunkBuffer:
    """Samples (their arrays and index row) gathered into :class:`Chunk` objects of ``size``
    samples, so a source's memory stays bounded."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a chunk holds at least one sample, got size {size}")
        self.size = size
        self._arrays: dict[str, list[np.ndarray]] = {}
        self._rows: list[dict[str, object]] = []

    def add(self, arrays: Mapping[str, np.ndarray], row: dict[str, object]) -> Chunk | None:
        """Add one sample; the full chunk when it reaches ``size`` samples, else None."""
        for name, value in arrays.items():
            self._arrays.setdefault(name, []).append(value)
        self._rows.append(row)
        return self.flush() if len(self._rows) == self.size else None

    def flush(self) -> Chunk | None:
        """The samples gathered so far as a chunk (None when there are none); empties it."""
        if not self._rows:
            return None
        chunk = Chunk(
            {name: np.stack(values) for name, values in self._arrays.items()},
            pd.DataFrame(self._rows),
        )
        self._arrays, self._rows = {}, []
        return chunk


class Source(abc.ABC):
    """An imagery source for the ``fetch`` stage.

    :meth:`chunks` yields a dataset's samples; whatever it could not import is appended to
    :attr:`skipped`, and :attr:`report` collects per-dataset facts (requests, costs) for the
    stage's reports.
    """

    kind: str = "abstract"

    def __init__(self) -> None:
        self.skipped: list[Skip] = []
        self.report: dict[str, dict[str, Any]] = {}
        self.not_downloaded: dict[str, list[str]] = {}
        """Per dataset, the ids of samples a listing names but the download does not hold at
        all (a partial download of a large benchmark): counted, not reported one by one."""

    @abc.abstractmethod
    def array_shapes(self, dataset: DatasetName) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per-sample shape and dtype of every array of ``dataset``."""

    @abc.abstractmethod
    def dataset_attrs(self, dataset: DatasetName) -> dict[str, object]:
        """The ``meta.json`` attrs of ``dataset``."""

    @abc.abstractmethod
    def chunks(self, dataset: DatasetName, progress: ProgressFactory) -> Iterator[Chunk]:
        """Yield ``dataset`` chunk by chunk (memory stays bounded)."""

    def skipped_by_reason(self, dataset: str) -> dict[str, int]:
        """How many items of ``dataset`` were skipped, per reason."""
        return dict(Counter(s.reason for s in self.skipped if s.dataset == dataset))


def array_shapes(
    n_dates: int, size: int, labels: Sequence[str], bands: Sequence[str]
) -> dict[str, tuple[tuple[int, ...], str]]:
    """The arrays of a dataset: image (``bands``), mask and the given label maps."""
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "image": ((n_dates, len(bands), size, size), "uint16"),
        "mask": ((n_dates, size, size), "uint8"),
    }
    dtypes = {"landcover": "uint8", "croptype": "uint8", "parcel": "int32"}
    for name in labels:
        shapes[name] = ((size, size), dtypes[name])
    return shapes


def dataset_attrs(
    source: str,
    seed: int,
    regions: Sequence[str],
    labels: Sequence[str],
    bands: Sequence[str],
    classes: Mapping[str, ClassSet],
    **extra: object,
) -> dict[str, object]:
    """``meta.json`` attrs: the bands the image array holds, mask codes, the class set of each
    class-valued label array (``classes``), radiometry, plus ``extra``.

    Raises:
        ValueError: a class-valued label array in ``labels`` has no class set in ``classes``.
    """
    class_labels = [name for name in labels if name != "parcel"]
    missing = [name for name in class_labels if name not in classes]
    if missing:
        raise ValueError(f"label array(s) {missing} have no class set")
    attrs: dict[str, object] = {
        "source": source,
        "seed": seed,
        "bands": list(bands),
        "mask_codes": dict(MASK_CODES),
        "regions": list(regions),
        "radiometry": "reflectance = (DN + dn_offset[date]) / 10000",
        "labels": list(labels),
        "classes": {name: classes[name].to_json() for name in class_labels},
    }
    attrs.update(extra)
    return attrs


def class_set_from_mapping(
    raster_to_class: Mapping[int, str], ignore_values: Sequence[int], what: str
) -> ClassSet:
    """The class set a user's raster-value -> class-name mapping defines: one class per name,
    ordered by its smallest raster value (ascending), ``ignore_values`` declared as no label.

    Several raster values may name the same class (they merge); the class's ``value`` is the
    smallest of them. ``what`` names the setting in error messages.

    Raises:
        ValueError: the mapping is empty, or a value is both mapped and ignored.
    """
    if not raster_to_class:
        raise ValueError(f"{what} maps no raster value to a class")
    both = sorted(set(raster_to_class) & {int(v) for v in ignore_values})
    if both:
        raise ValueError(
            f"{what}: raster value(s) {both} are both mapped to a class and listed as ignored"
        )
    first: dict[str, int] = {}
    for value in sorted(raster_to_class):
        first.setdefault(str(raster_to_class[value]), int(value))
    return ClassSet(
        tuple(LabelClass(name, value) for name, value in first.items()),
        tuple(sorted({int(v) for v in ignore_values})),
    )


def split_of(u: float, train: float, val: float) -> str:
    """``train`` / ``val`` / ``test`` for a uniform draw ``u`` (as the synthetic world)."""
    if u < train:
        return "train"
    return "val" if u < train + val else "test"


def lookup(values: np.ndarray, table: Mapping[int, int], default: int) -> np.ndarray:
    """Map integer ``values`` through ``table`` (other values -> ``default``), as uint8."""
    out = np.full(values.shape, default, np.uint8)
    for src, dst in table.items():
        out[values == src] = dst
    return out


def mask_from_quality(kind: str, classes: np.ndarray, data_mask: np.ndarray) -> np.ndarray:
    """s2ssl mask codes from SCL (``kind="SCL"``) or CLM (``"CLM"``) plus Sentinel Hub's
    dataMask (0 = no data)."""
    table = SCL_TO_MASK if kind == "SCL" else CLM_TO_MASK
    mask = lookup(classes.astype(np.int64), table, MASK_CLEAR)
    mask[data_mask == 0] = MASK_NODATA
    return mask


def class_lookup(raster_to_class: Mapping[int, str], classes: ClassSet) -> dict[int, int]:
    """Raster value -> stored class (position of its name in ``classes``).

    Raises:
        ValueError: a value maps to a name ``classes`` does not hold.
    """
    out: dict[int, int] = {}
    for value, name in raster_to_class.items():
        if name not in classes.names:
            raise ValueError(
                f"label value {value} maps to unknown class {name!r}; "
                f"classes: {list(classes.names)}"
            )
        out[int(value)] = classes.names.index(name)
    return out


def resample_raster(
    path: Path,
    crs: str,
    transform: Sequence[float],
    shape: int | tuple[int, int],
    resampling: str = "nearest",
    band: int = 1,
) -> np.ndarray:
    """One band of a raster (any CRS) resampled onto a grid of ``shape`` (``transform`` in
    rasterio's affine order ``a, b, c, d, e, f``, as in the dataset index); pixels outside the
    raster are 0 (or its nodata value)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine
    from rasterio.warp import Resampling, reproject

    height, width = (shape, shape) if isinstance(shape, int) else shape
    with rasterio.open(path) as src:
        if src.crs is None:
            raise ValueError(f"{path} has no CRS: cannot place it on the patch grid")
        dst = np.zeros((height, width), dtype=src.dtypes[band - 1])
        reproject(
            source=rasterio.band(src, band),
            destination=dst,
            dst_transform=Affine(*transform[:6]),
            dst_crs=CRS.from_user_input(crs),
            resampling=getattr(Resampling, resampling),
            dst_nodata=src.nodata if src.nodata is not None else 0,
        )
    return dst


@dataclass(frozen=True)
class LabelMap:
    """A label raster on a patch grid: stored classes, plus the raster values no class maps."""

    labels: np.ndarray
    """uint8 stored classes; ignored values and pixels outside the raster are LABEL_IGNORE."""
    unmapped: dict[int, int]
    """Raster value -> pixel count of values neither mapped to a class nor ignored."""


def label_map(
    path: Path,
    crs: str,
    transform: Sequence[float],
    shape: int | tuple[int, int],
    raster_to_class: Mapping[int, str],
    classes: ClassSet,
) -> LabelMap:
    """A label raster on the patch grid (nearest neighbour) as stored classes.

    Values of ``classes.ignored_values``, the raster's nodata value (unless mapped) and pixels
    outside the raster (0, or the nodata value) become :data:`~s2ssl.classes.LABEL_IGNORE`; any
    other value that ``raster_to_class`` does not map is counted in :attr:`LabelMap.unmapped`
    (the caller decides; never silently ignored).
    """
    import rasterio

    with rasterio.open(path) as src:
        nodata = src.nodata
    values = resample_raster(path, crs, transform, shape, "nearest").astype(np.int64)
    table = class_lookup(raster_to_class, classes)
    out = lookup(values, table, LABEL_IGNORE)
    known = set(table) | set(classes.ignored_values)
    if nodata is not None and float(nodata).is_integer() and int(nodata) not in table:
        known.add(int(nodata))
    found, counts = np.unique(values, return_counts=True)
    unmapped = {int(v): int(n) for v, n in zip(found, counts, strict=True) if int(v) not in known}
    return LabelMap(out, unmapped)


def describe_unmapped(unmapped: Mapping[int, int], setting: str) -> str:
    """A user-facing message for label raster values no class maps (``setting``: where to map
    them, e.g. ``fetch.local.croptype.label_classes.croptype``)."""
    listed = ", ".join(f"{v} ({n} px)" for v, n in sorted(unmapped.items()))
    return (
        f"label raster value(s) neither mapped to a class nor ignored: {listed}; map each to a "
        f"class name in {setting} or list it as no label in the matching ignore_values"
    )


def parcels_from_crops(crop: np.ndarray) -> np.ndarray:
    """Parcel ids as 4-connected components of equal, non-background crop labels (0 elsewhere)."""
    from scipy import ndimage

    out = np.zeros(crop.shape, np.int32)
    next_id = 0
    for value in np.unique(crop):
        if value in (0, LABEL_IGNORE):
            continue
        comp, n = ndimage.label(crop == value)
        out[comp > 0] = comp[comp > 0] + next_id
        next_id += n
    return out


def cloud_fractions(mask: np.ndarray) -> list[float]:
    """Per date, the share of cloud pixels (as the synthetic world records it)."""
    return [round(float(c), 6) for c in (mask == MASK_CLOUD).mean(axis=(-2, -1))]

"""What every imagery source shares: the source interface, skip records, array shapes, dataset
attributes, quality-mask codes and label rasters resampled onto a patch grid.

A source yields :class:`~s2ssl.data.sources.types.Chunk` objects (arrays + index rows) with
the same arrays, index columns and attrs as the synthetic world for the same dataset kind, so
``validate`` and ``pretrain`` take any source unchanged: ``image`` ``[T, 13, H, W]`` uint16 DN in
:data:`~s2ssl.bands.BAND_NAMES` order, ``mask`` ``[T, H, W]`` uint8 (clear / cloud / shadow /
snow / 255 no data) and, when labelled, ``landcover`` / ``croptype`` / ``parcel`` maps.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import (
    BAND_NAMES,
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_NODATA,
    MASK_SHADOW,
    MASK_SNOW,
    N_BANDS,
)
from s2ssl.classes import CROP_CLASSES, LABEL_IGNORE, LANDCOVER_CLASSES
from s2ssl.data.sources.types import Chunk, DatasetName
from s2ssl.progress import ProgressFactory

__all__ = ["Chunk", "DatasetName", "Skip", "Source"]

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
    n_dates: int, size: int, labels: Sequence[str]
) -> dict[str, tuple[tuple[int, ...], str]]:
    """The arrays of a dataset: image, mask and the given label maps (synthetic dtypes)."""
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "image": ((n_dates, N_BANDS, size, size), "uint16"),
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
    filled_bands: Sequence[str] = (),
    **extra: object,
) -> dict[str, object]:
    """``meta.json`` attrs with the synthetic keys (bands, mask codes, classes, radiometry)."""
    attrs: dict[str, object] = {
        "source": source,
        "seed": seed,
        "bands": list(BAND_NAMES),
        "mask_codes": dict(MASK_CODES),
        "regions": list(regions),
        "radiometry": "reflectance = (DN + dn_offset[date]) / 10000",
        "filled_bands": list(filled_bands),
        "labels": list(labels),
    }
    if filled_bands:
        attrs["filled_bands_note"] = (
            f"{', '.join(filled_bands)} not in the product: filled with reflectance 0 "
            "(validate.required_bands should leave them out; they carry no information)"
        )
    if "landcover" in labels:
        attrs["landcover_classes"] = list(LANDCOVER_CLASSES)
    if "croptype" in labels:
        attrs["croptype_classes"] = list(CROP_CLASSES)
    attrs.update(extra)
    return attrs


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


def class_lookup(
    raster_to_class: Mapping[int, str] | None, class_names: Sequence[str]
) -> dict[int, int]:
    """Raster value -> class index; None maps value ``k`` to class ``k``."""
    if raster_to_class is None:
        return {k: k for k in range(len(class_names))}
    out: dict[int, int] = {}
    for value, name in raster_to_class.items():
        if name not in class_names:
            raise ValueError(
                f"label value {value} maps to unknown class {name!r}; classes: {list(class_names)}"
            )
        out[int(value)] = class_names.index(name)
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


def label_map(
    path: Path,
    crs: str,
    transform: Sequence[float],
    shape: int | tuple[int, int],
    raster_to_class: Mapping[int, str] | None,
    class_names: Sequence[str],
) -> np.ndarray:
    """A label raster on the patch grid (nearest neighbour) as class indices; unmapped values
    (and pixels outside the raster) become :data:`~s2ssl.classes.LABEL_IGNORE`."""
    values = resample_raster(path, crs, transform, shape, "nearest")
    return lookup(values.astype(np.int64), class_lookup(raster_to_class, class_names), LABEL_IGNORE)


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

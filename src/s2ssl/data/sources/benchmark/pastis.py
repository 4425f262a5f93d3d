"""PASTIS: 2,433 Sentinel-2 time series of 128 x 128 pixels over France with crop-type labels.

Layout read (``PASTIS.zip`` / ``PASTIS-R.zip``; ``<root>`` may also be the folder that holds
the extracted ``PASTIS/`` or ``PASTIS-R/``)::

    <root>/metadata.geojson                one feature per patch; properties ID_PATCH, Fold
                                           (1..5), dates-S2 ({"0": YYYYMMDD, "1": ...}), TILE ...
    <root>/DATA_S2/S2_<ID_PATCH>.npy       T x 10 x 128 x 128 integer DN (Level-2A x 10000)
    <root>/ANNOTATIONS/TARGET_<ID_PATCH>.npy       3 x 128 x 128; channel 0: semantic class
    <root>/ANNOTATIONS/ParcelIDs_<ID_PATCH>.npy    128 x 128 parcel ids (0: none)

The 10 bands are :data:`PASTIS_FILE_BANDS` (B02..B08, B8A, B11, B12: the 10 m and 20 m bands,
the 20 m ones upsampled), stored in wavelength order, which is Sentinel-2 order. ``T`` varies
from patch to patch: one image per entry of ``dates-S2``, whose keys are the positions along
``T``. ``dates-S2`` is a JSON object in the file; GDAL-based readers hand it over as a JSON
string, and both are accepted. Semantic values: 0 background, 1..18 crop types, 19 void
(parcels mostly outside the patch), stored as :data:`s2ssl.classes.LABEL_IGNORE`. The five
folds are the splits (``fold1`` .. ``fold5``). Only the Sentinel-2 series is read; the
Sentinel-1 folders of PASTIS-R and ``INSTANCE_ANNOTATIONS`` are ignored.

Checked against: the authors' loader (VSainteuf/pastis-benchmark, ``code/dataloader.py``: the
file names, ``ID_PATCH`` and ``Fold``, the index -> YYYYMMDD dates and their 2024 fix for
dates read back as a string, channel 0 of ``TARGET``), their ``label_names.json`` (the 20
semantic values) and the authors' statement that the bands are in wavelength order with the
20 m bands upsampled bilinearly (``docs/benchmarks.md``), and TorchGeo's ``PASTIS`` dataset
(``Fold`` 1..5, ``TARGET[0]``; its test data writes the S2 series as ``int16`` and ``TARGET``
as ``uint8``). Any integer dtype is accepted
for the series as long as its values fit 0..65535.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from s2ssl.bands import BAND_PRESETS
from s2ssl.classes import LABEL_IGNORE, ClassSet, LabelClass
from s2ssl.data.sources.benchmark.common import (
    Incomplete,
    Inventory,
    as_dn,
    check_shape,
    is_present,
    relative,
    require_file,
)

__all__ = [
    "PASTIS_CLASSES",
    "PASTIS_CLASS_NAMES",
    "PASTIS_FILE_BANDS",
    "PASTIS_FOLDS",
    "PASTIS_VOID",
    "PastisPatch",
    "PastisSample",
    "list_pastis",
    "pastis_dir",
    "read_pastis",
]

PASTIS_FILE_BANDS: Final[tuple[str, ...]] = BAND_PRESETS["pastis"]
"""The bands of ``S2_<id>.npy`` in file order (B02, B03, B04, B05, B06, B07, B08, B8A, B11,
B12): Sentinel-2 order already."""

PASTIS_CLASS_NAMES: Final[tuple[str, ...]] = (
    "Background", "Meadow", "Soft winter wheat", "Corn", "Winter barley", "Winter rapeseed",
    "Spring barley", "Sunflower", "Grapevine", "Beet", "Winter triticale", "Winter durum wheat",
    "Fruits, vegetables, flowers", "Potatoes", "Leguminous fodder", "Soybeans", "Orchard",
    "Mixed cereal", "Sorghum", "Void label",
)  # fmt: skip
"""The 20 semantic values of ``TARGET_<id>.npy`` (value ``k`` is the ``k``-th name)."""

PASTIS_VOID: Final[int] = 19
"""The void value (parcels mostly outside their patch): no label."""

PASTIS_CLASSES: Final[ClassSet] = ClassSet(
    tuple(LabelClass(n, v) for v, n in enumerate(PASTIS_CLASS_NAMES) if v != PASTIS_VOID),
    ignored_values=(PASTIS_VOID,),
)
"""Background and the 18 crop types (stored as their value); void is ignored."""

PASTIS_FOLDS: Final[tuple[int, ...]] = (1, 2, 3, 4, 5)
PASTIS_SIZE: Final[int] = 128
METADATA_FILE: Final[str] = "metadata.geojson"
_NESTED_DIRS: Final[tuple[str, ...]] = ("PASTIS", "PASTIS-R")


@dataclass(frozen=True, slots=True)
class PastisPatch:
    """One PASTIS patch as listed by ``metadata.geojson``: id, fold, dates and its files."""

    patch_id: int
    fold: int
    dates: tuple[dt.date, ...]
    tile: str | None
    image_path: Path
    target_path: Path
    parcels_path: Path

    @property
    def sample_id(self) -> str:
        """``pastis_<ID_PATCH>``."""
        return f"pastis_{self.patch_id}"

    @property
    def split(self) -> str:
        """``fold<k>``."""
        return f"fold{self.fold}"


@dataclass(frozen=True)
class PastisSample:
    """One patch read: DN ``image [T, 10, H, W]`` (``bands``), its dates and days of year, the
    semantic ``label [H, W]`` (uint8, :data:`PASTIS_CLASSES` positions, void as
    :data:`~s2ssl.classes.LABEL_IGNORE`) and the parcel ids ``parcels [H, W]`` (int64)."""

    patch: PastisPatch
    image: np.ndarray
    bands: tuple[str, ...]
    dates: tuple[dt.date, ...]
    doy: np.ndarray
    label: np.ndarray
    parcels: np.ndarray


def _parse_dates(raw: Any, where: str) -> tuple[dt.date, ...]:
    """``{"0": 20180924, ...}`` (or a list) -> dates in index order."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"{where}: dates-S2 is not JSON ({raw[:40]!r}...)") from None
    if isinstance(raw, Mapping):
        try:
            items = [raw[k] for k in sorted(raw, key=int)]
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: dates-S2 keys must be date indices ('0', '1', ...)"
            ) from None
    elif isinstance(raw, list):
        items = raw
    else:
        raise ValueError(f"{where}: dates-S2 must map index -> YYYYMMDD, got {type(raw).__name__}")
    dates = []
    for item in items:
        text = str(item)
        try:
            if len(text) != 8 or not text.isdigit():
                raise ValueError
            dates.append(dt.date(int(text[:4]), int(text[4:6]), int(text[6:])))
        except ValueError:
            raise ValueError(f"{where}: dates-S2 entry {item!r} is not a YYYYMMDD date") from None
    if not dates:
        raise ValueError(f"{where}: dates-S2 is empty")
    return tuple(dates)


def pastis_dir(root: str | Path) -> Path:
    """The folder holding ``metadata.geojson``: ``root`` itself, else ``root/PASTIS`` or
    ``root/PASTIS-R`` (the folders the archives extract to); ``root`` when none has it."""
    root = Path(root)
    for c in (root, *(root / name for name in _NESTED_DIRS)):
        if (c / METADATA_FILE).exists():
            return c
    return root


def _as_int(value: Any, name: str, where: str) -> int:
    """``value`` as an int when it is a whole number (``10000``, ``10000.0``, ``"10000"``)."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value) if not isinstance(value, int) else value
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where}: {name} {value!r} is not an integer") from None


def _features(root: Path) -> list[Mapping[str, Any]]:
    path = require_file(
        root / METADATA_FILE, "the PASTIS patch metadata (a GeoJSON FeatureCollection)"
    )
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    features = doc.get("features") if isinstance(doc, Mapping) else None
    if not isinstance(features, list):
        raise ValueError(f"{path}: expected a GeoJSON FeatureCollection with 'features'")
    return features


def list_pastis(root: str | Path) -> Inventory[PastisPatch]:
    """The patches of ``metadata.geojson`` under ``root`` (by ``ID_PATCH``) with fold and dates.

    ``root`` is the dataset folder or the folder holding ``PASTIS/`` or ``PASTIS-R/``
    (:func:`pastis_dir`). Nothing but the metadata is opened: a patch whose image, target or
    parcel file is absent or empty goes to ``incomplete`` with the files it lacks (paths
    relative to ``root``); the complete patches are sorted by ``ID_PATCH``.

    Raises:
        ValueError: ``metadata.geojson`` is missing, empty or not a FeatureCollection; a feature
            lacks ``ID_PATCH``, ``Fold`` (1..5) or a valid ``dates-S2``; an ``ID_PATCH`` repeats.
    """
    given = Path(root)
    root = pastis_dir(given)
    meta = root / METADATA_FILE
    patches: list[PastisPatch] = []
    incomplete: list[Incomplete] = []
    seen: set[int] = set()
    for n, feature in enumerate(_features(root)):
        props = feature.get("properties") if isinstance(feature, Mapping) else None
        where = f"{meta} (feature {n})"
        if not isinstance(props, Mapping) or not {"ID_PATCH", "Fold", "dates-S2"} <= set(props):
            raise ValueError(f"{where}: expected properties ID_PATCH, Fold and dates-S2")
        patch_id = _as_int(props["ID_PATCH"], "ID_PATCH", where)
        fold = _as_int(props["Fold"], "Fold", f"{where}, ID_PATCH {patch_id}")
        if fold not in PASTIS_FOLDS:
            raise ValueError(
                f"{where}, ID_PATCH {patch_id}: Fold {fold}; expected one of {PASTIS_FOLDS}"
            )
        if patch_id in seen:
            raise ValueError(f"{where}: ID_PATCH {patch_id} appears more than once")
        seen.add(patch_id)
        tile = props.get("TILE")
        patch = PastisPatch(
            patch_id=patch_id,
            fold=fold,
            dates=_parse_dates(props["dates-S2"], f"{where}, ID_PATCH {patch_id}"),
            tile=None if tile is None else str(tile),
            image_path=root / "DATA_S2" / f"S2_{patch_id}.npy",
            target_path=root / "ANNOTATIONS" / f"TARGET_{patch_id}.npy",
            parcels_path=root / "ANNOTATIONS" / f"ParcelIDs_{patch_id}.npy",
        )
        missing = tuple(
            relative(p, given)
            for p in (patch.image_path, patch.target_path, patch.parcels_path)
            if not is_present(p)
        )
        if missing:
            incomplete.append(Incomplete(patch.sample_id, missing))
        else:
            patches.append(patch)
    patches.sort(key=lambda p: p.patch_id)
    return Inventory(tuple(patches), tuple(incomplete))


def _load(path: Path, what: str) -> np.ndarray:
    require_file(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy file ({e}); expected {what}") from None


def pastis_label(values: np.ndarray, path: Path) -> np.ndarray:
    """Semantic values 0..19 -> stored labels (uint8; void as ``LABEL_IGNORE``)."""
    v = _whole(values, path, "semantic classes")
    bad = np.unique(v[(v < 0) | (v > PASTIS_VOID)])
    if bad.size:
        raise ValueError(
            f"{path}: semantic value(s) {bad.tolist()[:10]} outside 0..{PASTIS_VOID}; expected "
            "PASTIS classes (0 background, 1..18 crops, 19 void)"
        )
    label = v.astype(np.uint8)
    label[v == PASTIS_VOID] = LABEL_IGNORE
    return label


def _whole(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    """``values`` as int64 when integer or whole-number floats; else ``ValueError``."""
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    if np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0):
        return values.astype(np.int64)
    raise ValueError(f"{path}: {what} are not whole numbers ({values.dtype})")


def read_pastis(patch: PastisPatch) -> PastisSample:
    """Read one patch: its time series as ``uint16`` DN, dates, labels and parcel ids.

    Raises:
        ValueError: a file is missing, empty or unreadable, or its shape does not fit the
            layout (``T x 10 x 128 x 128`` with ``T`` the number of dates; target ``3 x 128 x
            128``, or ``128 x 128`` semantic only; parcels ``128 x 128``), its pixels are not
            integer DN in 0..65535, or its classes lie outside 0..19; the message names the file.
    """
    n_dates, n_bands = len(patch.dates), len(PASTIS_FILE_BANDS)
    raw = _load(patch.image_path, f"the S2 series of patch {patch.patch_id}")
    check_shape(raw, (None, n_bands, PASTIS_SIZE, PASTIS_SIZE), patch.image_path, "T x 10 x H x W")
    if raw.shape[0] != n_dates:
        raise ValueError(
            f"{patch.image_path}: {raw.shape[0]} dates in the array but {n_dates} in dates-S2 "
            f"of {METADATA_FILE}; expected one image per listed date"
        )
    image = as_dn(raw, patch.image_path)
    height, width = image.shape[-2:]
    target = _load(patch.target_path, f"the semantic target of patch {patch.patch_id}")
    if target.ndim == 3:
        check_shape(target, (3, height, width), patch.target_path, "3 x H x W")
        target = target[0]
    check_shape(target, (height, width), patch.target_path, "3 x H x W, channel 0 semantic")
    label = pastis_label(target, patch.target_path)
    parcels = _load(patch.parcels_path, f"the parcel ids of patch {patch.patch_id}")
    check_shape(parcels, (height, width), patch.parcels_path, "H x W parcel ids")
    parcels = _whole(parcels, patch.parcels_path, "parcel ids")
    doy = np.asarray([d.timetuple().tm_yday for d in patch.dates], dtype=np.int16)
    return PastisSample(
        patch=patch,
        image=image,
        bands=PASTIS_FILE_BANDS,
        dates=patch.dates,
        doy=doy,
        label=label,
        parcels=parcels,
    )

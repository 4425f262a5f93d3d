"""BigEarthNet: 120 x 120 Sentinel-2 Level-2A patches (1.2 km) over ten European countries,
each with the multi-labels of CORINE Land Cover 2018 in the 19-class nomenclature.

Two releases are read: **v2** ("reBEN", Clasen et al. 2024; 549,488 patches, the refined labels
and the official geographic split) and **v1** (Sumbul et al. 2019; 590,326 patches, 43 CLC
level-3 labels per patch, mapped here to the 19 classes of "BigEarthNet-19").

v2 layout read (Zenodo record 10891137: ``BigEarthNet-S2.tar.zst``, ``Reference_Maps.tar.zst``,
``metadata.parquet``)::

    <root>/metadata.parquet
    <root>/metadata_for_patches_with_snow_cloud_or_shadow.parquet          (optional)
    <root>/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_<band>.tif          12 bands
    <root>/Reference_Maps/<tile>/<patch_id>/<patch_id>_reference_map.tif   (optional)

with ``<patch_id>`` like ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43`` and ``<tile>``
the id without its last two ``_<column>_<row>`` parts (``S2A_MSIL2A_20170613T101031_N9999_R022
_T33UUP``); ``<root>`` may also be the ``BigEarthNet-S2`` folder itself when ``metadata`` is
given. ``metadata.parquet`` holds one row per patch: ``patch_id``, ``labels`` (a list of the
19 class names), ``split`` (``train`` / ``validation`` / ``test``, normalised here to
``train`` / ``val`` / ``test``), ``country``, ``s1_name`` (the paired Sentinel-1 patch),
``s2v1_name`` (the v1 name of the patch) and the booleans ``contains_seasonal_snow`` and
``contains_cloud_or_shadow``. The patches flagged snow / cloud / shadow are published apart,
in ``metadata_for_patches_with_snow_cloud_or_shadow.parquet``, and are excluded by default.

Band files: one single-band ``uint16`` GeoTIFF per band (DN = reflectance x 10000, nodata 0),
the 12 Level-2A bands (no B10): B02, B03, B04, B08 at 10 m (120 x 120), B05, B06, B07, B8A,
B11, B12 at 20 m (60 x 60), B01, B09 at 60 m (20 x 20). All three grids share the patch's
upper-left corner and its 1,200 m extent, so one 20 m pixel covers exactly 2 x 2 10 m pixels
and one 60 m pixel 6 x 6: :func:`read_bigearthnet` brings every band to 120 x 120 by
**nearest-neighbour replication** (each pixel repeated 2 or 6 times along both axes; exact,
no new DN values), and returns the bands in Sentinel-2 order (the ``l2a`` preset:
B01, B02, ..., B08, B8A, B09, B11, B12).

Reference maps: one ``uint16`` band of 120 x 120 at 10 m holding CLC level-3 codes (``111`` ..
``523``); :func:`read_bigearthnet_reference_map` turns them into 19-class positions.

v1 layout (listed by :mod:`.bigearthnet_v1`; ``BigEarthNet-S2-v1.0.tar.gz`` and the example
patches of the ``bigearthnet-common`` wheel)::

    <root>/<name>/<name>_<band>.tif                (the same 12 bands and sizes as v2)
    <root>/<name>/<name>_labels_metadata.json      {"labels": [43-class names], ...}

with ``<name>`` like ``S2A_MSIL2A_20170613T101031_87_48``, the patch folders directly under
``<root>`` or under one folder below it (``BigEarthNet-v1.0/``, ``BigEarthNet-S2-Example/``).
v1 carries no split (its published patch lists are read by
:func:`.bigearthnet_v1.split_bigearthnet_v1`). A patch none of whose 43-class labels has a
19-class counterpart is reported in ``incomplete``, never given an empty or guessed label.

What was checked, and against what:

* Folder and file names, tile folders, band list: the reBEN test fixtures of TorchGeo
  (``tests/data/bigearthnet/v2``, ``BigEarthNetV2``) and the BigEarthNet v2 example input of
  rico-hdl (kai-tub/rico-hdl ``README.md``); band sizes, ``uint16``, nodata 0, the shared
  upper-left corner and the reference map's codes by opening the real v2 patch and reference map
  that rico-hdl's integration tests carry, and the six v1 patches of ``bigearthnet-common``.
* ``metadata.parquet`` columns and types (``labels`` a list of strings) and the split values
  ``train`` / ``validation`` / ``test``: the mock metadata of ConfigILM (lhackel-tub/ConfigILM,
  ``configilm/extra/mock_data/BENv2``, subsets cut from the real file by
  ``gen_mock_data_BENv2.py``), which also shows the separate snow / cloud file.
  TorchGeo's own fake metadata writes ``val``; both spellings are accepted.
* The 19 class names in their published order (``label_indices.json`` of the BigEarthNet-19
  models, as listed by TorchGeo and ``bigearthnet-common``: ConfigILM sorts them
  alphabetically by default; this module keeps the published order), the 43 -> 19 mapping
  (TorchGeo's ``label_converter``, ``bigearthnet-common`` 2.8.0 ``OLD2NEW_LABELS_DICT``:
  identical) and the CLC level-3 codes of the 43 names (``bigearthnet-common``
  ``CLC_LV3_TO_CLC_CODE``, the CORINE nomenclature).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from s2ssl.bands import BAND_PRESETS, BANDS
from s2ssl.classes import LABEL_IGNORE, ClassSet
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
    "BIGEARTHNET_BANDS",
    "BIGEARTHNET_CLASSES",
    "BIGEARTHNET_CLC_CODES",
    "BIGEARTHNET_SIZE",
    "BIGEARTHNET_V1_CLASSES",
    "BIGEARTHNET_V1_TO_19",
    "BigEarthNetPatch",
    "list_bigearthnet",
    "missing_band_files",
    "multi_hot",
    "read_bigearthnet",
    "read_bigearthnet_reference_map",
]

BIGEARTHNET_BANDS: Final[tuple[str, ...]] = BAND_PRESETS["l2a"]
"""The 12 band files of a patch (no B10), in the Sentinel-2 order :func:`read_bigearthnet`
returns."""

BIGEARTHNET_SIZE: Final[int] = 120
"""Pixels per side at 10 m (60 at 20 m, 20 at 60 m)."""

_RESOLUTION: Final[Mapping[str, int]] = MappingProxyType(
    {b.name: b.resolution_m for b in BANDS if b.name in BIGEARTHNET_BANDS}
)

BIGEARTHNET_CLASSES: Final[ClassSet] = ClassSet.from_names(
    (
        "Urban fabric",
        "Industrial or commercial units",
        "Arable land",
        "Permanent crops",
        "Pastures",
        "Complex cultivation patterns",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        "Agro-forestry areas",
        "Broad-leaved forest",
        "Coniferous forest",
        "Mixed forest",
        "Natural grassland and sparsely vegetated areas",
        "Moors, heathland and sclerophyllous vegetation",
        "Transitional woodland, shrub",
        "Beaches, dunes, sands",
        "Inland wetlands",
        "Coastal wetlands",
        "Inland waters",
        "Marine waters",
    )
)
"""The 19 classes in their published order; :func:`multi_hot` position ``k`` is the ``k``-th."""

# (CLC level-3 code, v1 class name, its BigEarthNet-19 class or None), in the v1 order.
_V1_TABLE: Final[tuple[tuple[int, str, str | None], ...]] = (
    (111, "Continuous urban fabric", "Urban fabric"),
    (112, "Discontinuous urban fabric", "Urban fabric"),
    (121, "Industrial or commercial units", "Industrial or commercial units"),
    (122, "Road and rail networks and associated land", None),
    (123, "Port areas", None),
    (124, "Airports", None),
    (131, "Mineral extraction sites", None),
    (132, "Dump sites", None),
    (133, "Construction sites", None),
    (141, "Green urban areas", None),
    (142, "Sport and leisure facilities", None),
    (211, "Non-irrigated arable land", "Arable land"),
    (212, "Permanently irrigated land", "Arable land"),
    (213, "Rice fields", "Arable land"),
    (221, "Vineyards", "Permanent crops"),
    (222, "Fruit trees and berry plantations", "Permanent crops"),
    (223, "Olive groves", "Permanent crops"),
    (231, "Pastures", "Pastures"),
    (241, "Annual crops associated with permanent crops", "Permanent crops"),
    (242, "Complex cultivation patterns", "Complex cultivation patterns"),
    (
        243,
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    ),
    (244, "Agro-forestry areas", "Agro-forestry areas"),
    (311, "Broad-leaved forest", "Broad-leaved forest"),
    (312, "Coniferous forest", "Coniferous forest"),
    (313, "Mixed forest", "Mixed forest"),
    (321, "Natural grassland", "Natural grassland and sparsely vegetated areas"),
    (322, "Moors and heathland", "Moors, heathland and sclerophyllous vegetation"),
    (323, "Sclerophyllous vegetation", "Moors, heathland and sclerophyllous vegetation"),
    (324, "Transitional woodland/shrub", "Transitional woodland, shrub"),
    (331, "Beaches, dunes, sands", "Beaches, dunes, sands"),
    (332, "Bare rock", None),
    (333, "Sparsely vegetated areas", "Natural grassland and sparsely vegetated areas"),
    (334, "Burnt areas", None),
    (411, "Inland marshes", "Inland wetlands"),
    (412, "Peatbogs", "Inland wetlands"),
    (421, "Salt marshes", "Coastal wetlands"),
    (422, "Salines", "Coastal wetlands"),
    (423, "Intertidal flats", None),
    (511, "Water courses", "Inland waters"),
    (512, "Water bodies", "Inland waters"),
    (521, "Coastal lagoons", "Marine waters"),
    (522, "Estuaries", "Marine waters"),
    (523, "Sea and ocean", "Marine waters"),
)

BIGEARTHNET_V1_CLASSES: Final[ClassSet] = ClassSet.from_names(tuple(n for _, n, _ in _V1_TABLE))
"""The 43 CLC level-3 classes of v1, in the v1 order."""

BIGEARTHNET_V1_TO_19: Final[Mapping[str, str | None]] = MappingProxyType(
    {name: new for _, name, new in _V1_TABLE}
)
"""v1 class name -> its BigEarthNet-19 class; None for the 11 classes BigEarthNet-19 drops
(road and rail, ports, airports, mines, dumps, construction sites, green urban areas, sport and
leisure, bare rock, burnt areas, intertidal flats)."""

BIGEARTHNET_CLC_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {code: name for code, name, _ in _V1_TABLE} | {335: "Glaciers and perpetual snow"}
)
"""CLC level-3 code -> class name: the 43 v1 classes and glaciers (335), the one level-3 class
none of them covers. Reference-map values outside these codes (other than 0, nodata) are an
error."""

METADATA_FILE: Final[str] = "metadata.parquet"
SNOW_CLOUD_METADATA_FILE: Final[str] = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
S2_DIR: Final[str] = "BigEarthNet-S2"
REFERENCE_MAPS_DIR: Final[str] = "Reference_Maps"

_SPLITS: Final[Mapping[str, str]] = MappingProxyType(
    {"train": "train", "validation": "val", "val": "val", "test": "test"}
)
_REQUIRED_COLUMNS: Final[tuple[str, ...]] = ("patch_id", "labels", "split", "country")
_FLAG_COLUMNS: Final[tuple[str, ...]] = ("contains_seasonal_snow", "contains_cloud_or_shadow")
_PATCH_ID_RE: Final = re.compile(r"^(S2[AB]_MSIL2A_\w+?)_(\d+)_(\d+)$")
_CLASS_INDEX: Final[Mapping[str, int]] = MappingProxyType(
    {n: i for i, n in enumerate(BIGEARTHNET_CLASSES.names)}
)


@dataclass(frozen=True, slots=True)
class BigEarthNetPatch:
    """One patch: its id, folder, 19-class labels (names, published order), split and country.

    ``split`` is ``train`` / ``val`` / ``test`` (v2) or None (v1 has none); ``country`` is None
    for v1. ``original_labels`` are the 43-class names of a v1 patch (empty for v2);
    ``reference_map`` is the v2 pixel-label file when the download has it.
    """

    patch_id: str
    path: Path
    labels: tuple[str, ...]
    split: str | None
    country: str | None
    original_labels: tuple[str, ...] = ()
    reference_map: Path | None = None

    @property
    def sample_id(self) -> str:
        """The patch id."""
        return self.patch_id

    def band_path(self, band: str) -> Path:
        """The GeoTIFF of ``band`` (``<folder>/<patch_id>_<band>.tif``)."""
        return self.path / f"{self.patch_id}_{band}.tif"


def multi_hot(labels: Iterable[str]) -> np.ndarray:
    """19-class names -> ``uint8 [19]`` (1 at each class's :data:`BIGEARTHNET_CLASSES` position).

    Raises:
        ValueError: a name is not one of the 19 classes (a v1 name must first be mapped with
            :data:`BIGEARTHNET_V1_TO_19`).
    """
    out = np.zeros(len(BIGEARTHNET_CLASSES), dtype=np.uint8)
    for name in labels:
        k = _CLASS_INDEX.get(name)
        if k is None:
            raise ValueError(
                f"{name!r} is not a BigEarthNet-19 class; expected one of "
                f"{', '.join(BIGEARTHNET_CLASSES.names)}"
            )
        out[k] = 1
    return out


def _tile_of(patch_id: str, where: str) -> str:
    m = _PATCH_ID_RE.match(patch_id)
    if m is None:
        raise ValueError(
            f"{where}: patch_id {patch_id!r} is not a BigEarthNet v2 Sentinel-2 patch id; "
            "expected S2<A|B>_MSIL2A_<date>T<time>_N<baseline>_R<orbit>_T<tile>_<col>_<row>"
        )
    return m.group(1)


def _read_metadata(path: Path) -> list[dict[str, Any]]:
    """The rows of a metadata parquet file (columns checked, flags default to False)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    require_file(path, "the BigEarthNet v2 patch metadata (a parquet file)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: not a readable parquet file ({e})") from None
    absent = [c for c in _REQUIRED_COLUMNS if c not in table.column_names]
    if absent:
        raise ValueError(
            f"{path}: column(s) {', '.join(absent)} not found (it has "
            f"{', '.join(table.column_names)}); expected {', '.join(_REQUIRED_COLUMNS)}"
        )
    columns = {c: table.column(c).to_pylist() for c in _REQUIRED_COLUMNS}
    for c in _FLAG_COLUMNS:
        columns[c] = (
            table.column(c).to_pylist() if c in table.column_names else [False] * table.num_rows
        )
    return [{c: columns[c][i] for c in columns} for i in range(table.num_rows)]


def _parse_row(row: Mapping[str, Any], where: str) -> tuple[str, tuple[str, ...], str, str]:
    """``(patch_id, labels, split, country)`` of one metadata row, checked."""
    patch_id = row["patch_id"]
    if not isinstance(patch_id, str) or not patch_id:
        raise ValueError(f"{where}: patch_id {patch_id!r} is not a patch id")
    where = f"{where} ({patch_id})"
    raw = row["labels"]
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise ValueError(f"{where}: labels {raw!r} is not a list of class names")
    labels = tuple(str(n) for n in raw)
    unknown = [n for n in labels if n not in _CLASS_INDEX]
    if unknown:
        raise ValueError(
            f"{where}: unknown label(s) {', '.join(map(repr, unknown))}; expected names of the "
            f"19 BigEarthNet classes ({', '.join(BIGEARTHNET_CLASSES.names)})"
        )
    split = _SPLITS.get(str(row["split"]))
    if split is None:
        raise ValueError(f"{where}: split {row['split']!r}; expected one of {', '.join(_SPLITS)}")
    country = row["country"]
    if not isinstance(country, str) or not country:
        raise ValueError(f"{where}: country {country!r} is not a country name")
    return patch_id, tuple(sorted(set(labels), key=_CLASS_INDEX.__getitem__)), split, country


def list_bigearthnet(
    root: str | Path,
    *,
    metadata: str | Path | None = None,
    exclude_snow_cloud: bool = True,
) -> Inventory[BigEarthNetPatch]:
    """The BigEarthNet v2 patches of ``metadata`` (default ``<root>/metadata.parquet``).

    ``exclude_snow_cloud`` drops the rows flagged ``contains_seasonal_snow`` or
    ``contains_cloud_or_shadow`` (as the official benchmark does); with False the rows of
    ``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` beside ``metadata`` are added
    when that file is there. Band files are looked for under ``<root>/BigEarthNet-S2`` (or
    ``<root>`` itself when it holds the tile folders) and are not opened: a patch whose folder
    is absent, or any of whose 12 band files is absent or empty, goes to ``incomplete`` with
    what it lacks. Labels are kept in :data:`BIGEARTHNET_CLASSES` order; samples are sorted by
    patch id.

    Raises:
        ValueError: a metadata file is missing, unreadable or lacks a column (``patch_id``,
            ``labels``, ``split``, ``country``); a row has an unknown label name, a split other
            than train / validation / test, a malformed patch id, or repeats a patch id. The
            message names the file and the row.
    """
    root = Path(root)
    meta = Path(metadata) if metadata is not None else root / METADATA_FILE
    files = [meta]
    extra = meta.parent / SNOW_CLOUD_METADATA_FILE
    if not exclude_snow_cloud and extra.is_file() and extra != meta:
        files.append(extra)
    image_dir = root / S2_DIR if (root / S2_DIR).is_dir() else root
    maps_dir = root / REFERENCE_MAPS_DIR

    patches: list[BigEarthNetPatch] = []
    incomplete: list[Incomplete] = []
    seen: dict[str, str] = {}
    for path in files:
        for n, row in enumerate(_read_metadata(path)):
            where = f"{path} row {n}"
            patch_id, labels, split, country = _parse_row(row, where)
            tile = _tile_of(patch_id, where)
            if patch_id in seen:
                raise ValueError(f"{where}: patch_id {patch_id} already listed at {seen[patch_id]}")
            seen[patch_id] = where
            if exclude_snow_cloud and any(bool(row[c]) for c in _FLAG_COLUMNS):
                continue
            folder = image_dir / tile / patch_id
            ref = maps_dir / tile / patch_id / f"{patch_id}_reference_map.tif"
            patch = BigEarthNetPatch(
                patch_id=patch_id,
                path=folder,
                labels=labels,
                split=split,
                country=country,
                reference_map=ref if is_present(ref) else None,
            )
            missing = missing_band_files(patch, root)
            if missing:
                incomplete.append(Incomplete(patch_id, missing, absent=not folder.is_dir()))
            else:
                patches.append(patch)
    patches.sort(key=lambda p: p.patch_id)
    incomplete.sort(key=lambda i: i.sample_id)
    return Inventory(tuple(patches), tuple(incomplete))


def missing_band_files(patch: BigEarthNetPatch, root: Path) -> tuple[str, ...]:
    """What a patch lacks: its folder, else each absent or empty band file."""
    if not patch.path.is_dir():
        return (f"{relative(patch.path, root)}/ (patch folder)",)
    missing = []
    for band in BIGEARTHNET_BANDS:
        p = patch.band_path(band)
        if not p.exists():
            missing.append(relative(p, root))
        elif not is_present(p):
            missing.append(f"{relative(p, root)} (empty)")
    return tuple(missing)


def _read_band(path: Path, band: str) -> np.ndarray:
    """One band file as ``uint16`` ``[size, size]`` at its native resolution, checked."""
    import rasterio
    from rasterio.errors import RasterioIOError

    res = _RESOLUTION[band]
    size = BIGEARTHNET_SIZE * 10 // res
    what = f"the {band} band of a BigEarthNet patch (1 band, {size} x {size} at {res} m)"
    require_file(path, what)
    try:
        with rasterio.open(path) as src:
            if src.count != 1:
                raise ValueError(f"{path}: {src.count} bands; expected {what}")
            array = src.read(1)
    except RasterioIOError as e:
        raise ValueError(f"{path}: not a readable GeoTIFF ({e})") from None
    check_shape(array, (size, size), path, what)
    return as_dn(array, path)


def read_bigearthnet(patch: BigEarthNetPatch) -> tuple[np.ndarray, tuple[str, ...]]:
    """One patch as ``uint16`` DN ``[12, 120, 120]`` in Sentinel-2 order, with the band names
    (:data:`BIGEARTHNET_BANDS`, the ``l2a`` preset). v1 and v2 patches read alike.

    20 m and 60 m bands are brought to 120 x 120 by nearest-neighbour replication: each pixel
    repeated 2 (20 m) or 6 (60 m) times along both axes, exact since the three grids share the
    patch's corner and extent.

    Raises:
        ValueError: a band file is missing, empty or unreadable, holds more than one band, is
            not of its resolution's size (120, 60 or 20 pixels a side) or has non-integer
            pixels; the message names the file.
    """
    out = np.empty((len(BIGEARTHNET_BANDS), BIGEARTHNET_SIZE, BIGEARTHNET_SIZE), np.uint16)
    for i, band in enumerate(BIGEARTHNET_BANDS):
        factor = _RESOLUTION[band] // 10
        dn = _read_band(patch.band_path(band), band)
        out[i] = dn if factor == 1 else np.repeat(np.repeat(dn, factor, axis=0), factor, axis=1)
    return out, BIGEARTHNET_BANDS


_CODE_TO_POSITION: Final[Mapping[int, int]] = MappingProxyType(
    {code: (LABEL_IGNORE if new is None else _CLASS_INDEX[new]) for code, _, new in _V1_TABLE}
    | {335: LABEL_IGNORE, 0: LABEL_IGNORE}
)


def read_bigearthnet_reference_map(patch: BigEarthNetPatch) -> np.ndarray:
    """The v2 pixel labels of ``patch``: ``uint8 [120, 120]`` of :data:`BIGEARTHNET_CLASSES`
    positions, ``LABEL_IGNORE`` where the CLC code has no 19-class counterpart or is 0.

    Raises:
        ValueError: the patch has no reference map; the file is unreadable, not one band of
            120 x 120, or holds a code outside :data:`BIGEARTHNET_CLC_CODES` (and 0); the message
            names the file.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    if patch.reference_map is None:
        raise ValueError(
            f"{patch.patch_id}: no reference map; expected {REFERENCE_MAPS_DIR}/<tile>/"
            f"{patch.patch_id}/{patch.patch_id}_reference_map.tif (BigEarthNet v2)"
        )
    path = require_file(patch.reference_map, "a BigEarthNet v2 reference map (CLC codes)")
    try:
        with rasterio.open(path) as src:
            array = src.read()
    except RasterioIOError as e:
        raise ValueError(f"{path}: not a readable GeoTIFF ({e})") from None
    check_shape(array, (1, BIGEARTHNET_SIZE, BIGEARTHNET_SIZE), path, "one band of CLC codes")
    codes = as_dn(array[0], path).astype(np.int64)
    values = np.unique(codes)
    unknown = [int(v) for v in values if int(v) not in _CODE_TO_POSITION]
    if unknown:
        raise ValueError(
            f"{path}: CLC code(s) {unknown[:10]} are not CORINE level-3 codes of BigEarthNet; "
            "expected 111 .. 523 (0: no data)"
        )
    lut = np.full(int(values.max()) + 1, LABEL_IGNORE, dtype=np.uint8)
    for v in values:
        lut[int(v)] = _CODE_TO_POSITION[int(v)]
    return lut[codes]

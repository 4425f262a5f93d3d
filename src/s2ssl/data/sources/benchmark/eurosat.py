"""EuroSAT (multispectral): 27,000 Sentinel-2 Level-1C patches of 64 x 64 pixels in 10 classes.

Layout read (the ``EuroSAT_MS.zip`` archive of the Zenodo record, or ``EuroSATallBands.zip``)::

    <root>/EuroSAT_MS/<Class>/<Class>_<n>.tif
    <root>/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif

(or ``<root>`` holding the class folders itself). Each GeoTIFF holds 13 ``uint16`` bands in
the order of :data:`EUROSAT_FILE_BANDS`: B01..B08, B09, B10, B11, B12 and **B8A last**;
:func:`read_eurosat` returns them in Sentinel-2 order (:data:`s2ssl.bands.BAND_NAMES`), matched
by name. Labels are the class folders in alphabetical order (0 AnnualCrop .. 9 SeaLake). The RGB
edition (``EuroSAT_RGB.zip`` / ``EuroSAT.zip``, JPEG files) is refused.

Splits: the lists of Neumann et al. (2019), ``eurosat-train.txt``, ``eurosat-val.txt``,
``eurosat-test.txt`` (one file name per line, published as ``<Class>_<n>.jpg``; ``.tif`` is
accepted too; 60 / 20 / 20 % of the samples) when they lie in ``split_dir`` (default: the
root), else a seeded split stratified by class.

Checked against: TorchGeo's ``EuroSAT`` dataset (its nested ``ds/...`` folder, the three split
list names, the ``.jpg`` to ``.tif`` renaming of their lines, the class counts and labels, and
its band list with B8A 13th, settled by comparing the bands' resolutions in the files). The
EuroSAT paper lists the bands in Sentinel-2 order; the files do not follow it
(``docs/benchmarks.md`` names the sources).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np

from s2ssl.bands import BAND_NAMES, select_bands
from s2ssl.classes import ClassSet
from s2ssl.data.sources.benchmark.common import (
    Incomplete,
    Inventory,
    as_dn,
    is_present,
    relative,
    require_file,
)

__all__ = [
    "EUROSAT_CLASSES",
    "EUROSAT_CLASS_COUNTS",
    "EUROSAT_FILE_BANDS",
    "EUROSAT_SPLIT_FILES",
    "EuroSATSample",
    "eurosat_image_dir",
    "list_eurosat",
    "read_eurosat",
]

EUROSAT_FILE_BANDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip
"""The bands of an EuroSAT GeoTIFF in file order (B8A last)."""

EUROSAT_CLASS_COUNTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "AnnualCrop": 3000,
        "Forest": 3000,
        "HerbaceousVegetation": 3000,
        "Highway": 2500,
        "Industrial": 2500,
        "Pasture": 2000,
        "PermanentCrop": 2500,
        "Residential": 3000,
        "River": 2500,
        "SeaLake": 3000,
    }
)
"""Class folder names (alphabetical: label ``k`` is the ``k``-th) and their sample counts."""

EUROSAT_CLASSES: Final[ClassSet] = ClassSet.from_names(tuple(EUROSAT_CLASS_COUNTS))
"""The 10 classes; a sample's label is its class folder's position."""

EUROSAT_SPLIT_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {"train": "eurosat-train.txt", "val": "eurosat-val.txt", "test": "eurosat-test.txt"}
)
"""Split name -> the file listing its samples."""

EUROSAT_SIZE: Final[int] = 64
_NESTED_DIRS: Final[tuple[tuple[str, ...], ...]] = (
    ("EuroSAT_MS",),
    ("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif"),
)
_NAME_RE: Final = re.compile(r"^([A-Za-z]+)_(\d+)$")


@dataclass(frozen=True, slots=True)
class EuroSATSample:
    """One EuroSAT patch: its id (``<Class>_<n>``), file, class name, label and split."""

    sample_id: str
    path: Path
    class_name: str
    label: int
    split: str


def eurosat_image_dir(root: str | Path) -> Path:
    """The folder holding the class folders under ``root`` (any of the published layouts).

    Raises:
        ValueError: no class folder is found; the message lists the places looked at.
    """
    root = Path(root)
    candidates = [root, *(root.joinpath(*parts) for parts in _NESTED_DIRS)]
    for c in candidates:
        if c.is_dir() and any((c / name).is_dir() for name in EUROSAT_CLASS_COUNTS):
            return c
    raise ValueError(
        f"{root}: no EuroSAT class folders ({', '.join(EUROSAT_CLASS_COUNTS)}) found in "
        f"{', '.join(str(c) for c in candidates)}; "
        "expected <root>/EuroSAT_MS/<Class>/<Class>_<n>.tif"
    )


def _parse_name(stem: str, where: str) -> tuple[str, int]:
    m = _NAME_RE.match(stem)
    if m is None or m.group(1) not in EUROSAT_CLASS_COUNTS:
        raise ValueError(
            f"{where}: {stem!r} is not an EuroSAT sample name; expected <Class>_<n> with <Class> "
            f"one of {', '.join(EUROSAT_CLASS_COUNTS)}"
        )
    return m.group(1), int(m.group(2))


def _order(stem: str) -> tuple[str, int]:
    """Sort key: class folder, then sample number."""
    return _parse_name(stem, stem)


def _read_split_lists(split_dir: Path) -> dict[str, str] | None:
    """Sample id -> split from the three list files, None when none of them is there."""
    paths = {s: split_dir / f for s, f in EUROSAT_SPLIT_FILES.items()}
    present = {s: p for s, p in paths.items() if p.is_file()}
    if not present:
        return None
    if len(present) < len(paths):
        missing = [str(p) for s, p in paths.items() if s not in present]
        raise ValueError(
            f"EuroSAT split lists incomplete: {', '.join(missing)} not found; expected all of "
            f"{', '.join(EUROSAT_SPLIT_FILES.values())} in {split_dir} "
            "(or none, for a seeded split)"
        )
    split_of: dict[str, str] = {}
    for split, path in present.items():
        require_file(path, f"the EuroSAT {split} list (one <Class>_<n>.jpg per line)")
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            name = line.strip()
            if not name:
                continue
            stem = Path(name).stem
            _parse_name(stem, f"{path}:{line_no}")
            if stem in split_of and split_of[stem] != split:
                raise ValueError(
                    f"{path}:{line_no}: {stem} is listed in both {split_of[stem]} and {split}"
                )
            split_of[stem] = split
    return split_of


def _stratified(
    by_class: Mapping[str, Sequence[str]], fractions: Mapping[str, float], seed: int
) -> dict[str, str]:
    """Sample id -> split, each class shuffled and cut by ``fractions`` (rounded, the last split
    taking the rest). A class is shuffled with its own generator, seeded by ``seed`` and the
    class's label, so its split depends only on ``seed`` and the files of that class (a class
    missing from a partial download leaves the others as they are)."""
    names = list(fractions)
    values = np.asarray([fractions[n] for n in names], dtype=float)
    if not names or np.any(values < 0) or not np.isclose(values.sum(), 1.0):
        raise ValueError(
            f"split fractions must be non-negative and sum to 1, got {dict(fractions)}"
        )
    if seed < 0:
        raise ValueError(f"the split seed must be a non-negative integer, got {seed}")
    split_of: dict[str, str] = {}
    for label, class_name in enumerate(EUROSAT_CLASS_COUNTS):
        ids = list(by_class.get(class_name, ()))
        order = np.random.default_rng([seed, label]).permutation(len(ids))
        bounds = np.rint(np.cumsum(values) * len(ids)).astype(int)
        bounds[-1] = len(ids)
        start = 0
        for name, stop in zip(names, bounds, strict=True):
            for i in order[start:stop]:
                split_of[ids[i]] = name
            start = stop
    return split_of


def list_eurosat(
    root: str | Path,
    *,
    split_dir: str | Path | None = None,
    seed: int = 0,
    fractions: Mapping[str, float] | None = None,
) -> Inventory[EuroSATSample]:
    """The EuroSAT samples under ``root`` with their class, label and split.

    ``split_dir`` holds the split lists (default ``root``); without them every class is split
    with ``seed`` by ``fractions`` (default 60 / 20 / 20 % train / val / test, the proportions
    of the published lists). No image is opened: a missing class folder, a class folder
    without any ``.tif``, a listed file that is absent and an empty file (interrupted download)
    go to ``incomplete``; a file on disk that no split list names is left out.

    Raises:
        ValueError: no class folder under ``root``; a class folder holding only JPEG files (the
            RGB edition); a file in a class folder, or a line of a split list, that is not
            ``<Class>_<n>``; only some of the split lists present, or one of them empty.
    """
    root = Path(root)
    image_dir = eurosat_image_dir(root)
    found: dict[str, Path] = {}
    incomplete: list[Incomplete] = []
    for class_name in EUROSAT_CLASS_COUNTS:
        class_dir = image_dir / class_name
        if not class_dir.is_dir():
            incomplete.append(
                Incomplete(class_name, (f"{relative(class_dir, root)}/ (class folder)",))
            )
            continue
        files = sorted(class_dir.iterdir())
        tifs = [p for p in files if p.suffix.lower() in (".tif", ".tiff")]
        if not tifs:
            if any(p.suffix.lower() in (".jpg", ".jpeg") for p in files):
                raise ValueError(
                    f"{class_dir}: JPEG files only (the RGB edition of EuroSAT); expected the "
                    f"multispectral GeoTIFFs {class_name}/{class_name}_<n>.tif (EuroSAT_MS)"
                )
            incomplete.append(
                Incomplete(class_name, (f"{relative(class_dir, root)}/ (no .tif file)",))
            )
            continue
        for path in tifs:
            name_class, _ = _parse_name(path.stem, str(path))
            if name_class != class_name:
                raise ValueError(
                    f"{path}: a {name_class} file in the {class_name} folder; expected "
                    f"{class_name}/{class_name}_<n>.tif"
                )
            if is_present(path):
                found[path.stem] = path
            else:
                incomplete.append(Incomplete(path.stem, (f"{relative(path, root)} (empty)",)))

    split_of = _read_split_lists(Path(split_dir) if split_dir is not None else root)
    if split_of is None:
        by_class: dict[str, list[str]] = {}
        for stem in sorted(found, key=_order):
            by_class.setdefault(_parse_name(stem, "")[0], []).append(stem)
        split_of = _stratified(by_class, fractions or {"train": 0.6, "val": 0.2, "test": 0.2}, seed)
    else:
        reported = {i.sample_id for i in incomplete}
        for stem in sorted(split_of, key=_order):
            class_name = _parse_name(stem, "")[0]
            if stem not in found and stem not in reported and class_name not in reported:
                expected = image_dir / class_name / f"{stem}.tif"
                incomplete.append(Incomplete(stem, (relative(expected, root),)))

    samples = []
    for stem in sorted(found, key=_order):
        if stem in split_of:
            class_name = _order(stem)[0]
            label = EUROSAT_CLASSES.names.index(class_name)
            samples.append(EuroSATSample(stem, found[stem], class_name, label, split_of[stem]))
    return Inventory(tuple(samples), tuple(incomplete))


def read_eurosat(path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """One EuroSAT GeoTIFF as ``uint16`` DN ``[13, 64, 64]`` in Sentinel-2 band order, with
    the band names (:data:`s2ssl.bands.BAND_NAMES`).

    Raises:
        ValueError: the file is missing, empty or unreadable, or not 13 bands of 64 x 64
            integer pixels; the message names the file.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    path = require_file(Path(path), "an EuroSAT GeoTIFF (13 bands, 64 x 64)")
    try:
        with rasterio.open(path) as src:
            count, height, width = src.count, src.height, src.width
            if count != len(EUROSAT_FILE_BANDS) or (height, width) != (EUROSAT_SIZE,) * 2:
                raise ValueError(
                    f"{path}: {count} band(s) of {height} x {width}; expected an EuroSAT "
                    f"GeoTIFF of {len(EUROSAT_FILE_BANDS)} bands "
                    f"({', '.join(EUROSAT_FILE_BANDS)}) of {EUROSAT_SIZE} x {EUROSAT_SIZE}"
                )
            array = src.read()
    except RasterioIOError as e:
        raise ValueError(f"{path}: not a readable GeoTIFF ({e})") from None
    dn = as_dn(array, path)
    return select_bands(dn, EUROSAT_FILE_BANDS, BAND_NAMES, axis=0, what=str(path)), BAND_NAMES

"""Finding the images to import: multiband files or folders of band files, their bands and
acquisition dates."""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from s2ssl.bands import BAND_NAMES, L2A_BAND_NAMES
from s2ssl.config import LocalDatasetSpec

_BAND_RE: Final = re.compile(r"(?:^|[_\-.])(B0[1-9]|B1[0-2]|B8A)$", re.IGNORECASE)
_SCL_RE: Final = re.compile(r"(?:^|[_\-.])SCL$", re.IGNORECASE)
_DATE_RE: Final = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)")
_TIF: Final[tuple[str, ...]] = (".tif", ".tiff")


class ImportProblemError(ValueError):
    """Why one image or sample cannot be imported; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ImageUnit:
    """One dated image: a multi-band file or a folder of band files."""

    name: str
    path: Path
    """The file (multiband) or the folder (band files)."""
    kind: str
    band_files: dict[str, Path] = field(default_factory=dict)
    scl: Path | None = None

    @property
    def label_dir(self) -> Path:
        """Where this image's label rasters lie."""
        return self.path if self.kind == "band_files" else self.path.parent


def multiband_order(count: int, band_order: list[str] | None) -> tuple[str, ...] | None:
    """The bands of a multiband file of ``count`` bands: ``band_order`` when given, else all 13
    (13 bands) or Level-2A's 12 (12 bands); None when the count does not fit."""
    if band_order is not None:
        return tuple(band_order) if count == len(band_order) else None
    return {len(BAND_NAMES): BAND_NAMES, len(L2A_BAND_NAMES): L2A_BAND_NAMES}.get(count)


def held_bands(unit: ImageUnit, spec: LocalDatasetSpec) -> tuple[str, ...]:
    """The bands ``unit`` holds (band files: those present; multiband: from its band count and
    ``band_order``); empty when unreadable or the count fits no rule (reported on import)."""
    if unit.kind == "band_files":
        return tuple(b for b in BAND_NAMES if b in unit.band_files)
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(unit.path) as src:
            count = src.count
    except (RasterioError, OSError):
        return ()
    return multiband_order(count, spec.band_order) or ()


# --------------------------------------------------------------------------- discovery
def band_of(path: Path) -> str | None:
    """The band a single-band file holds, from its name (``..._B8A.tif`` -> ``B8A``)."""
    m = _BAND_RE.search(path.stem)
    return m.group(1).upper() if m else None


def discover(root: Path, spec: LocalDatasetSpec) -> list[ImageUnit]:
    """Every image under ``root`` (recursively), in path order."""
    suffixes = tuple(spec.labels.values())
    units: list[ImageUnit] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        folder = Path(dirpath)
        tifs = sorted(folder / f for f in filenames if f.lower().endswith(_TIF))
        tifs = [t for t in tifs if not (suffixes and t.stem.endswith(suffixes))]
        bands = {b: t for t in tifs if (b := band_of(t)) is not None}
        scl = next((t for t in tifs if _SCL_RE.search(t.stem)), None)
        if bands and spec.layout in ("auto", "band_files"):
            units.append(ImageUnit(folder.name, folder, "band_files", bands, scl))
        if spec.layout in ("auto", "multiband"):
            for t in tifs:
                if t not in bands.values() and t != scl:
                    units.append(ImageUnit(t.stem, t, "multiband"))
    return units


def acquisition_date(unit: ImageUnit) -> dt.date:
    """From the name (``YYYYMMDD``), else from the TIFF date tags."""
    for text in (unit.name, unit.path.name):
        for m in _DATE_RE.finditer(text):
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    import rasterio
    from rasterio.errors import RasterioError

    probe = unit.path if unit.kind == "multiband" else next(iter(unit.band_files.values()))
    try:
        with rasterio.open(probe) as src:
            tags = src.tags()
    except (RasterioError, OSError) as e:
        raise ImportProblemError("unreadable", f"{probe}: {e}") from None
    for key in ("ACQUISITION_DATE", "DATE", "TIFFTAG_DATETIME", "datetime"):
        value = tags.get(key)
        if value:
            m = _DATE_RE.search(value.replace("-", "").replace(":", ""))
            if m:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    raise ImportProblemError(
        "no acquisition date",
        f"{unit.path}: put YYYYMMDD in the name or an ACQUISITION_DATE tag in the file",
    )

"""The ``fetch.local`` section: your own GeoTIFFs, one :class:`LocalDatasetSpec` per dataset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from s2ssl.bands import BAND_NAMES
from s2ssl.config.common import SplitFractions, StrictModel

__all__ = ["LocalDatasetSpec", "LocalSource"]


class LocalDatasetSpec(StrictModel):
    """One dataset imported from GeoTIFFs under ``path``.

    ``layout: multiband`` — every ``*.tif`` is one image with all bands (``band_order`` names
    them; by default 13 bands in Sentinel-2 order, or 12 without B10 for Level-2A);
    ``band_files`` — one GeoTIFF per band (``*_B02.tif``, …, the BigEarthNet layout), one folder
    per image, 20 m / 60 m bands resampled to the 10 m grid; ``auto`` tells them apart.
    With ``n_dates > 1`` each sub-folder of ``path`` is one sample holding its dated images.
    Label rasters lie beside an image as ``<image name><suffix>.tif``; ``label_classes`` maps
    every raster value of each (landcover / croptype) label raster to a class name: it defines
    the dataset's class set (class order: ascending raster value). ``ignore_values`` lists raster
    values meaning "no label" (stored as 255); any other unmapped value fails the import.
    """

    path: Path
    layout: Literal["auto", "multiband", "band_files"] = "auto"
    band_order: list[str] | None = Field(
        default=None, description="band names of multiband files, in file order"
    )
    patch_size: int = Field(default=64, ge=8, le=4096, description="images are tiled into these")
    n_dates: int = Field(default=1, ge=1, le=64)
    region: str = Field(default="local", pattern=r"^[a-z][a-z0-9_]*$")
    processing_baseline: str = Field(
        default="by_date", description='"by_date", or one baseline such as "04.00" for all files'
    )
    harmonized: bool = Field(
        default=False, description="DN already without the 04.00 offset (dn_offset 0)"
    )
    resampling: Literal["bilinear", "nearest", "cubic", "average"] = "bilinear"
    labels: dict[Literal["landcover", "croptype", "parcel"], str] = Field(
        default_factory=dict, description="label array -> file-name suffix, e.g. _landcover"
    )
    label_classes: dict[Literal["landcover", "croptype"], dict[int, str]] = Field(
        default_factory=dict,
        description="label array -> {raster value: class name}; required for every label raster",
    )
    ignore_values: dict[Literal["landcover", "croptype"], list[int]] = Field(
        default_factory=dict,
        description='label array -> raster values meaning "no label" (stored as 255)',
    )
    splits: SplitFractions = SplitFractions(train=0.7, val=0.15, test=0.15)

    @field_validator("band_order")
    @classmethod
    def _bands(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        unknown = [b for b in v if b not in BAND_NAMES]
        if unknown:
            raise ValueError(f"unknown band(s) {unknown}; Sentinel-2 bands are {list(BAND_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"band names must be unique, got {v}")
        return v

    @field_validator("processing_baseline")
    @classmethod
    def _baseline(cls, v: str) -> str:
        if v != "by_date" and not re.fullmatch(r"\d{2}\.\d{2}", v):
            raise ValueError(f'must be "by_date" or a baseline like "04.00", got {v!r}')
        return v

    @model_validator(mode="after")
    def _label_mappings(self) -> LocalDatasetSpec:
        for name in ("landcover", "croptype"):
            mapping = self.label_classes.get(name)
            if name in self.labels and not mapping:
                raise ValueError(
                    f"labels.{name} is set but label_classes.{name} is missing: map every raster "
                    f"value of the label files to a class name, e.g. label_classes: {{{name}: "
                    f"{{1: meadow, 2: wheat}}}}, and list no-label values in ignore_values: "
                    f"{{{name}: [0]}}"
                )
            both = sorted(set(mapping or {}) & set(self.ignore_values.get(name, [])))
            if both:
                raise ValueError(
                    f"raster value(s) {both} are both in label_classes.{name} and "
                    f"ignore_values.{name}"
                )
        stray = sorted(set(self.label_classes) - set(self.labels))
        if stray:
            raise ValueError(
                f"label_classes lists {stray} but labels has no file suffix for them "
                "(labels: {name: _suffix})"
            )
        return self


class LocalSource(StrictModel):
    """Bring your own GeoTIFFs: one :class:`LocalDatasetSpec` per dataset name."""

    unlabelled: LocalDatasetSpec | None = None
    landcover: LocalDatasetSpec | None = None
    croptype: LocalDatasetSpec | None = None

"""The class sets of the label arrays and their display colours.

A class's label value is its position in its tuple; :data:`LABEL_IGNORE` marks unlabelled
pixels. The colours are ``#rrggbb`` strings in class order (quicklooks, reports, prediction maps).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CROPS",
    "CROP_CLASSES",
    "CROP_COLOURS",
    "LABEL_CLASSES",
    "LABEL_IGNORE",
    "LANDCOVER_CLASSES",
    "LANDCOVER_COLOURS",
]

LANDCOVER_CLASSES: Final[tuple[str, ...]] = (
    "water",
    "forest",
    "grassland",
    "cropland",
    "artificial",
    "bare",
    "wetland",
)
"""Land-cover classes; a class's label value is its position here."""

CROP_CLASSES: Final[tuple[str, ...]] = (
    "background",
    "winter_wheat",
    "winter_barley",
    "rapeseed",
    "maize",
    "soybean",
    "sunflower",
    "sugar_beet",
    "potato",
)
"""Crop-type classes; 0 is background (not cropland, or a parcel boundary)."""

CROPS: Final[tuple[str, ...]] = CROP_CLASSES[1:]
"""The crops proper (:data:`CROP_CLASSES` without the background)."""

LABEL_IGNORE: Final[int] = 255
"""Label value of unlabelled / unknown pixels (excluded from losses and metrics)."""

LABEL_CLASSES: Final[dict[str, tuple[str, ...]]] = {
    "landcover": LANDCOVER_CLASSES,
    "croptype": CROP_CLASSES,
}
"""The class set of each label array a dataset may carry."""

LANDCOVER_COLOURS: Final[tuple[str, ...]] = (
    "#1f78b4",  # water
    "#1b5e20",  # forest
    "#9ccc65",  # grassland
    "#f0c419",  # cropland
    "#d32f2f",  # artificial
    "#bcaaa4",  # bare
    "#4db6ac",  # wetland
)
"""Display colour of each of :data:`LANDCOVER_CLASSES`."""

CROP_COLOURS: Final[tuple[str, ...]] = (
    "#e6e6e6",  # background
    "#c49a00",  # winter wheat
    "#8d6e63",  # winter barley
    "#ffeb3b",  # rapeseed
    "#2e7d32",  # maize
    "#7cb342",  # soybean
    "#ff9800",  # sunflower
    "#ab47bc",  # sugar beet
    "#5c6bc0",  # potato
)
"""Display colour of each of :data:`CROP_CLASSES`."""

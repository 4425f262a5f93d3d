"""The synthetic world's own class vocabulary: land-cover and crop-type classes and colours.

Only the synthetic source (and the configuration of its regions) speaks this vocabulary; a real
dataset declares its own :class:`~s2ssl.classes.ClassSet` in its attrs. A class's stored label
value is its position in the tuples below (so is its raster value in the world).
"""

from __future__ import annotations

from typing import Final

from s2ssl.classes import ClassSet

__all__ = [
    "CROPS",
    "CROP_CLASSES",
    "CROP_COLOURS",
    "LABEL_CLASSES",
    "LANDCOVER_CLASSES",
    "LANDCOVER_COLOURS",
    "SYNTHETIC_CLASS_SETS",
    "SYNTHETIC_CROPTYPE",
    "SYNTHETIC_LANDCOVER",
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
"""Land-cover classes of the synthetic world; a class's label value is its position here."""

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
"""Crop-type classes of the synthetic world; 0 is background (not cropland, or a parcel edge)."""

CROPS: Final[tuple[str, ...]] = CROP_CLASSES[1:]
"""The crops proper (:data:`CROP_CLASSES` without the background)."""

LABEL_CLASSES: Final[dict[str, tuple[str, ...]]] = {
    "landcover": LANDCOVER_CLASSES,
    "croptype": CROP_CLASSES,
}
"""The class names of each label array the synthetic world renders."""

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

SYNTHETIC_LANDCOVER: Final[ClassSet] = ClassSet.from_names(LANDCOVER_CLASSES, LANDCOVER_COLOURS)
"""The synthetic ``landcover`` label array's class set (raster value = stored value)."""

SYNTHETIC_CROPTYPE: Final[ClassSet] = ClassSet.from_names(CROP_CLASSES, CROP_COLOURS)
"""The synthetic ``croptype`` label array's class set (raster value = stored value)."""

SYNTHETIC_CLASS_SETS: Final[dict[str, ClassSet]] = {
    "landcover": SYNTHETIC_LANDCOVER,
    "croptype": SYNTHETIC_CROPTYPE,
}
"""The class set of each label array of a synthetic dataset."""

"""Tests of s2ssl.synthetic_vocabulary: the synthetic world's classes, their order and colours."""

from __future__ import annotations

import re

from s2ssl.classes import LABEL_IGNORE
from s2ssl.synthetic_vocabulary import (
    CROP_CLASSES,
    CROP_COLOURS,
    CROPS,
    LABEL_CLASSES,
    LANDCOVER_CLASSES,
    LANDCOVER_COLOURS,
    SYNTHETIC_CLASS_SETS,
    SYNTHETIC_CROPTYPE,
    SYNTHETIC_LANDCOVER,
)


def test_landcover_classes_in_label_order() -> None:
    assert LANDCOVER_CLASSES == (
        "water",
        "forest",
        "grassland",
        "cropland",
        "artificial",
        "bare",
        "wetland",
    )
    assert LANDCOVER_CLASSES.index("cropland") == 3


def test_crop_classes_start_with_background() -> None:
    assert CROP_CLASSES[0] == "background"
    assert len(CROP_CLASSES) == 9
    assert CROP_CLASSES.index("maize") == 4
    assert CROPS == (
        "winter_wheat",
        "winter_barley",
        "rapeseed",
        "maize",
        "soybean",
        "sunflower",
        "sugar_beet",
        "potato",
    )


def test_label_classes_per_label_array() -> None:
    assert set(LABEL_CLASSES) == {"landcover", "croptype"}
    assert LABEL_CLASSES["landcover"] is LANDCOVER_CLASSES
    assert LABEL_CLASSES["croptype"] is CROP_CLASSES


def test_ignore_value_is_not_a_class() -> None:
    assert LABEL_IGNORE == 255
    assert max(len(c) for c in LABEL_CLASSES.values()) < LABEL_IGNORE


def test_one_distinct_hex_colour_per_class() -> None:
    for names, colours in ((LANDCOVER_CLASSES, LANDCOVER_COLOURS), (CROP_CLASSES, CROP_COLOURS)):
        assert len(colours) == len(names)
        assert len(set(colours)) == len(colours)
        assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert LANDCOVER_COLOURS[0] == "#1f78b4"  # water is blue
    assert CROP_COLOURS[0] == "#e6e6e6"  # background is light grey


def test_class_sets_carry_names_values_and_colours() -> None:
    assert SYNTHETIC_LANDCOVER.names == LANDCOVER_CLASSES
    assert SYNTHETIC_LANDCOVER.values == tuple(range(len(LANDCOVER_CLASSES)))
    assert SYNTHETIC_LANDCOVER.colours == LANDCOVER_COLOURS
    assert SYNTHETIC_CROPTYPE.names == CROP_CLASSES
    assert SYNTHETIC_CROPTYPE.colours == CROP_COLOURS
    assert SYNTHETIC_CLASS_SETS == {
        "landcover": SYNTHETIC_LANDCOVER,
        "croptype": SYNTHETIC_CROPTYPE,
    }
    assert SYNTHETIC_CROPTYPE.ignored_values == ()

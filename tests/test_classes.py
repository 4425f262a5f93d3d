"""Tests of s2ssl.classes: the class sets, their label values and colours."""

from __future__ import annotations

import re

from s2ssl.classes import (
    CROP_CLASSES,
    CROP_COLOURS,
    CROPS,
    LABEL_CLASSES,
    LABEL_IGNORE,
    LANDCOVER_CLASSES,
    LANDCOVER_COLOURS,
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


def test_class_set_round_trips_and_fills_colours() -> None:
    from s2ssl.classes import FALLBACK_PALETTE, ClassSet, LabelClass

    cs = ClassSet((LabelClass("meadow", 1, "#00ff00"), LabelClass("wheat", 2)), (0, 19))
    assert ClassSet.from_json(cs.to_json()) == cs
    assert cs.names == ("meadow", "wheat") and cs.values == (1, 2)
    assert cs.colours == ("#00ff00", FALLBACK_PALETTE[1])
    assert ClassSet.from_json(["a", "b"]).values == (0, 1)


def test_class_set_rejects_inconsistent_declarations() -> None:
    import pytest

    from s2ssl.classes import ClassSet, LabelClass

    with pytest.raises(ValueError, match=r"raster value.*1 declared more than once"):
        ClassSet((LabelClass("a", 1), LabelClass("b", 1)))
    with pytest.raises(ValueError, match=r"raster value\(s\) \[0\] are both"):
        ClassSet((LabelClass("a", 0),), (0,))
    with pytest.raises(ValueError, match="#rrggbb"):
        ClassSet((LabelClass("a", 0, "green"),))

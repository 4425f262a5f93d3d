"""Tests of s2ssl.classes: class sets, their raster values and colours."""

from __future__ import annotations

from s2ssl.classes import LABEL_IGNORE


def test_ignore_value_is_the_top_of_uint8() -> None:
    assert LABEL_IGNORE == 255


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

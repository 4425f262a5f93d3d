"""Band matching by name: input band lists, defaults by count, missing bands named."""

from __future__ import annotations

import pytest

from s2ssl.bands import BAND_NAMES, BAND_PRESETS, L2A_BAND_NAMES
from s2ssl.inference.bandmatch import (
    band_label,
    default_band_order,
    model_band_positions,
    parse_band_option,
)


def test_band_option_presets_and_lists_in_file_order() -> None:
    assert parse_band_option("l2a") == L2A_BAND_NAMES
    assert parse_band_option("L1C") == BAND_NAMES
    assert parse_band_option("b08, B4 ,b03,B02") == ("B08", "B04", "B03", "B02")
    assert parse_band_option(["B8A", "B02"]) == ("B8A", "B02")
    assert parse_band_option("B04") == ("B04",)
    with pytest.raises(ValueError, match="neither a preset"):
        parse_band_option("sentinel")
    with pytest.raises(ValueError, match="unknown Sentinel-2 band"):
        parse_band_option("B02,B13")
    with pytest.raises(ValueError, match="more than once"):
        parse_band_option("B02,B2,B02")


def test_default_order_only_for_unambiguous_counts() -> None:
    assert default_band_order(13, "x.tif") == BAND_NAMES
    assert default_band_order(12, "x.tif") == L2A_BAND_NAMES
    assert default_band_order(10, "x.tif") == BAND_PRESETS["pastis"]
    with pytest.raises(ValueError, match=r"x\.tif: its 4 bands carry no .* give --bands"):
        default_band_order(4, "x.tif")


def test_band_label_names_presets_in_any_order() -> None:
    assert band_label(L2A_BAND_NAMES) == "l2a"
    assert band_label(("B04", "B03", "B02")) == "rgb"
    assert band_label(("B04", "B08")) == "B04,B08"


def test_superset_is_reduced_by_name_and_missing_bands_are_named() -> None:
    have = ("B08", None, "B04", "B03", "B02")  # None: a mask band
    assert model_band_positions(have, ("B02", "B03", "B04", "B08"), "a.tif") == [4, 3, 2, 0]
    with pytest.raises(ValueError) as e:
        model_band_positions(L2A_BAND_NAMES, BAND_NAMES, "x.tif")
    message = str(e.value)
    assert message.startswith("x.tif lacks band B10 that the model (trained on l1c) needs")
    assert "use a model trained on l2a or rgb or pastis" in message
    assert "never filled in" in message
    with pytest.raises(ValueError, match=r"lacks bands B05, B11 .* holds B02, B03 \(B02,B03\)"):
        model_band_positions(("B02", "B03"), ("B02", "B05", "B11"), "y.tif")

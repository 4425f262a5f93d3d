"""Which bands an input holds and which of them a model reads, by name.

An input's bands come, in order of precedence, from its own band names (GeoTIFF band
descriptions, a store dataset's ``bands``), from a band list the user gives (``--bands``: a preset
of :data:`~s2ssl.bands.BAND_PRESETS` or band names in the file's order), or — only where the
band count is unambiguous — from the count (:data:`DEFAULT_BAND_ORDERS`: 13 = ``l1c``,
12 = ``l2a``, 10 = ``pastis``). The model's bands are then selected by name
(:func:`model_band_positions`): a superset is reduced, any order is handled, a band the model
needs that the input lacks is an error naming it. A missing band is never filled in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from s2ssl.bands import BAND_NAMES, BAND_PRESETS, missing_bands, resolve_bands

__all__ = [
    "DEFAULT_BAND_ORDERS",
    "BandSpec",
    "band_label",
    "default_band_order",
    "model_band_positions",
    "parse_band_name",
    "parse_band_option",
]

DEFAULT_BAND_ORDERS: Final[dict[int, tuple[str, ...]]] = {
    len(BAND_PRESETS["l1c"]): BAND_PRESETS["l1c"],
    len(BAND_PRESETS["l2a"]): BAND_PRESETS["l2a"],
    len(BAND_PRESETS["pastis"]): BAND_PRESETS["pastis"],
}
"""Band order assumed for inputs whose bands carry no names, by band count (13 → ``l1c``,
12 → ``l2a``, 10 → ``pastis``); any other count needs its bands named."""

_BAND_RE = re.compile(r"^(?:S2[AB]?[\s_-]*)?B(?:AND)?[\s_-]*0*(8A|\d{1,2})(?![0-9A-Z])", re.I)

BandSpec = str | Sequence[str]
"""An input band list as given: a preset name, a comma-separated list, or a sequence of names."""


def parse_band_name(text: str | None) -> str | None:
    """The Sentinel-2 band named by a band description or a user's band name (``"B2"``,
    ``"b8a"``, ``"Band 4"``, ``"B04 (red)"`` -> ``"B02"``, ``"B8A"``, ``"B04"``), else None."""
    if not text:
        return None
    m = _BAND_RE.match(text.strip())
    if m is None:
        return None
    code = m.group(1).upper()
    name = "B8A" if code == "8A" else f"B{int(code):02d}"
    return name if name in BAND_NAMES else None


def band_label(bands: Sequence[str]) -> str:
    """The preset name of ``bands`` when they are exactly a preset's bands (any order), else the
    comma-joined names (for messages and metadata)."""
    for name, preset in BAND_PRESETS.items():
        if len(preset) == len(bands) and set(preset) == set(bands):
            return name
    return ",".join(bands)


def parse_band_option(spec: BandSpec) -> tuple[str, ...]:
    """The bands of an input, in the input's band order, from ``spec``: a preset name (its
    Sentinel-2 order), a comma-separated list of band names or a sequence of them (the order
    given, which is the file's order).

    Raises:
        ValueError: an unknown preset or band name, a repeated band, an empty list.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in BAND_PRESETS:
            return BAND_PRESETS[text.lower()]
        names = [_band_name(p) for p in text.split(",") if p.strip()]
        if "," not in text and names and names[0] not in BAND_NAMES:
            raise ValueError(
                f"--bands {spec!r} is neither a preset ({', '.join(BAND_PRESETS)}) nor a "
                "comma-separated list of band names in the file's order (e.g. B04,B03,B02)"
            )
    else:
        names = [_band_name(str(b)) for b in spec]
    resolve_bands(names)  # unknown / repeated / empty: an error saying what is valid
    return tuple(names)


def _band_name(text: str) -> str:
    """``text`` as a canonical band name (``"b4"`` -> ``"B04"``); unknown names are returned
    as given, for :func:`~s2ssl.bands.resolve_bands` to report."""
    return parse_band_name(text) or text.strip()


def default_band_order(count: int, source: str) -> tuple[str, ...]:
    """The band order assumed for an input of ``count`` unnamed bands.

    Raises:
        ValueError: the count is not one of :data:`DEFAULT_BAND_ORDERS`; the message asks for
            ``--bands``.
    """
    order = DEFAULT_BAND_ORDERS.get(count)
    if order is None:
        counts = ", ".join(f"{n} = {band_label(b)}" for n, b in DEFAULT_BAND_ORDERS.items())
        raise ValueError(
            f"{source}: its {count} bands carry no Sentinel-2 band names and {count} bands do not "
            f"tell which they are (unnamed inputs are read by count only for {counts}); give "
            f"--bands (a preset: {', '.join(BAND_PRESETS)}; or the file's bands in order, e.g. "
            "--bands B04,B03,B02,B08) or set band descriptions such as 'B02' (rasterio's "
            "set_band_description, gdal_edit.py)"
        )
    return order


def model_band_positions(
    available: Sequence[str | None], wanted: Sequence[str], source: str
) -> list[int]:
    """0-based positions in ``available`` (the input's bands; None for a non-band such as a
    mask) of each band of ``wanted`` (the model's bands, model order).

    Raises:
        ValueError: ``source`` lacks bands the model needs; the message names them, the bands the
            input holds, and the presets a model could be trained on to read this input.
    """
    present = [b for b in available if b is not None]
    missing = missing_bands(present, wanted)
    if missing:
        usable = [
            name for name, preset in BAND_PRESETS.items() if not missing_bands(present, preset)
        ]
        hint = (
            f"use a model trained on {' or '.join(usable)}"
            if usable
            else "use a model trained on the bands the input holds"
        )
        raise ValueError(
            f"{source} lacks band{'s' if len(missing) > 1 else ''} {', '.join(missing)} that the "
            f"model (trained on {band_label(wanted)}) needs; the input holds "
            f"{', '.join(present) or 'no named band'} ({band_label(present) if present else '-'}): "
            f"{hint}, or give an input with {', '.join(missing)}. Bands are never filled in."
        )
    index = {b: i for i, b in enumerate(available) if b is not None}
    return [index[b] for b in wanted]

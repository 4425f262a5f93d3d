"""Class sets of label arrays: names, the raster values they came from, display colours.

A dataset declares the :class:`ClassSet` of each label array it holds (``meta.json``); in the
stored label array a class is its position in the set and :data:`LABEL_IGNORE` marks unlabelled
pixels. Colours are ``#rrggbb`` strings (quicklooks, reports, prediction maps).

The synthetic world's own vocabulary lives in :mod:`s2ssl.synthetic_vocabulary`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "FALLBACK_PALETTE",
    "LABEL_IGNORE",
    "ClassSet",
    "LabelClass",
]

LABEL_IGNORE: Final[int] = 255
"""Label value of unlabelled / unknown pixels (excluded from losses and metrics)."""


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

FALLBACK_PALETTE: Final[tuple[str, ...]] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
"""Colours of classes that declare none (matplotlib's tab10 + tab20 light tones), cycled."""


@dataclass(frozen=True, slots=True)
class LabelClass:
    """One class: its name, the raster value that marks it in the source data, its colour."""

    name: str
    value: int
    colour: str | None = None


@dataclass(frozen=True)
class ClassSet:
    """The classes of one label array, in stored-label order (class ``k`` is stored as ``k``).

    ``ignored_values`` are raster values of the source data declared as "no label" (stored as
    :data:`LABEL_IGNORE`).
    """

    classes: tuple[LabelClass, ...]
    ignored_values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("a class set needs at least one class")
        if len(self.classes) >= LABEL_IGNORE:
            raise ValueError(
                f"a class set holds at most {LABEL_IGNORE - 1} classes, got {len(self.classes)}"
            )
        names = [c.name for c in self.classes]
        values = [c.value for c in self.classes]
        for what, items in (("name", names), ("raster value", values)):
            repeated = sorted({str(x) for x in items if items.count(x) > 1})
            if repeated:
                raise ValueError(f"class {what}(s) {', '.join(repeated)} declared more than once")
        both = sorted(set(values) & set(self.ignored_values))
        if both:
            raise ValueError(f"raster value(s) {both} are both a class and ignored")
        bad = [
            c.colour for c in self.classes if c.colour is not None and not _COLOUR.match(c.colour)
        ]
        if bad:
            raise ValueError(f"class colours must be '#rrggbb', got {bad}")

    @classmethod
    def from_names(cls, names: Sequence[str], colours: Sequence[str] | None = None) -> ClassSet:
        """Classes whose raster value is their position (``colours``: one per class or none)."""
        if colours is not None and len(colours) != len(names):
            raise ValueError(f"{len(names)} class names but {len(colours)} colours")
        return cls(
            tuple(
                LabelClass(str(n), i, None if colours is None else colours[i])
                for i, n in enumerate(names)
            )
        )

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names in stored-label order."""
        return tuple(c.name for c in self.classes)

    @property
    def values(self) -> tuple[int, ...]:
        """Raster values of the source data, in stored-label order."""
        return tuple(c.value for c in self.classes)

    @property
    def colours(self) -> tuple[str, ...]:
        """A colour per class: the declared one, else :data:`FALLBACK_PALETTE` cycled."""
        return tuple(
            c.colour or FALLBACK_PALETTE[i % len(FALLBACK_PALETTE)]
            for i, c in enumerate(self.classes)
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (``meta.json`` of datasets and models)."""
        return {
            "classes": [
                {"name": c.name, "value": c.value, "colour": c.colour} for c in self.classes
            ],
            "ignored_values": list(self.ignored_values),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | Sequence[str]) -> ClassSet:
        """Inverse of :meth:`to_json`; a plain list of names is read as :meth:`from_names`."""
        if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
            return cls.from_names([str(n) for n in obj])
        if not isinstance(obj, Mapping) or "classes" not in obj:
            raise ValueError(f"not a class set: {obj!r} (expected {{'classes': [...]}})")
        try:
            classes = tuple(
                LabelClass(str(c["name"]), int(c["value"]), c.get("colour")) for c in obj["classes"]
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a class set ({e}): {obj!r}") from None
        return cls(classes, tuple(int(v) for v in obj.get("ignored_values", ())))

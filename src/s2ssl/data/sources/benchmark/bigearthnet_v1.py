"""BigEarthNet v1 (Sumbul et al. 2019): the original release's patch folders with 43 CLC level-3
labels each, mapped to the 19 classes of BigEarthNet-19.

Layout read (``BigEarthNet-S2-v1.0.tar.gz`` and the example patches of the
``bigearthnet-common`` wheel)::

    <root>/<name>/<name>_<band>.tif                (the 12 bands and sizes of v2)
    <root>/<name>/<name>_labels_metadata.json      {"labels": [43-class names], ...}

with the patch folders directly under ``<root>`` or one folder below it. The bands are read by
:func:`s2ssl.data.sources.benchmark.bigearthnet.read_bigearthnet`. v1 carries no split, so it
is not a ``fetch`` format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from s2ssl.data.sources.benchmark.bigearthnet import (
    BIGEARTHNET_CLASSES,
    BIGEARTHNET_V1_TO_19,
    BigEarthNetPatch,
    missing_band_files,
)
from s2ssl.data.sources.benchmark.common import Incomplete, Inventory, is_present, relative

__all__ = ["V1_LABELS_SUFFIX", "list_bigearthnet_v1", "to_19_classes"]

V1_LABELS_SUFFIX: Final[str] = "_labels_metadata.json"


def _v1_folders(root: Path) -> list[Path]:
    """Patch folders (``<name>/<name>_*``) in ``root`` or, when it has none, one level below."""

    def folders(base: Path) -> list[Path]:
        return sorted(
            d
            for d in base.iterdir()
            if d.is_dir() and any(f.name.startswith(f"{d.name}_") for f in d.iterdir())
        )

    if not root.is_dir():
        raise ValueError(f"{root}: not a folder; expected the BigEarthNet v1 patch folders")
    found = folders(root)
    if found:
        return found
    for sub in sorted(d for d in root.iterdir() if d.is_dir()):
        found = folders(sub)
        if found:
            return found
    raise ValueError(
        f"{root}: no BigEarthNet v1 patch folder found (in it or one level below); expected "
        f"<name>/<name>{V1_LABELS_SUFFIX} beside <name>/<name>_B01.tif ... _B12.tif"
    )


def _v1_labels(path: Path) -> tuple[str, ...]:
    """The 43-class labels of a v1 ``_labels_metadata.json``."""
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    raw = doc.get("labels") if isinstance(doc, Mapping) else None
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise ValueError(f"{path}: expected an object with 'labels', a list of class names")
    unknown = [n for n in raw if n not in BIGEARTHNET_V1_TO_19]
    if unknown:
        raise ValueError(
            f"{path}: unknown label(s) {', '.join(map(repr, unknown))}; expected names of the "
            "43 BigEarthNet v1 classes (BIGEARTHNET_V1_CLASSES)"
        )
    return tuple(raw)


def to_19_classes(labels: Iterable[str]) -> tuple[str, ...]:
    """v1 (43-class) names -> their BigEarthNet-19 classes, each once, in published order;
    classes BigEarthNet-19 drops contribute nothing."""
    new = {BIGEARTHNET_V1_TO_19[n] for n in labels} - {None}
    return tuple(n for n in BIGEARTHNET_CLASSES.names if n in new)


def list_bigearthnet_v1(root: str | Path) -> Inventory[BigEarthNetPatch]:
    """The BigEarthNet v1 patches under ``root`` with their labels mapped to the 19 classes.

    A patch goes to ``incomplete`` when its labels file or a band file is absent or empty, or
    when none of its 43-class labels has a 19-class counterpart (it is reported, not given a
    guessed label). ``split`` and ``country`` are None (v1 carries neither).

    Raises:
        ValueError: no patch folder under ``root`` (or one level below); a labels file that is
            not JSON with a ``labels`` list, or names a class outside the 43.
    """
    root = Path(root)
    patches: list[BigEarthNetPatch] = []
    incomplete: list[Incomplete] = []
    for folder in _v1_folders(root):
        name = folder.name
        labels_path = folder / f"{name}{V1_LABELS_SUFFIX}"
        if not is_present(labels_path):
            empty = " (empty)" if labels_path.exists() else ""
            incomplete.append(Incomplete(name, (f"{relative(labels_path, root)}{empty}",)))
            continue
        original = _v1_labels(labels_path)
        patch = BigEarthNetPatch(
            patch_id=name,
            path=folder,
            labels=to_19_classes(original),
            split=None,
            country=None,
            original_labels=original,
        )
        missing = missing_band_files(patch, root)
        if not patch.labels:
            missing += (
                f"{relative(labels_path, root)}: no BigEarthNet-19 class among its labels "
                f"({', '.join(original) or 'none'})",
            )
        if missing:
            incomplete.append(Incomplete(name, missing))
        else:
            patches.append(patch)
    return Inventory(tuple(patches), tuple(incomplete))

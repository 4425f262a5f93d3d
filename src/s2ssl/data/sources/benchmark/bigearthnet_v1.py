"""BigEarthNet v1 (Sumbul et al. 2019): the original release's patch folders with 43 CLC level-3
labels each, mapped to the 19 classes of BigEarthNet-19.

Layout read (``BigEarthNet-S2-v1.0.tar.gz`` and the example patches of the
``bigearthnet-common`` wheel)::

    <root>/<name>/<name>_<band>.tif                (the 12 bands and sizes of v2)
    <root>/<name>/<name>_labels_metadata.json      {"labels": [43-class names], ...}

with the patch folders directly under ``<root>`` or one folder below it. The bands are read by
:func:`s2ssl.data.sources.benchmark.bigearthnet.read_bigearthnet`.

v1 carries no split: the splits come as patch-name lists published beside it
(:func:`split_bigearthnet_v1`), one file per split, one patch per line:

* ``train.csv`` / ``val.csv`` / ``test.csv``: the BigEarthNet-19 lists of the BigEarthNet team
  (269,695 / 123,723 / 125,866 patches; patches with seasonal snow, cloud or shadow and those
  without a 19-class label already left out; CRLF line ends). The BigEarthNet-MM edition's
  rows pair the Sentinel-2 name with a Sentinel-1 name (``S2...,S1...``); TorchGeo saves them as
  ``bigearthnet-{train,val,test}.csv``;
* ``bigearthnet-{train,val,test}.txt``: the lists of Neumann et al. (2019), which SeCo uses
  (saved by its loader as ``{train,val,test}.txt``). SeCo removes the patches of
  ``patches_with_seasonal_snow.csv`` and ``patches_with_cloud_and_shadow.csv`` from them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from s2ssl.data.sources.benchmark.bigearthnet import (
    BIGEARTHNET_CLASSES,
    BIGEARTHNET_V1_TO_19,
    BigEarthNetPatch,
    missing_band_files,
)
from s2ssl.data.sources.benchmark.common import (
    Incomplete,
    Inventory,
    is_present,
    relative,
    require_file,
)

__all__ = [
    "V1_LABELS_SUFFIX",
    "V1_SNOW_CLOUD_FILES",
    "V1_SPLIT_FILES",
    "list_bigearthnet_v1",
    "read_patch_names",
    "split_bigearthnet_v1",
    "to_19_classes",
]

V1_LABELS_SUFFIX: Final[str] = "_labels_metadata.json"
V1_SPLIT_FILES: Final[Mapping[str, tuple[str, ...]]] = {
    split: (f"{split}.csv", f"bigearthnet-{split}.csv", f"bigearthnet-{split}.txt", f"{split}.txt")
    for split in ("train", "val", "test")
}
"""The names a split's patch list is looked for under (the first present is read; two present
for one split is an error: they are different splits)."""
V1_SNOW_CLOUD_FILES: Final[tuple[str, ...]] = (
    "patches_with_seasonal_snow.csv",
    "patches_with_cloud_and_shadow.csv",
)
"""The BigEarthNet team's lists of the patches with seasonal snow, and with cloud or shadow."""
_S2_NAME: Final = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d{5,6}_\d+_\d+$")


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


def read_patch_names(path: Path) -> list[str]:
    """The Sentinel-2 patch names of a list file, in file order.

    One patch per line; a line may pair it with other names (``S2...,S1...``), whose Sentinel-2
    field is taken; blank lines are skipped, and so is a first line without a patch name (a
    header).

    Raises:
        ValueError: the file is absent or empty, or a line (named by number) holds no
            Sentinel-2 patch name or more than one.
    """
    require_file(path, "a list of BigEarthNet v1 patch names, one per line")
    names: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if not any(fields):
            continue
        found = [f for f in fields if _S2_NAME.match(f)]
        if len(found) == 1:
            names.append(found[0])
        elif not (n == 1 and not found):
            raise ValueError(
                f"{path} line {n}: {line.strip()!r} holds {len(found)} Sentinel-2 patch names; "
                "expected one (like S2A_MSIL2A_20170613T101031_87_48) per line"
            )
    return names


def _split_lists(split_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, names in V1_SPLIT_FILES.items():
        present = [split_dir / n for n in names if (split_dir / n).exists()]
        if not present:
            raise ValueError(
                f"{split_dir}: no {split} list; expected one of {', '.join(names)} (the "
                "BigEarthNet-19 lists or those of Neumann et al., see docs/benchmarks.md)"
            )
        if len(present) > 1:
            raise ValueError(
                f"{split_dir}: {' and '.join(p.name for p in present)} both list the {split} "
                "split (different splits); keep the one to use"
            )
        found[split] = present[0]
    return found


def _snow_cloud(folders: Iterable[Path]) -> set[str]:
    """The patch names of both snow / cloud lists, each from the first folder that has it."""
    excluded: set[str] = set()
    folders = list(dict.fromkeys(folders))
    for name in V1_SNOW_CLOUD_FILES:
        path = next((f / name for f in folders if (f / name).exists()), None)
        if path is None:
            raise ValueError(
                f"exclude_snow_cloud needs {name} (from the BigEarthNet download page) in "
                f"{' or '.join(map(str, folders))}; put it there, or set "
                "fetch.benchmark.exclude_snow_cloud: false (the BigEarthNet-19 lists already "
                "leave those patches out)"
            )
        excluded.update(read_patch_names(path))
    return excluded


def split_bigearthnet_v1(
    inventory: Inventory[BigEarthNetPatch],
    split_dir: str | Path,
    *,
    exclude_snow_cloud: bool,
    root: str | Path | None = None,
) -> Inventory[BigEarthNetPatch]:
    """The listed patches of a v1 inventory, each with its split; the rest left out.

    The lists are read from ``split_dir`` (:data:`V1_SPLIT_FILES`). A patch in no list is not
    part of the benchmark and is dropped; a listed patch the download lacks (no folder, or
    incomplete) goes to ``incomplete``. With ``exclude_snow_cloud`` the patches of both
    :data:`V1_SNOW_CLOUD_FILES` (looked for in ``split_dir``, then ``root``) are dropped as
    well. Patches keep the inventory's order.

    Raises:
        ValueError: a split list is missing or present under two names, a line is not a patch
            name, a patch is listed in two splits, or a snow / cloud list is missing while
            ``exclude_snow_cloud`` is set.
    """
    split_dir = Path(split_dir)
    split_of: dict[str, str] = {}
    for split, path in _split_lists(split_dir).items():
        for name in read_patch_names(path):
            if split_of.setdefault(name, split) != split:
                raise ValueError(
                    f"{path}: patch {name} is also in the {split_of[name]} list; a patch "
                    "belongs to one split"
                )
    if exclude_snow_cloud:
        folders = [split_dir] + ([Path(root)] if root is not None else [])
        for name in _snow_cloud(folders):
            split_of.pop(name, None)
    samples = tuple(
        dataclasses.replace(p, split=split_of[p.patch_id])
        for p in inventory.samples
        if p.patch_id in split_of
    )
    incomplete = [i for i in inventory.incomplete if i.sample_id in split_of]
    on_disk = {p.patch_id for p in inventory.samples} | {i.sample_id for i in inventory.incomplete}
    incomplete += [
        Incomplete(name, (f"{name}/ (patch folder, listed in {split_of[name]})",), absent=True)
        for name in sorted(split_of.keys() - on_disk)
    ]
    return Inventory(samples, tuple(incomplete))

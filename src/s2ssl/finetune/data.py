"""The labelled data of each downstream task, per setting, split and label fraction.

* **Settings.** ``in_domain``: every region except ``params.holdout_region`` (the regions whose
  unlabelled imagery pre-training saw); ``transfer``: only the held-out region, which neither
  pre-training nor in-domain fine-tuning ever sees (Embedding Earth's cross-region claim).
* **Splits.** ``train`` (a label fraction of it trains the model), ``val`` (checkpoint
  selection), ``test`` (scored once, after training; nothing else reads it).
* **Label fractions** come from :func:`s2ssl.data.subsets.label_fraction_subset`: seeded,
  nested (1 % ⊂ 10 % ⊂ 100 %) and stratified by each sample's majority class (multi-label
  scenes: by its label set, rare label sets pooled, :func:`s2ssl.data.subsets.label_set_strata`).

Images are held in memory as int16 DN after the processing-baseline offset (reflectance × 1e4),
every band the dataset holds (:attr:`TaskData.bands`); :meth:`TaskData.band_indices` finds a
model's bands by name and :meth:`TaskSplit.reflectance` selects and scales them. The classes are
the dataset's own (:attr:`TaskData.class_set`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import torch
from torch import Tensor

from s2ssl.bands import band_positions
from s2ssl.classes import LABEL_IGNORE, ClassSet
from s2ssl.data.stats import NormStats
from s2ssl.data.store import StoreError
from s2ssl.data.subsets import label_fraction_subset, label_set_strata
from s2ssl.data.temporal import resolve_n_dates, series_lengths
from s2ssl.data.tensors import load_split
from s2ssl.data.tiles import cut_tiles
from s2ssl.data.validated import ValidatedDataset, open_validated
from s2ssl.taskspec import task_spec
from s2ssl.training.labels import majority_labels

__all__ = [
    "SETTINGS",
    "Setting",
    "TaskData",
    "TaskSplit",
    "has_scene_dataset",
    "load_task_data",
    "region_positions",
]

Setting = Literal["in_domain", "transfer"]
SETTINGS: Final[tuple[str, ...]] = ("in_domain", "transfer")


@dataclass(frozen=True)
class TaskSplit:
    """One split of a task in memory.

    Attributes:
        image: int16 ``[n, T, 13, H, W]`` DN after offset (T = 1 for single-date tasks).
        doy: int64 ``[n, T]`` day of year of every date.
        label: int64 ``[n, H, W]`` (segmentation) or ``[n]`` (scenes); 255 = unlabelled;
            multi-label scenes: int64 multi-hot ``[n, K]`` (0 / 1).
        ids: sample ids.
        strata: majority class per sample (stratified label fractions); multi-label scenes:
            the label set's stratum (:func:`~s2ssl.data.subsets.label_set_strata`).
    """

    image: Tensor
    doy: Tensor
    label: Tensor
    ids: tuple[str, ...]
    strata: np.ndarray
    bands: tuple[str, ...]
    """The bands on the image's band axis (every band the dataset holds)."""
    n_dates: Tensor | None = None
    """int64 ``[n]`` real dates per sample, the first ones of the date axis (the rest is padding);
    ``None``: every sample has all ``T`` dates (:mod:`s2ssl.data.temporal`)."""

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def subset(self, positions: np.ndarray | Sequence[int]) -> TaskSplit:
        """The samples at ``positions`` (in order)."""
        idx = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        pos = np.asarray(positions, dtype=np.int64)
        return TaskSplit(
            image=self.image[idx],
            doy=self.doy[idx],
            label=self.label[idx],
            ids=tuple(self.ids[i] for i in pos.tolist()),
            strata=self.strata[pos],
            bands=self.bands,
            n_dates=None if self.n_dates is None else self.n_dates[idx],
        )

    def band_indices(self, bands: Sequence[str], who: str = "the model") -> list[int]:
        """Positions of ``bands`` on the image's band axis, by name.

        Raises:
            ValueError: the data lack some of them (named, with what the data hold).
        """
        return band_positions(self.bands, bands, what=f"the data (needed by {who})")

    def reflectance(self, band_indices: Sequence[int], index: Tensor | None = None) -> Tensor:
        """Float reflectance of the selected bands: ``[n, T, C, H, W]`` (``index``: rows)."""
        image = self.image if index is None else self.image[index]
        return image[:, :, list(band_indices)].float() * 1e-4


@dataclass(frozen=True)
class TaskData:
    """Train / val / test of one task in one setting, with its classes and statistics."""

    task: str
    setting: str
    class_set: ClassSet
    """The dataset's classes of the task's label array."""
    train: TaskSplit
    val: TaskSplit
    test: TaskSplit
    norm_stats: NormStats
    manifest: dict[str, object]
    dataset_path: Path

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in label order."""
        return self.class_set.names

    @property
    def bands(self) -> tuple[str, ...]:
        """The bands of the in-memory images: every band the dataset holds, in its order."""
        return self.train.bands

    def series_length(self, n_dates: int | None, key: str) -> int:
        """The number of dates a time-series network takes on this data: ``n_dates`` when set,
        else the stored series length, which every sample of every split must then have
        (:func:`~s2ssl.data.temporal.resolve_n_dates`; ``key`` names the setting)."""
        parts = [
            None if s.n_dates is None else s.n_dates.numpy()
            for s in (self.train, self.val, self.test)
        ]
        return resolve_n_dates(n_dates, parts, int(self.train.image.shape[1]), key)

    def test_set_fingerprint(self) -> str:
        """SHA-256 naming this setting's test set: the raw data fingerprint and the test ids.

        Two models scored on the same fingerprint were scored on the same images and labels;
        promotion compares champions with challengers only then (``register.promote``).
        """
        record = {
            "task": self.task,
            "setting": self.setting,
            "data": self.manifest.get("raw_fingerprint"),
            "test_ids": list(self.test.ids),
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def fraction_positions(self, fraction: float, seed: int, min_samples: int) -> np.ndarray:
        """Positions in :attr:`train` of the labelled subset of ``fraction`` (nested)."""
        return label_fraction_subset(
            list(self.train.ids),
            fraction,
            seed,
            min_samples=min_samples,
            stratify=[int(s) for s in self.train.strata],
        )

    def fraction(self, fraction: float, seed: int, min_samples: int) -> TaskSplit:
        """The labelled training subset of ``fraction`` (nested across fractions)."""
        return self.train.subset(self.fraction_positions(fraction, seed, min_samples))


def region_positions(
    dataset: ValidatedDataset, split: str, setting: str, holdout: str | None
) -> np.ndarray:
    index = dataset.store.index
    if "split" not in index.columns:
        raise StoreError(f"{dataset.path} has no train/val/test split column")
    keep = index["split"].to_numpy() == split
    if holdout is not None:
        regions = index["region"].to_numpy()
        keep &= (regions == holdout) if setting == "transfer" else (regions != holdout)
    return np.flatnonzero(keep).astype(np.int64)


def _strata(label: Tensor, num_classes: int) -> np.ndarray:
    if label.ndim == 1:
        return label.numpy().astype(np.int64)
    if label.shape[0] == 0:
        return np.zeros(0, np.int64)
    major = majority_labels(label, num_classes, ignore_index=LABEL_IGNORE)
    return major.numpy().astype(np.int64)


def scene_tiles(patches: TaskSplit, tile: int, num_classes: int) -> TaskSplit:
    """EuroSAT-like scenes: ``tile × tile`` tiles of land-cover patches, labelled by majority.

    Each patch ``[T, C, H, W]`` is cut into ``(H / tile) · (W / tile)`` non-overlapping tiles (ids
    ``<patch id>#<k>``, row-major); a tile's label is the most frequent labelled land-cover class
    in it (:func:`~s2ssl.training.labels.majority_labels`); tiles without a labelled pixel are
    dropped. Tiles of one patch stay in the patch's split, so splits never share ground.
    """
    _, _, _, h, w = patches.image.shape
    if tile < 1 or h % tile or w % tile:
        raise ValueError(
            f"finetune.scene.tile_size {tile} must divide the land-cover patch size {h}x{w}"
        )
    per_patch = (h // tile) * (w // tile)
    image = cut_tiles(patches.image, tile)
    maps = cut_tiles(patches.label, tile)
    label = majority_labels(maps, num_classes, ignore_index=LABEL_IGNORE)
    doy = patches.doy.repeat_interleave(per_patch, dim=0)
    ids = tuple(f"{pid}#{k}" for pid in patches.ids for k in range(per_patch))
    tiles = TaskSplit(image, doy, label, ids, np.zeros(len(ids), np.int64), patches.bands)
    return tiles.subset(np.flatnonzero(label.numpy() != LABEL_IGNORE))


SCENE_DATASET: Final[str] = "scene"
SCENE_LABEL: Final[str] = "scene"


def has_scene_dataset(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` holds a ``scene`` dataset with one class per patch (a benchmark
    such as EuroSAT); the scene task then reads it instead of tiling land-cover patches."""
    path = Path(data_dir) / SCENE_DATASET
    if not path.is_dir():
        return False
    return SCENE_LABEL in open_validated(path).store.specs


def load_task_data(
    task: str,
    data_dir: str | Path,
    setting: str,
    holdout_region: str | None,
    *,
    scene_tile: int | None = None,
) -> TaskData:
    """Load ``task``'s three splits for ``setting`` from the validated datasets in ``data_dir``.

    ``scene_tile``: edge of the scene tiles cut from land-cover patches (:func:`scene_tiles`);
    required by the scene task (``finetune.scene.tile_size``), unused by the others and when
    ``data_dir`` holds a ``scene`` dataset with one class per image (:func:`has_scene_dataset`: a
    benchmark's patches, each with its own class, are the scenes). A multi-label task reads
    whole images and their multi-hot label sets (``[K]`` per sample, checked to be 0 / 1; no
    tiling, an empty label set is a label set), its label fractions stratified by label set,
    rare sets pooled (:func:`~s2ssl.data.subsets.label_set_strata`).

    Raises:
        ValueError: unknown task / setting, a missing dataset, ``transfer`` without a
            ``holdout_region``, an empty split, or a multi-label array that is not multi-hot.
    """
    spec = task_spec(task)
    dataset_name, label_name = spec.dataset, spec.labels
    single_scene = spec.is_scene_level and not spec.is_multilabel
    scene_dataset = single_scene and has_scene_dataset(data_dir)
    tiles = single_scene and not scene_dataset
    if scene_dataset:
        dataset_name, label_name = SCENE_DATASET, SCENE_LABEL
    elif tiles and scene_tile is None:
        raise ValueError(
            f"task {task!r} cuts scene tiles: pass scene_tile (finetune.scene.tile_size)"
        )
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {list(SETTINGS)}")
    if setting == "transfer" and holdout_region is None:
        raise ValueError("the transfer setting needs params.holdout_region (a region name)")
    path = Path(data_dir) / dataset_name
    if not path.exists():
        raise ValueError(
            f"validated dataset {path} not found; fetch (or import) the {dataset_name} dataset "
            "and run `s2ssl validate` / `dvc repro validate`"
        )
    dataset = open_validated(path)
    class_set = dataset.store.classes(label_name)
    classes = class_set.names
    bands = dataset.store.bands
    all_bands = list(range(len(bands)))
    splits: dict[str, TaskSplit] = {}
    for split in ("train", "val", "test"):
        positions = region_positions(dataset, split, setting, holdout_region)
        if positions.size == 0:
            where = f"region {holdout_region}" if setting == "transfer" else "the source regions"
            raise ValueError(
                f"{task}: the {dataset_name} {split} split has no accepted sample in {where} "
                f"(setting {setting}); fetch more patches or change holdout_region"
            )
        tensors = load_split(
            dataset.store, None, band_indices=all_bands, label=label_name, positions=positions
        )
        label = tensors["label"]
        if spec.is_multilabel:
            label = _check_multi_hot(label, len(classes), f"{path} {label_name}")
        ids = tuple(str(i) for i in dataset.store.index["sample_id"].to_numpy()[positions])
        lengths = series_lengths(dataset.store, positions)
        part = TaskSplit(
            image=tensors["image"],
            doy=tensors["doy"],
            label=label,
            ids=ids,
            strata=np.zeros(len(ids), np.int64),
            bands=bands,
            n_dates=None if lengths is None else torch.from_numpy(lengths),
        )
        if tiles and scene_tile is not None:
            part = scene_tiles(part, scene_tile, len(classes))
        strata = (
            label_set_strata(part.label.numpy())
            if spec.is_multilabel
            else _strata(part.label, len(classes))
        )
        splits[split] = TaskSplit(
            part.image, part.doy, part.label, part.ids, strata, bands, part.n_dates
        )
    return TaskData(
        task=task,
        setting=setting,
        class_set=class_set,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        norm_stats=dataset.norm_stats,
        manifest={
            **dataset.manifest,
            **({"scene_labels": "dataset" if scene_dataset else "tiles"} if single_scene else {}),
        },
        dataset_path=path,
    )


def _check_multi_hot(label: Tensor, num_classes: int, where: str) -> Tensor:
    """``label`` as int64 ``[n, K]`` multi-hot, or a ValueError naming ``where``."""
    if label.ndim != 2 or label.shape[1] != num_classes:
        raise ValueError(
            f"{where}: a multi-label array must hold one 0 / 1 entry per class ([n, "
            f"{num_classes}]), got shape {tuple(label.shape)}; write it multi-hot, [K] per sample"
        )
    if label.numel() and not bool(((label == 0) | (label == 1)).all()):
        raise ValueError(
            f"{where}: a multi-label array must be multi-hot (0 / 1 only), got values "
            f"{label.unique().tolist()}"
        )
    return label.long()

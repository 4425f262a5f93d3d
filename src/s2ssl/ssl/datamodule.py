"""Data for pre-training: validated datasets loaded into memory once, deterministic epochs.

The pre-training datasets are small (hundreds of samples), so the accepted samples of the split a
method trains on are read once (:func:`~s2ssl.data.tensors.load_split`) into an in-memory cache
of int16 DN-after-offset (= reflectance × 1e4, exact) with only the bands the method uses.
Batches are index selections of that cache, drawn by the epoch-seeded
:class:`~s2ssl.data.tensors.EpochBatchSampler`; the views are built on the training device by the
task (:mod:`s2ssl.ssl.views`).

Which data each method uses:

========  ====================  ============================================================
method    trains on             online kNN probe
========  ====================  ============================================================
seco,     unlabelled (train)    scene level: landcover train (bank) / val (queries), label =
moco,                           majority class of the patch
moco_tp
dense     unlabelled (train)    pixel level: landcover train / val pixels
cscl      croptype (train)      pixel level: croptype train / val crop pixels (background 0
                                and unknown 255 excluded); ``labels: landcover``: landcover
========  ====================  ============================================================

CSCL on time series takes ``pretrain.cscl.n_dates`` dates (:attr:`PretrainDataModule.num_dates`;
``null``: the stored series length, which every sample must have): the training batches carry
each series' number of real dates (``n_dates``) and the task draws its dates per step, the probe
takes the evenly spread dates (:mod:`s2ssl.data.temporal`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from s2ssl.bands import BAND_PRESETS, band_positions
from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import CSCLConfig, DenseConfig, MocoConfig, PretrainConfig
from s2ssl.data.stats import NormStats
from s2ssl.data.store import ShardedDataset, StoreError
from s2ssl.data.subsets import label_fraction_subset
from s2ssl.data.temporal import resolve_n_dates, select_dates, series_lengths
from s2ssl.data.tensors import (
    EpochBatchSampler,
    TensorDictDataset,
    dist_rank_world,
    load_split,
    split_positions,
)
from s2ssl.data.tiles import cut_tiles
from s2ssl.data.validated import ValidatedDataset, open_validated
from s2ssl.seeding import derive_seed
from s2ssl.ssl.probe import ProbeData, ProbeSplit, sample_pixels, scene_labels
from s2ssl.training.labels import majority_labels

__all__ = [
    "CONTRASTIVE_METHODS",
    "LabelSubset",
    "MethodData",
    "PretrainDataModule",
    "method_data",
]

_LOG = logging.getLogger(__name__)

CONTRASTIVE_METHODS: Final[tuple[str, ...]] = ("seco", "moco", "moco_tp")


@dataclass(frozen=True)
class LabelSubset:
    """The labelled training subset a supervised pre-training run (CSCL stage 1) may use: the
    subset of label fraction ``fraction`` in ``setting`` drawn with ``seed``, exactly the one the
    fine-tuning runs it feeds train on (:func:`~s2ssl.data.subsets.label_fraction_subset` over
    the sample ids, stratified by each sample's majority class, at least ``min_samples`` per
    class), so pre-training never sees a label the downstream run may not use."""

    setting: Literal["in_domain", "transfer"]
    fraction: float
    seed: int
    min_samples: int


@dataclass(frozen=True)
class MethodData:
    """What a method reads: its training dataset, label array and probe."""

    train_dataset: str
    train_label: str | None
    probe_dataset: str
    probe_label: str
    probe_level: Literal["scene", "pixel"]
    probe_exclude_background: bool
    """Leave a class named ``background`` out of the probe (crop type: not a crop)."""
    bands: tuple[str, ...] | None
    """The bands the method takes (``None``: every band of the training dataset)."""


def method_data(
    method: str, cfg: MocoConfig | DenseConfig | CSCLConfig, bands: Sequence[str] | None = None
) -> MethodData:
    """The datasets, labels, probe and bands of ``method`` with its config ``cfg``.

    ``bands`` is the run's band list (``params.band_names``; ``None``: all bands of the training
    dataset); a method configured with ``bands: rgb`` takes B02, B03, B04 instead.
    """
    run_bands = None if bands is None else tuple(bands)
    if method in CONTRASTIVE_METHODS or method == "dense":
        if not isinstance(cfg, MocoConfig | DenseConfig):
            raise TypeError(f"{method} needs a MocoConfig / DenseConfig, got {type(cfg).__name__}")
        chosen = BAND_PRESETS["rgb"] if cfg.bands == "rgb" else run_bands
        return MethodData(
            train_dataset="unlabelled",
            train_label=None,
            probe_dataset="landcover",
            probe_label="landcover",
            probe_level="scene" if method in CONTRASTIVE_METHODS else "pixel",
            probe_exclude_background=False,
            bands=chosen,
        )
    if method == "cscl":
        if not isinstance(cfg, CSCLConfig):
            raise TypeError(f"cscl needs a CSCLConfig, got {type(cfg).__name__}")
        if cfg.labels == "croptype":
            return MethodData(
                train_dataset="croptype",
                train_label="croptype",
                probe_dataset="croptype",
                probe_label="croptype",
                probe_level="pixel",
                probe_exclude_background=True,
                bands=run_bands,
            )
        return MethodData(
            train_dataset="landcover",
            train_label="landcover",
            probe_dataset="landcover",
            probe_label="landcover",
            probe_level="pixel",
            probe_exclude_background=False,
            bands=run_bands,
        )
    raise ValueError(f"unknown pre-training method {method!r}")


def _subset(positions: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` of ``positions``, a seeded random choice kept in position order."""
    if positions.size <= limit:
        return positions
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(positions, size=limit, replace=False))


class PretrainDataModule(L.LightningDataModule):
    """Training batches and the kNN probe of one pre-training method.

    Args:
        method: one of :data:`s2ssl.config.PRETRAIN_METHODS`.
        config: the ``pretrain`` section.
        data_dir: the directory holding the validated datasets (``data/validated``).
        seed: the run's seed (sampling, probe subsets).
        holdout_region: a region whose samples pre-training never sees (neither training nor
            probe): the region-transfer test of fine-tuning.
        label_subset: supervised methods only: train on this labelled subset (setting
            ``transfer``: of ``holdout_region``'s train split). Every epoch still draws as many
            samples as the full split holds, cycling through the subset, so the number of
            optimiser steps does not depend on the label fraction.

    After :meth:`setup`: :attr:`train` (the in-memory training set), :attr:`probe`,
    :attr:`norm_stats` (the training dataset's statistics of :attr:`bands`),
    :attr:`batch_size` (the configured one, clipped to the training set), :attr:`num_dates`.
    """

    def __init__(
        self,
        method: str,
        config: PretrainConfig,
        data_dir: str | Path,
        seed: int,
        holdout_region: str | None = None,
        label_subset: LabelSubset | None = None,
        bands: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.holdout_region = holdout_region
        self.label_subset = label_subset
        self.epoch_size: int | None = None
        self.subset_ids: tuple[str, ...] = ()
        self.method = method
        self.config = config
        self.method_config = config.method_config(method)
        self.data = method_data(method, self.method_config, bands)
        self._bands: tuple[str, ...] | None = self.data.bands
        self.data_dir = Path(data_dir)
        self.seed = int(seed)
        self.train: TensorDictDataset | None = None
        self.probe: ProbeData | None = None
        self.norm_stats: NormStats | None = None
        self.batch_size: int = self.method_config.batch_size
        self.num_dates: int = 0
        self.image_size: tuple[int, int] = (0, 0)
        self.manifests: dict[str, dict[str, Any]] = {}

    @property
    def bands(self) -> tuple[str, ...]:
        """The band names the method's inputs carry, in order (known after :meth:`setup` when
        the method takes every band of its training dataset)."""
        if self._bands is None:
            raise ValueError("the bands of a method taking all dataset bands are known after setup")
        return self._bands

    def dataset_paths(self) -> dict[str, Path]:
        """The validated datasets this method reads, by name."""
        names = dict.fromkeys([self.data.train_dataset, self.data.probe_dataset])
        return {name: self.data_dir / name for name in names}

    def _open(self, name: str) -> ValidatedDataset:
        path = self.data_dir / name
        if not path.exists():
            raise StoreError(
                f"validated dataset {path} not found; run `s2ssl validate` / `dvc repro validate`"
            )
        return open_validated(path)

    def _positions(self, store: ShardedDataset, split: str) -> np.ndarray:
        """Positions of ``split`` outside the held-out region."""
        positions = split_positions(store, split)
        if self.holdout_region is None or "region" not in store.index.columns:
            return positions
        regions = store.index["region"].to_numpy()[positions]
        kept = positions[regions != self.holdout_region]
        if kept.size == 0:
            raise ValueError(
                f"every {split} sample of {store.path} is in holdout_region "
                f"{self.holdout_region!r}; nothing is left to pre-train on"
            )
        return kept

    def _train_positions(self, store: ShardedDataset) -> np.ndarray:
        """The training split's positions: outside the held-out region, or only in it for a
        label subset of setting ``transfer``."""
        subset = self.label_subset
        if subset is None or subset.setting == "in_domain":
            return self._positions(store, "train")
        if self.holdout_region is None or "region" not in store.index.columns:
            raise ValueError("a transfer label subset needs holdout_region and region metadata")
        positions = split_positions(store, "train")
        regions = store.index["region"].to_numpy()[positions]
        kept = positions[regions == self.holdout_region]
        if kept.size == 0:
            raise ValueError(f"{store.path} has no train sample in {self.holdout_region!r}")
        return kept

    def _labelled_subset(
        self, store: ShardedDataset, positions: np.ndarray, tensors: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """The rows of ``tensors`` in :attr:`label_subset` (sets :attr:`epoch_size`)."""
        subset = self.label_subset
        if subset is None or self.data.train_label is None:
            raise ValueError(f"{self.method} trains without labels; it takes no label subset")
        ids = [str(i) for i in store.index["sample_id"].to_numpy()[positions]]
        n_classes = len(store.classes(self.data.train_label))
        strata = majority_labels(tensors["label"], n_classes, ignore_index=LABEL_IGNORE).numpy()
        keep = label_fraction_subset(
            ids,
            subset.fraction,
            subset.seed,
            min_samples=subset.min_samples,
            stratify=[int(c) for c in strata],
        )
        self.epoch_size = len(ids)
        self.subset_ids = tuple(ids[i] for i in keep.tolist())
        index = torch.as_tensor(keep, dtype=torch.long)
        return {k: v[index] for k, v in tensors.items()}

    def setup(self, stage: str | None = None) -> None:
        """Load the training split and the probe sets into memory (once)."""
        if self.train is not None:
            return
        train_ds = self._open(self.data.train_dataset)
        if self._bands is None:
            self._bands = train_ds.store.bands
        band_idx = band_positions(
            train_ds.store.bands, self.bands, what=f"the {self.data.train_dataset} dataset"
        )
        self.manifests[self.data.train_dataset] = train_ds.manifest
        self.norm_stats = train_ds.norm_stats.select(self.bands)
        positions = self._train_positions(train_ds.store)
        tensors = load_split(
            train_ds.store,
            None,
            band_indices=band_idx,
            label=self.data.train_label,
            positions=positions,
        )
        time_series = self._time_series()
        if time_series:
            lengths = series_lengths(train_ds.store, positions)
            if lengths is not None:
                tensors["n_dates"] = torch.from_numpy(lengths)
        if self.label_subset is not None:
            tensors = self._labelled_subset(train_ds.store, positions, tensors)
        n = int(tensors["image"].shape[0])
        _, world = dist_rank_world()
        per_rank = n // world
        min_batch = 1 if self.method == "cscl" else 2
        if per_rank < min_batch:
            raise ValueError(
                f"pretrain.{self.method}: the {self.data.train_dataset} train split has {n} "
                f"samples, too few for {world} process(es) (need at least {min_batch} each)"
            )
        # a label subset cycles within each epoch, so its batches may repeat samples
        per_epoch = (self.epoch_size or n) // world
        self.batch_size = min(self.method_config.batch_size, per_epoch)
        if isinstance(self.method_config, MocoConfig) and 4 * self.method_config.queue_size > n:
            _LOG.warning(
                "pretrain.%s.queue_size = %d is large for %d training samples: a sample's own "
                "key from the previous epoch is often still queued as a negative; use K << N",
                self.method,
                self.method_config.queue_size,
                n,
            )
        self.train = TensorDictDataset(tensors)
        self.num_dates = int(tensors["image"].shape[1])
        if time_series:
            every = series_lengths(train_ds.store, np.arange(len(train_ds.store)))
            self.num_dates = resolve_n_dates(
                getattr(self.method_config, "n_dates", None),
                [every],
                self.num_dates,
                f"pretrain.{self.method}.n_dates",
            )
        self.image_size = (int(tensors["image"].shape[-2]), int(tensors["image"].shape[-1]))
        self.probe = self._build_probe()

    def _time_series(self) -> bool:
        """Whether the method trains on time series (CSCL with ``labels: croptype``)."""
        return (
            isinstance(self.method_config, CSCLConfig) and self.method_config.labels == "croptype"
        )

    def _build_probe(self) -> ProbeData:
        d = self.data
        probe_ds = self._open(d.probe_dataset)
        self.manifests[d.probe_dataset] = probe_ds.manifest
        store = probe_ds.store
        band_idx = band_positions(store.bands, self.bands, what=f"the {d.probe_dataset} dataset")
        cfg = self.config.probe
        classes = store.classes(d.probe_label)
        n_classes = len(classes)
        excluded = [LABEL_IGNORE]
        if d.probe_exclude_background and "background" in classes.names:
            excluded.insert(0, classes.names.index("background"))
        probe_exclude = tuple(excluded)
        splits: list[ProbeSplit] = []
        time_series = self._time_series()
        if d.probe_level == "scene":
            limits = (cfg.bank_size, cfg.query_size)
        else:
            limits = (cfg.pixel_bank_images, cfg.pixel_query_images)
        for k, (split, limit) in enumerate(zip(("train", "val"), limits, strict=True)):
            pos = _subset(self._positions(store, split), limit, derive_seed(self.seed, 7, k))
            tensors = load_split(
                store, split, band_indices=band_idx, label=d.probe_label, positions=pos
            )
            image, doy = tensors["image"], tensors["doy"]
            if time_series:
                lengths = series_lengths(store, pos)
                image, doy = select_dates(
                    image,
                    doy,
                    None if lengths is None else torch.from_numpy(lengths),
                    self.num_dates,
                )
            else:
                image = image[:, 0]  # single date [N, C, H, W]
            if d.probe_level == "scene":
                image = cut_tiles(image, cfg.scene_tile)
                tile_maps = cut_tiles(tensors["label"], cfg.scene_tile)
                labels = scene_labels(tile_maps, n_classes, ignore=probe_exclude)
                keep = labels >= 0
                splits.append(ProbeSplit(image=image[keep], labels=labels[keep]))
            else:
                g = torch.Generator().manual_seed(derive_seed(self.seed, 11, k))
                pixels, labels, valid = sample_pixels(
                    tensors["label"],
                    cfg.pixels_per_image,
                    g,
                    num_classes=n_classes,
                    exclude=probe_exclude,
                )
                keep = valid.any(dim=1)
                splits.append(
                    ProbeSplit(
                        image=image[keep],
                        labels=labels[keep],
                        pixels=pixels[keep],
                        valid=valid[keep],
                        doy=doy[keep] if time_series else None,
                    )
                )
        bank, queries = splits
        if bank.count == 0 or queries.count == 0:
            raise ValueError(
                f"the kNN probe of {self.method} has no labelled {d.probe_label} item in the "
                f"{d.probe_dataset} train or val split"
            )
        return ProbeData(
            bank=bank,
            queries=queries,
            num_classes=n_classes,
            level=d.probe_level,
            description=f"{d.probe_level}-level {d.probe_label} kNN ({d.probe_dataset} "
            f"train → val)",
        )

    def train_dataloader(self) -> DataLoader[dict[str, Tensor]]:
        """Batches of the in-memory training set (a dict of tensors per batch)."""
        if self.train is None:
            self.setup("fit")
        if self.train is None:  # pragma: no cover - setup always sets it
            raise RuntimeError("PretrainDataModule.setup() did not load the training set")
        sampler = EpochBatchSampler(
            len(self.train), self.batch_size, self.seed, drop_last=True, epoch_size=self.epoch_size
        )
        return DataLoader(
            self.train,
            sampler=sampler,
            batch_size=None,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

"""Data for pre-training: validated datasets loaded into memory once, deterministic epochs.

The pre-training datasets are small (hundreds of samples), so the accepted samples of the split a
method trains on are read once (:meth:`~s2ssl.data.store.ShardedDataset.read_many`, shard by
shard) into an in-memory cache of int16 DN-after-offset (= reflectance × 1e4, exact; half the
memory of float32) with only the bands the method uses. Batches are index selections of that
cache (no per-item decoding, no collation); the views are built on the training device by the
task (:mod:`s2ssl.ssl.views`).

Determinism: :class:`EpochBatchSampler` shuffles with a permutation seeded from
``(seed, epoch)`` (Lightning calls ``set_epoch`` at every epoch start), so a run resumed from a
checkpoint sees the same batches as an uninterrupted one. Under DDP it splits the permutation
between the ranks itself (the Trainer runs with ``use_distributed_sampler=False``).

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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from s2ssl.bands import BAND_NAMES, RGB
from s2ssl.classes import CROP_CLASSES, LABEL_IGNORE, LANDCOVER_CLASSES
from s2ssl.config import CSCLConfig, DenseConfig, MocoConfig, PretrainConfig
from s2ssl.data.stats import NormStats
from s2ssl.data.store import ShardedDataset, StoreError
from s2ssl.data.validated import ValidatedDataset, open_validated
from s2ssl.ssl.probe import ProbeData, ProbeSplit, cut_tiles, sample_pixels, scene_labels

__all__ = [
    "CONTRASTIVE_METHODS",
    "EpochBatchSampler",
    "MethodData",
    "PretrainDataModule",
    "TensorDictDataset",
    "derive_seed",
    "load_split",
    "method_data",
]

_LOG = logging.getLogger(__name__)

CONTRASTIVE_METHODS: Final[tuple[str, ...]] = ("seco", "moco", "moco_tp")
_READ_CHUNK: Final[int] = 64
_INT16_MAX: Final[int] = int(np.iinfo(np.int16).max)
_INT16_MIN: Final[int] = int(np.iinfo(np.int16).min)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (numpy ``SeedSequence``), e.g. (seed, epoch, batch)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


@dataclass(frozen=True)
class MethodData:
    """What a method reads: its training dataset, label array and probe."""

    train_dataset: str
    train_label: str | None
    probe_dataset: str
    probe_label: str
    probe_level: Literal["scene", "pixel"]
    classes: tuple[str, ...]
    probe_exclude: tuple[int, ...]
    bands: tuple[str, ...]


def method_data(method: str, cfg: MocoConfig | DenseConfig | CSCLConfig) -> MethodData:
    """The datasets, labels, probe and bands of ``method`` with its config ``cfg``."""
    if method in CONTRASTIVE_METHODS or method == "dense":
        if not isinstance(cfg, MocoConfig | DenseConfig):
            raise TypeError(f"{method} needs a MocoConfig / DenseConfig, got {type(cfg).__name__}")
        bands = tuple(RGB) if cfg.bands == "rgb" else tuple(BAND_NAMES)
        return MethodData(
            train_dataset="unlabelled",
            train_label=None,
            probe_dataset="landcover",
            probe_label="landcover",
            probe_level="scene" if method in CONTRASTIVE_METHODS else "pixel",
            classes=LANDCOVER_CLASSES,
            probe_exclude=(LABEL_IGNORE,),
            bands=bands,
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
                classes=CROP_CLASSES,
                probe_exclude=(0, LABEL_IGNORE),
                bands=tuple(BAND_NAMES),
            )
        return MethodData(
            train_dataset="landcover",
            train_label="landcover",
            probe_dataset="landcover",
            probe_label="landcover",
            probe_level="pixel",
            classes=LANDCOVER_CLASSES,
            probe_exclude=(LABEL_IGNORE,),
            bands=tuple(BAND_NAMES),
        )
    raise ValueError(f"unknown pre-training method {method!r}")


def _split_positions(store: ShardedDataset, split: str | None) -> np.ndarray:
    index = store.index
    if split is None or "split" not in index.columns:
        if split is not None and split != "train":
            raise StoreError(f"{store.path} has no split column, cannot select split {split!r}")
        return np.arange(len(store), dtype=np.int64)
    positions = np.flatnonzero(index["split"].to_numpy() == split).astype(np.int64)
    if positions.size == 0:
        available = sorted(map(str, index["split"].unique()))
        raise StoreError(f"{store.path} has no {split!r} sample; splits: {available}")
    return positions


def _column_matrix(store: ShardedDataset, column: str, positions: np.ndarray, t: int) -> np.ndarray:
    """Index column of per-date lists as an int64 ``[n, t]`` matrix (scalars repeated)."""
    if column not in store.index.columns:
        raise StoreError(f"{store.path} index has no {column!r} column; re-create the dataset")
    values = store.index[column].to_numpy()[positions]
    rows = []
    for v in values:
        arr = np.asarray(v, dtype=np.int64).reshape(-1)
        rows.append(np.full(t, arr[0], np.int64) if arr.size == 1 else arr)
    out = np.stack(rows) if rows else np.zeros((0, t), np.int64)
    if out.shape[1:] != (t,):
        raise StoreError(f"{store.path}: column {column!r} does not hold {t} values per sample")
    return out


def load_split(
    store: ShardedDataset,
    split: str | None,
    *,
    band_indices: Sequence[int],
    label: str | None = None,
    positions: np.ndarray | None = None,
) -> dict[str, Tensor]:
    """Read the samples of ``split`` into memory.

    Returns ``{"image": int16 [n, T, C, H, W] DN after offset (reflectance × 1e4, clipped to
    int16), "doy": int64 [n, T], "label": int64 [n, H, W] (when ``label``)}`` with only
    ``band_indices`` of the band axis. ``positions`` (positions in ``store``) overrides the
    split selection.
    """
    if "image" not in store.specs:
        raise StoreError(f"{store.path} has no 'image' array")
    spec = store.specs["image"]
    if len(spec.shape) != 4:
        raise StoreError(f"{store.path}: image must be [T, C, H, W] per sample, got {spec.shape}")
    t, c, h, w = spec.shape
    bad = [i for i in band_indices if not 0 <= i < c]
    if bad:
        raise StoreError(f"{store.path} has {c} bands; band indices {bad} do not exist")
    if np.dtype(spec.dtype).kind not in "iu":
        raise StoreError(f"{store.path}: image must be integer DN, got {spec.dtype}")
    pos = _split_positions(store, split) if positions is None else np.asarray(positions, np.int64)
    n = pos.size
    offsets = _column_matrix(store, "dn_offset", pos, t)
    doy = _column_matrix(store, "doy", pos, t)
    bands = np.asarray(band_indices, dtype=np.int64)
    image = np.empty((n, t, bands.size, h, w), dtype=np.int16)
    for lo in range(0, n, _READ_CHUNK):
        chunk = store.read_many("image", pos[lo : lo + _READ_CHUNK])[:, :, bands]
        dn = chunk.astype(np.int32) + offsets[lo : lo + _READ_CHUNK, :, None, None, None]
        image[lo : lo + _READ_CHUNK] = np.clip(dn, _INT16_MIN, _INT16_MAX)
    out = {"image": torch.from_numpy(image), "doy": torch.from_numpy(doy)}
    if label is not None:
        if label not in store.specs:
            raise StoreError(
                f"{store.path} has no label array {label!r}; arrays: {list(store.specs)}"
            )
        labels = store.read_many(label, pos).astype(np.int64)
        out["label"] = torch.from_numpy(labels)
    return out


class TensorDictDataset(Dataset[dict[str, Tensor]]):
    """An in-memory dataset of equally long tensors; indexing with a list gives a whole batch."""

    def __init__(self, tensors: dict[str, Tensor]) -> None:
        lengths = {k: int(v.shape[0]) for k, v in tensors.items()}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must be non-empty and equally long, got {lengths}")
        self.tensors = tensors
        self._n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int | Sequence[int]) -> dict[str, Tensor]:
        if isinstance(index, int):
            return {k: v[index] for k, v in self.tensors.items()}
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches of indices, the permutation seeded from ``(seed, epoch)``.

    ``set_epoch`` (called by Lightning at every epoch start) selects the permutation, so a resumed
    run draws exactly the batches an uninterrupted one would. Under ``torch.distributed`` each
    rank takes every ``world``-th index of the permutation (after truncating it to a multiple of
    the world size), as ``DistributedSampler`` does. ``drop_last`` drops an incomplete last batch
    (contrastive batches need at least 2 samples for batch norm and negatives).
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, *, shuffle: bool = True, drop_last: bool = True
    ) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def _indices(self) -> list[int]:
        rank, world = _dist_rank_world()
        if self.shuffle:
            g = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, 0x5A3D))
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        usable = (self.n // world) * world
        return perm[:usable][rank::world].tolist()

    def _batch_size(self, per_rank: int) -> int:
        # a split smaller than one batch still yields one (smaller) batch per epoch
        return max(1, min(self.batch_size, per_rank))

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._indices()
        size = self._batch_size(len(indices))
        for lo in range(0, len(indices), size):
            batch = indices[lo : lo + size]
            if len(batch) < size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        _, world = _dist_rank_world()
        per_rank = self.n // world
        size = self._batch_size(per_rank)
        if self.drop_last:
            return per_rank // size
        return -(-per_rank // size)


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
    ) -> None:
        super().__init__()
        self.holdout_region = holdout_region
        self.method = method
        self.config = config
        self.method_config = config.method_config(method)
        self.data = method_data(method, self.method_config)
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
        """The band names the method's inputs carry, in order."""
        return self.data.bands

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
        positions = _split_positions(store, split)
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

    def setup(self, stage: str | None = None) -> None:
        """Load the training split and the probe sets into memory (once)."""
        if self.train is not None:
            return
        band_idx = [BAND_NAMES.index(b) for b in self.bands]
        train_ds = self._open(self.data.train_dataset)
        self.manifests[self.data.train_dataset] = train_ds.manifest
        self.norm_stats = train_ds.norm_stats.select(self.bands)
        tensors = load_split(
            train_ds.store,
            None,
            band_indices=band_idx,
            label=self.data.train_label,
            positions=self._positions(train_ds.store, "train"),
        )
        n = int(tensors["image"].shape[0])
        _, world = _dist_rank_world()
        per_rank = n // world
        min_batch = 1 if self.method == "cscl" else 2
        if per_rank < min_batch:
            raise ValueError(
                f"pretrain.{self.method}: the {self.data.train_dataset} train split has {n} "
                f"samples, too few for {world} process(es) (need at least {min_batch} each)"
            )
        self.batch_size = min(self.method_config.batch_size, per_rank)
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
        self.image_size = (int(tensors["image"].shape[-2]), int(tensors["image"].shape[-1]))
        self.probe = self._build_probe(band_idx)

    def _build_probe(self, band_idx: list[int]) -> ProbeData:
        d = self.data
        probe_ds = self._open(d.probe_dataset)
        self.manifests[d.probe_dataset] = probe_ds.manifest
        store = probe_ds.store
        cfg = self.config.probe
        n_classes = len(d.classes)
        splits: list[ProbeSplit] = []
        time_series = (
            isinstance(self.method_config, CSCLConfig) and self.method_config.labels == "croptype"
        )
        if d.probe_level == "scene":
            limits = (cfg.bank_size, cfg.query_size)
        else:
            limits = (cfg.pixel_bank_images, cfg.pixel_query_images)
        for k, (split, limit) in enumerate(zip(("train", "val"), limits, strict=True)):
            pos = _subset(self._positions(store, split), limit, derive_seed(self.seed, 7, k))
            tensors = load_split(
                store, split, band_indices=band_idx, label=d.probe_label, positions=pos
            )
            image = tensors["image"]
            if not time_series:
                image = image[:, 0]  # single date [N, C, H, W]
            if d.probe_level == "scene":
                image = cut_tiles(image, cfg.scene_tile)
                tile_maps = cut_tiles(tensors["label"], cfg.scene_tile)
                labels = scene_labels(tile_maps, n_classes, ignore=d.probe_exclude)
                keep = labels >= 0
                splits.append(ProbeSplit(image=image[keep], labels=labels[keep]))
            else:
                g = torch.Generator().manual_seed(derive_seed(self.seed, 11, k))
                pixels, labels, valid = sample_pixels(
                    tensors["label"],
                    cfg.pixels_per_image,
                    g,
                    num_classes=n_classes,
                    exclude=d.probe_exclude,
                )
                keep = valid.any(dim=1)
                splits.append(
                    ProbeSplit(
                        image=image[keep],
                        labels=labels[keep],
                        pixels=pixels[keep],
                        valid=valid[keep],
                        doy=tensors["doy"][keep] if time_series else None,
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
        sampler = EpochBatchSampler(len(self.train), self.batch_size, self.seed, drop_last=True)
        return DataLoader(
            self.train,
            sampler=sampler,
            batch_size=None,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

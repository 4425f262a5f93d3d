"""Lightning modules of the pre-training methods.

* :class:`MocoTask` — ``seco`` (Mañas et al., "Seasonal Contrast", ICCV 2021): a query
  ResNet + 3 projection heads, momentum key encoder + heads, one queue per head,
  :func:`~s2ssl.ssl.losses.seco_loss` over views ``q, k0, k1, k2``; with one head it is the
  ``moco`` / ``moco_tp`` MoCo-v2 baseline (Chen et al., "Improved Baselines with Momentum
  Contrastive Learning", 2020) as in SeCo's code.
* :class:`DenseTask` — ``dense`` (Embedding Earth, Tarasiou & Zafeiriou 2022; design ours): a
  ResNet U-Net with a 1x1 projection head, pixel InfoNCE between the same ground positions in
  two dates (:func:`~s2ssl.ssl.losses.dense_info_nce`), optional momentum key encoder.
* :class:`CSCLTask` — ``cscl`` stage 1 (Tarasiou, Guler, Zafeiriou, "Context-self contrastive
  pretraining for crop type semantic segmentation", IEEE TGRS 2022): 3-D U-Net (or ResNet U-Net
  on single-date land cover) + :class:`~s2ssl.ssl.losses.CSCLHead`,
  ``L = mean(−w⁺·y·s + (1 − y)·s)`` against :func:`~s2ssl.ssl.losses.cscl_targets`.

Common to all (:class:`PretrainTask`): views are built in ``training_step`` on the training
device with a generator seeded from ``(seed, epoch, batch, rank)``; after every epoch the online
kNN probe (:mod:`s2ssl.ssl.probe`) logs ``probe/knn_acc`` (checkpoint selection) and the collapse
monitor ``monitor/embedding_std`` is the epoch mean over training batches; a per-epoch history
travels in the checkpoints; queues and momentum encoders are buffers / submodules, so they are
checkpointed and a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, TypeVar

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import CSCLConfig, DenseConfig, MocoConfig, PretrainConfig, ProbeConfig
from s2ssl.data.stats import NormStats
from s2ssl.models.heads import PixelProjection, ProjectionMLP
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D, append_doy_channel
from s2ssl.ssl.augment import normalize, sample_at
from s2ssl.ssl.datamodule import derive_seed
from s2ssl.ssl.losses import (
    CSCLHead,
    KeyQueue,
    cscl_loss,
    cscl_targets,
    dense_info_nce,
    momentum_update,
    seco_loss,
)
from s2ssl.ssl.probe import ProbeData, ProbeSplit, embedding_std, gather_pixels, knn_accuracy
from s2ssl.ssl.views import cscl_batch, dense_views, moco_views, seco_views, to_reflectance

__all__ = [
    "CSCLTask",
    "DenseTask",
    "MocoTask",
    "PretrainTask",
    "ProbeResult",
    "StepOutput",
    "build_task",
]

_STD_ROWS: Final[int] = 2048
"""Pixel embeddings used for the collapse monitor of dense / CSCL batches (strided subsample)."""


@dataclass(frozen=True)
class StepOutput:
    """What a method's step returns: the loss, embeddings for the collapse monitor, extra logs."""

    loss: Tensor
    embeddings: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    """Result of one kNN probe: accuracy and the std of the normalised query features."""

    knn_acc: float
    feature_std: float
    n_bank: int
    n_queries: int


_M = TypeVar("_M", bound=nn.Module)


def _freeze(module: _M) -> _M:
    """``module`` with gradients off (momentum / key encoders are not optimised)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class PretrainTask(L.LightningModule, ABC):
    """Shared machinery of the pre-training tasks (see the module docstring).

    Args:
        method: the method name.
        config: the method's section of ``pretrain`` (a dict, validated here).
        probe: the ``pretrain.probe`` section (a dict).
        seed: the run's seed (augmentation generators).
        bands: the input band names, in order.
        norm_mean, norm_std: per-band normalisation statistics (reflectance) of the training set.
        num_dates: dates per training sample.
        norm_stats: the full :class:`NormStats` record (exported with the encoder), as a dict.

    Subclasses implement :meth:`shared_step`, :meth:`encode_probe`, :meth:`encoder_module`,
    :meth:`architecture` and :meth:`configure_optimizers`.
    """

    norm_mean: Tensor
    norm_std: Tensor

    def __init__(
        self,
        method: str,
        config: dict[str, Any],
        probe: dict[str, Any],
        *,
        seed: int,
        bands: list[str],
        norm_mean: list[float],
        norm_std: list[float],
        num_dates: int,
        norm_stats: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.method = method
        self.seed = int(seed)
        self.bands = tuple(bands)
        self.num_dates = int(num_dates)
        self.probe_config = ProbeConfig.model_validate(probe)
        self.norm_stats_json = norm_stats
        if len(norm_mean) != len(bands) or len(norm_std) != len(bands):
            raise ValueError(
                f"norm_mean / norm_std need one value per band ({len(bands)}), got "
                f"{len(norm_mean)} / {len(norm_std)}"
            )
        self.register_buffer("norm_mean", torch.tensor(norm_mean, dtype=torch.float32), False)
        self.register_buffer("norm_std", torch.tensor(norm_std, dtype=torch.float32), False)
        self.probe_data: ProbeData | None = None
        self.history: list[dict[str, float]] = []
        self.random_init_probe: ProbeResult | None = None
        self.random_init_probes: dict[str, ProbeResult] = {}
        self._epoch_start = 0.0
        self._epoch_samples = 0
        self._epoch_lr = math.nan
        self._channels_last = False
        self.channels_last: bool | Literal["auto"] = "auto"
        """``pretrain.channels_last`` (set by the stage): see :meth:`wants_channels_last`."""

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def shared_step(self, batch: dict[str, Tensor], generator: torch.Generator) -> StepOutput:
        """Build the views of ``batch`` with ``generator`` and compute the loss."""

    @abstractmethod
    def encode_probe(self, split: ProbeSplit) -> tuple[Tensor, Tensor]:
        """Features ``[M, D]`` and labels ``[M]`` of a probe split (no grad, eval mode)."""

    @abstractmethod
    def encoder_module(self) -> nn.Module:
        """The network that transfers (exported as the pre-trained encoder)."""

    @abstractmethod
    def architecture(self) -> dict[str, Any]:
        """What :func:`s2ssl.ssl.pretrain.load_encoder` needs to rebuild :meth:`encoder_module`."""

    def normalization(self) -> dict[str, Any]:
        """How inputs are scaled before the encoder (recorded in the encoder's meta.json)."""
        return {
            "kind": "standardize",
            "formula": "(DN_after_offset * 1e-4 - mean) / std",
            "mean": [float(v) for v in self.norm_mean],
            "std": [float(v) for v in self.norm_std],
        }

    # ------------------------------------------------------------------ helpers
    @property
    def world(self) -> int:
        """Number of training processes (1 without a Trainer)."""
        return int(self._trainer.world_size) if self._trainer is not None else 1

    @property
    def rank(self) -> int:
        """Global rank of this process (0 without a Trainer)."""
        return int(self._trainer.global_rank) if self._trainer is not None else 0

    def batch_generator(self, batch_idx: int, epoch: int | None = None) -> torch.Generator:
        """The augmentation generator of a batch, seeded from (seed, epoch, batch, rank)."""
        epoch = self.current_epoch if epoch is None else epoch
        g = torch.Generator(device=self.device)
        g.manual_seed(derive_seed(self.seed, epoch, batch_idx, self.rank))
        return g

    def wants_channels_last(self) -> bool:
        """Whether :attr:`channels_last` asks for channels-last here (``auto``: on CUDA only)."""
        if self.channels_last == "auto":
            return self.device.type == "cuda"
        return bool(self.channels_last)

    def use_channels_last(self) -> bool:
        """Move the parameters to channels-last memory format; False for a 3-D network.

        Inputs then follow through :meth:`cl`. ``Module.to(memory_format=channels_last)`` refuses
        5-D weights, and the 3-D U-Net (CSCL) gains nothing from it, so it keeps its layout.
        """
        if any(p.dim() == 5 for p in self.parameters()):
            return False
        if not self._channels_last:
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            self._channels_last = True
        return True

    def cl(self, x: Tensor) -> Tensor:
        """``x`` in channels-last memory format when the module is (see :attr:`channels_last`)."""
        if self._channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def standardize(self, x: Tensor) -> Tensor:
        """Reflectance → per-band standardised input."""
        return normalize(x, self.norm_mean, self.norm_std)

    def _gather(self, t: Tensor) -> Tensor:
        """Concatenate ``t [B, D]`` over the DDP processes (MoCo enqueues every rank's keys)."""
        if self.world > 1:
            return self.all_gather(t.contiguous()).reshape(-1, t.shape[-1])
        return t

    def _forward_context(self) -> Any:
        if self._trainer is not None:
            return self.trainer.precision_plugin.forward_context()
        return nullcontext()

    def _probe_batches(self, split: ProbeSplit) -> Iterator[tuple[slice, Tensor]]:
        step = self.probe_config.batch_size
        for lo in range(0, len(split), step):
            sl = slice(lo, lo + step)
            yield sl, to_reflectance(split.image[sl].to(self.device))

    def _pixel_features(
        self, features: Tensor, split: ProbeSplit, sl: slice
    ) -> tuple[Tensor, Tensor]:
        if split.pixels is None or split.valid is None:
            raise ValueError("a pixel-level probe split needs pixels and valid")
        picked = gather_pixels(features.float(), split.pixels[sl])  # [B, P, D]
        valid = split.valid[sl].to(picked.device)
        return picked[valid], split.labels[sl].to(picked.device)[valid]

    # ------------------------------------------------------------------ Lightning hooks
    def on_fit_start(self) -> None:
        if self.wants_channels_last():
            self.use_channels_last()
        # Lightning restores a checkpoint before this hook: a resumed run keeps the value it saved
        if self.random_init_probe is None and self.probe_data is not None:
            if self.current_epoch > 0 or self.global_step > 0:
                raise RuntimeError("the random-init probe must be measured before any training")
            self.random_init_probe = self.run_random_init_probe()

    @torch.no_grad()
    def run_random_init_probe(self) -> ProbeResult:
        """The probe of the current (untrained) weights: the better of two BN settings.

        A fresh network's batch-norm running statistics (0, 1) fit no data; re-estimating them
        on the probe's bank images (cumulative average, no weight update) usually makes random
        init stronger, but not always. Both are measured (:attr:`random_init_probes`:
        ``bn_init`` and ``bn_calibrated``) and the better one is the baseline, so a reported
        gain is never inflated by a weak baseline. The module's BN buffers are restored
        afterwards: training starts from the untouched initialisation.
        """
        probe = self.probe_data
        if probe is None:
            raise ValueError("no probe data attached: set task.probe_data")
        results = {"bn_init": self.run_probe()}
        encoder = self.encoder_module()
        norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [copy.deepcopy(m.state_dict()) for m in norms]
        momenta = [m.momentum for m in norms]
        was_training = self.training
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative moving average over the calibration batches
            self.eval()
            encoder.train()
            with self._forward_context():
                self.encode_probe(probe.bank)
            results["bn_calibrated"] = self.run_probe()
        finally:
            for m, state, momentum in zip(norms, saved, momenta, strict=True):
                m.load_state_dict(state)
                m.momentum = momentum
            self.train(was_training)
        self.random_init_probes = results
        return max(results.values(), key=lambda r: r.knn_acc)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_samples = 0
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        self._epoch_lr = float(optimizers[0].param_groups[0]["lr"]) if optimizers else math.nan

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.shared_step(batch, self.batch_generator(batch_idx))
        n = int(batch["image"].shape[0])
        self._epoch_samples += n
        self.log(
            "train/loss",
            out.loss.detach(),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=n,
            sync_dist=True,
        )
        self.log("train/loss_step", out.loss.detach(), on_step=True, on_epoch=False, batch_size=n)
        self.log(
            "monitor/embedding_std",
            embedding_std(out.embeddings),
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=n,
            sync_dist=True,
        )
        for key, value in out.logs.items():
            self.log(key, value, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return out.loss

    @torch.no_grad()
    def run_probe(self) -> ProbeResult:
        """Encode the probe's bank and queries with the current weights; cosine kNN accuracy."""
        probe = self.probe_data
        if probe is None:
            raise ValueError(
                "no probe data attached: set task.probe_data (PretrainDataModule.probe)"
            )
        was_training = self.training
        self.eval()
        try:
            with self._forward_context():
                bank, bank_y = self.encode_probe(probe.bank)
                queries, query_y = self.encode_probe(probe.queries)
        finally:
            self.train(was_training)
        cfg = self.probe_config
        acc = knn_accuracy(
            bank.float(),
            bank_y,
            queries.float(),
            query_y,
            num_classes=probe.num_classes,
            k=cfg.k,
            temperature=cfg.temperature,
            voting=cfg.voting,
        )
        return ProbeResult(
            knn_acc=acc,
            feature_std=float(embedding_std(queries)),
            n_bank=int(bank.shape[0]),
            n_queries=int(queries.shape[0]),
        )

    def on_train_epoch_end(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = max(time.perf_counter() - self._epoch_start, 1e-9)
        samples_per_s = self._epoch_samples * self.world / elapsed
        result = self.run_probe()
        self.log("probe/knn_acc", result.knn_acc, prog_bar=True, sync_dist=False)
        self.log("probe/feature_std", result.feature_std, sync_dist=False)
        self.log("perf/samples_per_s", samples_per_s, sync_dist=False)
        metrics = self.trainer.callback_metrics

        def metric(name: str) -> float:
            value = metrics.get(name)
            return float(value) if value is not None else math.nan

        self.history.append(
            {
                "epoch": int(self.current_epoch),
                "loss": metric("train/loss"),
                "knn_acc": result.knn_acc,
                "embedding_std": metric("monitor/embedding_std"),
                "feature_std": result.feature_std,
                "lr": self._epoch_lr,
                "samples_per_s": samples_per_s,
                # wall of the epoch with its probe: summed over a resumed run's history this is
                # the whole training time, however many processes it took
                "epoch_s": time.perf_counter() - self._epoch_start,
            }
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        def plain(result: ProbeResult | None) -> dict[str, Any] | None:
            return None if result is None else asdict(result)

        checkpoint["s2ssl"] = {
            "history": [dict(row) for row in self.history],
            "random_init_probe": plain(self.random_init_probe),
            "random_init_probes": {k: plain(v) for k, v in self.random_init_probes.items()},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("s2ssl", {})
        self.history = [dict(row) for row in state.get("history", [])]
        value = state.get("random_init_probe")
        self.random_init_probe = None if value is None else ProbeResult(**value)
        self.random_init_probes = {
            k: ProbeResult(**v) for k, v in state.get("random_init_probes", {}).items() if v
        }


# ---------------------------------------------------------------------------------------------
# SeCo, MoCo-v2, MoCo-v2 + temporal positives
# ---------------------------------------------------------------------------------------------


class MocoTask(PretrainTask):
    """``seco`` (3 heads, views q, k0, k1, k2) and the ``moco`` / ``moco_tp`` baselines (1 head).

    Mañas et al., ICCV 2021 (official ``MocoV2`` module): the momentum update of key encoder and
    key heads (``θ_k ← m θ_k + (1 − m) θ_q``, MoCo eq. 2) runs at the start of every step; the
    key encoder runs in train mode on each key view separately (no gradient); head ``i``'s
    positive is key ``k_i``; heads 1 and 2 also get the other keys of the batch as negatives;
    ``L = Σ_i CE([l⁺, l⁻] / τ)``; key ``k_i`` is enqueued into queue ``i`` (all DDP ranks' keys).
    Only the query encoder and heads are optimised: SGD (lr 0.03, momentum 0.9, wd 1e-4) with
    lr × ``lr_gamma`` at the ``lr_milestones`` fractions of the epochs (paper: 120 and 160 of 200).
    """

    def __init__(
        self, method: str, config: dict[str, Any], probe: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(method, config, probe, **kwargs)
        if method not in ("seco", "moco", "moco_tp"):
            raise ValueError(f"MocoTask runs seco, moco or moco_tp, not {method!r}")
        self.cfg = MocoConfig.model_validate(config)
        self.num_heads = 3 if method == "seco" else 1
        self.rgb = len(self.bands) == 3
        c = len(self.bands)
        self.encoder_q = ResNetEncoder(self.cfg.depth, c)
        d = self.encoder_q.out_dim
        self.heads_q = nn.ModuleList(
            ProjectionMLP(d, d, self.cfg.embedding_dim) for _ in range(self.num_heads)
        )
        self.encoder_k = _freeze(copy.deepcopy(self.encoder_q))
        self.heads_k = _freeze(copy.deepcopy(self.heads_q))
        self.queue = KeyQueue(
            self.num_heads,
            self.cfg.embedding_dim,
            self.cfg.queue_size,
            generator=torch.Generator().manual_seed(derive_seed(self.seed, 0x0E0E)),
        )

    def shared_step(self, batch: dict[str, Tensor], generator: torch.Generator) -> StepOutput:
        cfg = self.cfg
        x = to_reflectance(batch["image"])
        common: dict[str, Any] = {
            "crop_size": cfg.crop_size,
            "mean": self.norm_mean,
            "std": self.norm_std,
            "appearance": cfg.appearance,
            "crop_scale": cfg.crop_scale,
            "rgb": self.rgb,
        }
        if self.method == "seco":
            views = seco_views(x, generator, **common)
        else:
            views = moco_views(x, generator, temporal=self.method == "moco_tp", **common)
        momentum_update(self.encoder_q, self.encoder_k, cfg.key_momentum)
        momentum_update(self.heads_q, self.heads_k, cfg.key_momentum)
        v_q = self.encoder_q(self.cl(views.query))
        with torch.no_grad():
            v_k = [self.encoder_k(self.cl(k)) for k in views.keys]
        queries = [F.normalize(head(v_q), dim=1) for head in self.heads_q]
        with torch.no_grad():
            keys = [[F.normalize(head(v), dim=1) for v in v_k] for head in self.heads_k]
        out = seco_loss(
            queries, keys, [self.queue.get(i) for i in range(self.num_heads)], cfg.temperature
        )
        for i in range(self.num_heads):
            self.queue.enqueue(i, self._gather(keys[i][i]))
        logs = {f"train/acc_head{i}": acc for i, acc in enumerate(out.accuracy)}
        return StepOutput(loss=out.loss, embeddings=queries[0], logs=logs)

    def encode_probe(self, split: ProbeSplit) -> tuple[Tensor, Tensor]:
        feats = [
            self.encoder_q(self.cl(self.standardize(x))).float()
            for _, x in self._probe_batches(split)
        ]
        return torch.cat(feats), split.labels.to(self.device)

    def encoder_module(self) -> nn.Module:
        return self.encoder_q

    def architecture(self) -> dict[str, Any]:
        return {
            "kind": "resnet",
            "depth": self.cfg.depth,
            "in_channels": len(self.bands),
            "bands": list(self.bands),
            "out_dim": self.encoder_q.out_dim,
        }

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay
        )
        return {
            "optimizer": opt,
            "lr_scheduler": _step_schedule(opt, cfg.max_epochs, cfg.lr_milestones, cfg.lr_gamma),
        }


def _step_schedule(
    opt: torch.optim.Optimizer, max_epochs: int, milestones: tuple[float, ...], gamma: float
) -> dict[str, Any]:
    """lr × gamma at each milestone (a fraction of ``max_epochs``), stepped per epoch.

    A ``LambdaLR`` (its state is plain numbers, so checkpoints load with ``weights_only=True``)
    equivalent to ``MultiStepLR`` with milestones ``round(f · max_epochs)``.
    """
    epochs = sorted({max(1, round(f * max_epochs)) for f in milestones})

    def factor(epoch: int) -> float:
        return gamma ** sum(epoch >= m for m in epochs)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"scheduler": sched, "interval": "epoch", "frequency": 1}


# ---------------------------------------------------------------------------------------------
# dense pixel contrast (Embedding Earth design)
# ---------------------------------------------------------------------------------------------


def _project_points(projection: nn.Module, points: Tensor) -> Tensor:
    """Apply a 1x1-conv projection head to point features ``[M, D]`` (BN over the M points)."""
    out = projection(points.T[None, :, :, None])  # [1, E, M, 1]
    return out[0, :, :, 0].T


class DenseTask(PretrainTask):
    """``dense``: per-pixel contrastive pre-training of a ResNet U-Net (Embedding Earth design).

    Tarasiou & Zafeiriou 2022 (official code never released): both views (two dates,
    independent crop / flip / rot90 / appearance) go through the U-Net in one batch; U-Net features
    are read at ``points_per_image`` tracked ground positions per image
    (:func:`~s2ssl.ssl.augment.sample_at`, bilinear), projected by the 1x1 head (on the sampled
    points only — cheaper than projecting every pixel) and contrasted with the symmetric pixel
    InfoNCE (τ = 0.1): the positive is the same ground position in the other view, negatives are
    every other sampled pixel of the batch. With ``key_encoder`` the other view is embedded by a
    momentum copy of U-Net + head and each view is anchored once. The U-Net (encoder + decoder)
    is what transfers.
    """

    def __init__(
        self, method: str, config: dict[str, Any], probe: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(method, config, probe, **kwargs)
        self.cfg = DenseConfig.model_validate(config)
        c = len(self.bands)
        self.unet = ResNetUNet(self.cfg.depth, c, self.cfg.feature_dim)
        self.projection = PixelProjection(self.cfg.feature_dim, self.cfg.embedding_dim)
        self.unet_k: ResNetUNet | None = None
        self.projection_k: PixelProjection | None = None
        if self.cfg.key_encoder:
            self.unet_k = _freeze(copy.deepcopy(self.unet))
            self.projection_k = _freeze(copy.deepcopy(self.projection))

    def shared_step(self, batch: dict[str, Tensor], generator: torch.Generator) -> StepOutput:
        cfg = self.cfg
        x = to_reflectance(batch["image"])
        v = dense_views(
            x,
            generator,
            crop_size=cfg.crop_size,
            num_points=cfg.points_per_image,
            mean=self.norm_mean,
            std=self.norm_std,
            appearance=cfg.appearance,
            crop_scale=cfg.crop_scale,
            rot90=cfg.rot90,
            rgb=len(self.bands) == 3,
        )
        n = v.view1.shape[0]
        mask = v.valid.reshape(-1)
        both = self.cl(torch.cat([v.view1, v.view2]))
        feats = self.unet(both)
        # sample in float32: bf16 grid coordinates would be off by up to a quarter pixel
        f1, f2 = feats[:n].float(), feats[n:].float()
        s1 = sample_at(f1, v.points1).reshape(-1, f1.shape[1])[mask]
        s2 = sample_at(f2, v.points2).reshape(-1, f2.shape[1])[mask]
        if s1.shape[0] < 2:  # no overlap anywhere: nothing to contrast in this batch
            zero = feats.sum() * 0.0
            return StepOutput(loss=zero, embeddings=s1.detach())
        z1 = _project_points(self.projection, s1)
        z2 = _project_points(self.projection, s2)
        if self.unet_k is not None and self.projection_k is not None:
            momentum_update(self.unet, self.unet_k, cfg.key_momentum)
            momentum_update(self.projection, self.projection_k, cfg.key_momentum)
            with torch.no_grad():
                fk = self.unet_k(both).float()
                k1 = _project_points(
                    self.projection_k, sample_at(fk[:n], v.points1).reshape(-1, fk.shape[1])[mask]
                )
                k2 = _project_points(
                    self.projection_k, sample_at(fk[n:], v.points2).reshape(-1, fk.shape[1])[mask]
                )
            loss = 0.5 * (
                dense_info_nce(z1, k2, cfg.temperature, symmetric=False)
                + dense_info_nce(z2, k1, cfg.temperature, symmetric=False)
            )
        else:
            loss = dense_info_nce(z1, z2, cfg.temperature, symmetric=cfg.symmetric)
        logs = {"train/valid_points": mask.float().mean()}
        return StepOutput(loss=loss, embeddings=z1, logs=logs)

    def encode_probe(self, split: ProbeSplit) -> tuple[Tensor, Tensor]:
        feats, labels = [], []
        for sl, x in self._probe_batches(split):
            f, y = self._pixel_features(self.unet(self.cl(self.standardize(x))), split, sl)
            feats.append(f)
            labels.append(y)
        return torch.cat(feats), torch.cat(labels)

    def encoder_module(self) -> nn.Module:
        return self.unet

    def architecture(self) -> dict[str, Any]:
        return {
            "kind": "unet",
            "depth": self.cfg.depth,
            "in_channels": len(self.bands),
            "bands": list(self.bands),
            "out_channels": self.cfg.feature_dim,
            "decoder_channels": list(self.unet.decoder_channels),
            "out_dim": self.cfg.feature_dim,
        }

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        params = [p for p in self.parameters() if p.requires_grad]
        opt: torch.optim.Optimizer
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay
            )
        else:
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return {
            "optimizer": opt,
            "lr_scheduler": _step_schedule(opt, cfg.max_epochs, cfg.lr_milestones, cfg.lr_gamma),
        }


# ---------------------------------------------------------------------------------------------
# CSCL stage 1
# ---------------------------------------------------------------------------------------------


class CSCLTask(PretrainTask):
    """``cscl`` stage 1 (Tarasiou, Guler, Zafeiriou 2021/2022), supervised by label affinities.

    ``labels: croptype``: 3-D U-Net over ``[T, 14, H, W]`` (13 bands as reflectance + doy / 365)
    → 128-d per-pixel embeddings; ``labels: landcover``: a ResNet U-Net on standardised
    single-date images. Then :class:`~s2ssl.ssl.losses.CSCLHead` (3×3, dilation 1) and
    ``L = mean(−w⁺·y·s + (1 − y)·s)``, w⁺ = 0.125, unknown (255) pixels excluded. Adam (lr 1e-4)
    with lr × 0.975 per epoch, as the paper. The backbone is what transfers (stage 2 drops the
    similarity head).
    """

    def __init__(
        self, method: str, config: dict[str, Any], probe: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(method, config, probe, **kwargs)
        self.cfg = CSCLConfig.model_validate(config)
        dim = self.cfg.embedding_dim
        self.time_series = self.cfg.labels == "croptype"
        self.backbone: nn.Module
        self._decoder_channels: tuple[int, ...] = ()
        if self.time_series:
            self.backbone = UNet3D(len(self.bands) + 1, self.num_dates, dim, self.cfg.features)
        else:
            unet = ResNetUNet(self.cfg.depth, len(self.bands), dim)
            self._decoder_channels = unet.decoder_channels
            self.backbone = unet
        self.head = CSCLHead(dim, dim, self.cfg.kernel_size, self.cfg.dilation)

    def normalization(self) -> dict[str, Any]:
        if not self.time_series:
            return super().normalization()
        return {
            "kind": "reflectance_doy",
            "formula": "bands: DN_after_offset * 1e-4; extra last channel: day_of_year / 365",
        }

    def shared_step(self, batch: dict[str, Tensor], generator: torch.Generator) -> StepOutput:
        cfg = self.cfg
        image = to_reflectance(batch["image"])
        if self.time_series:
            x, y = cscl_batch(
                image,
                batch["label"],
                generator,
                doy=batch["doy"],
                crop_size=cfg.crop_size,
                flip=cfg.flip,
                rot90=cfg.rot90,
            )
        else:
            x, y = cscl_batch(
                image[:, 0],
                batch["label"],
                generator,
                crop_size=cfg.crop_size,
                flip=cfg.flip,
                rot90=cfg.rot90,
                mean=self.norm_mean,
                std=self.norm_std,
            )
            x = self.cl(x)
        emb = self.backbone(x)
        sims = self.head(emb)
        targets, valid = cscl_targets(y, cfg.kernel_size, cfg.dilation, ignore_index=LABEL_IGNORE)
        loss = cscl_loss(sims, targets, valid, cfg.pos_weight)
        flat = emb.detach().permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
        stride = max(1, flat.shape[0] // _STD_ROWS)
        logs = {"train/target_same_fraction": targets[valid].mean()}
        return StepOutput(loss=loss, embeddings=flat[::stride], logs=logs)

    def encode_probe(self, split: ProbeSplit) -> tuple[Tensor, Tensor]:
        feats, labels = [], []
        for sl, x in self._probe_batches(split):
            if self.time_series:
                if split.doy is None:
                    raise ValueError("the CSCL time-series probe needs doy")
                inputs = append_doy_channel(x, split.doy[sl].to(self.device))
            else:
                inputs = self.cl(self.standardize(x))
            f, y = self._pixel_features(self.backbone(inputs), split, sl)
            feats.append(f)
            labels.append(y)
        return torch.cat(feats), torch.cat(labels)

    def encoder_module(self) -> nn.Module:
        return self.backbone

    def architecture(self) -> dict[str, Any]:
        if self.time_series:
            return {
                "kind": "unet3d",
                "in_channels": len(self.bands) + 1,
                "timesteps": self.num_dates,
                "out_channels": self.cfg.embedding_dim,
                "features": self.cfg.features,
                "bands": [*self.bands, "doy"],
                "out_dim": self.cfg.embedding_dim,
            }
        return {
            "kind": "unet",
            "depth": self.cfg.depth,
            "in_channels": len(self.bands),
            "bands": list(self.bands),
            "out_channels": self.cfg.embedding_dim,
            "decoder_channels": list(self._decoder_channels),
            "out_dim": self.cfg.embedding_dim,
        }

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        opt = torch.optim.Adam(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


# ---------------------------------------------------------------------------------------------


_TASKS: Final[dict[str, type[PretrainTask]]] = {
    "seco": MocoTask,
    "moco": MocoTask,
    "moco_tp": MocoTask,
    "dense": DenseTask,
    "cscl": CSCLTask,
}


def build_task(
    method: str,
    config: PretrainConfig,
    *,
    seed: int,
    bands: tuple[str, ...],
    norm_stats: NormStats,
    num_dates: int,
) -> PretrainTask:
    """The Lightning module of ``method`` (weights initialised from torch's global RNG)."""
    if method not in _TASKS:
        raise ValueError(f"unknown pre-training method {method!r}; choose one of {list(_TASKS)}")
    stats = norm_stats.select(bands)
    return _TASKS[method](
        method,
        config.method_config(method).model_dump(mode="json"),
        config.probe.model_dump(mode="json"),
        seed=seed,
        bands=list(bands),
        norm_mean=list(stats.mean),
        norm_std=list(stats.std),
        num_dates=num_dates,
        norm_stats=stats.to_json(),
    )

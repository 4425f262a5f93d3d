"""The base of the pre-training methods' Lightning modules (:class:`PretrainTask`).

Views are built in ``training_step`` on the training device with a generator seeded from
``(seed, epoch, batch, rank)``; after every epoch the online kNN probe (:mod:`s2ssl.ssl.probe`)
logs ``probe/knn_acc`` (checkpoint selection) and the collapse monitor
``monitor/embedding_std`` is the epoch mean over training batches; a per-epoch history travels in
the checkpoints; queues and momentum encoders are buffers / submodules, so they are checkpointed
and a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

import lightning as L
import torch
from torch import Tensor, nn

from s2ssl.config import ProbeConfig
from s2ssl.seeding import derive_seed
from s2ssl.ssl.appearance import normalize
from s2ssl.ssl.probe import ProbeData, ProbeSplit, gather_pixels
from s2ssl.ssl.views import to_reflectance
from s2ssl.training.knn import embedding_std, knn_accuracy

__all__ = [
    "PretrainTask",
    "ProbeResult",
    "StepOutput",
    "freeze",
    "step_schedule",
]


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


def freeze(module: _M) -> _M:
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
        """What :func:`s2ssl.models.saved.load_encoder` needs to rebuild :meth:`encoder_module`."""

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


def step_schedule(
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

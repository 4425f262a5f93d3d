"""The contrastive scene-level methods: ``seco``, ``moco``, ``moco_tp``.

* :class:`MocoTask` — ``seco`` (Mañas et al., "Seasonal Contrast", ICCV 2021): a query
  ResNet + 3 projection heads, momentum key encoder + heads, one queue per head,
  :func:`~s2ssl.ssl.losses.seco_loss` over views ``q, k0, k1, k2``; with one head it is the
  ``moco`` / ``moco_tp`` MoCo-v2 baseline (Chen et al., "Improved Baselines with Momentum
  Contrastive Learning", 2020) as in SeCo's code.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2ssl.bands import BAND_PRESETS
from s2ssl.config import MocoConfig
from s2ssl.models.heads import ProjectionMLP
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.seeding import derive_seed
from s2ssl.ssl.losses import seco_loss
from s2ssl.ssl.methods.base import PretrainTask, StepOutput, freeze, step_schedule
from s2ssl.ssl.momentum import KeyQueue, momentum_update
from s2ssl.ssl.probe import ProbeSplit
from s2ssl.ssl.views import moco_views, seco_views, to_reflectance

__all__ = ["MocoTask"]


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
        self.rgb = self.bands == BAND_PRESETS["rgb"]
        c = len(self.bands)
        self.encoder_q = ResNetEncoder(self.cfg.depth, c)
        d = self.encoder_q.out_dim
        self.heads_q = nn.ModuleList(
            ProjectionMLP(d, d, self.cfg.embedding_dim) for _ in range(self.num_heads)
        )
        self.encoder_k = freeze(copy.deepcopy(self.encoder_q))
        self.heads_k = freeze(copy.deepcopy(self.heads_q))
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
            "lr_scheduler": step_schedule(opt, cfg.max_epochs, cfg.lr_milestones, cfg.lr_gamma),
        }

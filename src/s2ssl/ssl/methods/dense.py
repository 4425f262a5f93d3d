"""Dense pixel contrast: ``dense``.

* :class:`DenseTask` — ``dense`` (Embedding Earth, Tarasiou & Zafeiriou 2022; design ours): a
  ResNet U-Net with a 1x1 projection head, pixel InfoNCE between the same ground positions in
  two dates (:func:`~s2ssl.ssl.losses.dense_info_nce`), optional momentum key encoder.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from s2ssl.bands import BAND_PRESETS
from s2ssl.config import DenseConfig
from s2ssl.models.heads import PixelProjection
from s2ssl.models.unet import ResNetUNet
from s2ssl.ssl.losses import dense_info_nce
from s2ssl.ssl.methods.base import PretrainTask, StepOutput, freeze, step_schedule
from s2ssl.ssl.momentum import momentum_update
from s2ssl.ssl.probe import ProbeSplit
from s2ssl.ssl.resample import sample_at
from s2ssl.ssl.views import dense_views, to_reflectance

__all__ = ["DenseTask"]


def _project_points(projection: nn.Module, points: Tensor) -> Tensor:
    """Apply a 1x1-conv projection head to point features ``[M, D]`` (BN over the M points)."""
    out = projection(points.T[None, :, :, None])  # [1, E, M, 1]
    return out[0, :, :, 0].T


class DenseTask(PretrainTask):
    """``dense``: per-pixel contrastive pre-training of a ResNet U-Net (Embedding Earth design).

    Tarasiou & Zafeiriou 2022 (official code never released): both views (two dates,
    independent crop / flip / rot90 / appearance) go through the U-Net in one batch; U-Net features
    are read at ``points_per_image`` tracked ground positions per image
    (:func:`~s2ssl.ssl.resample.sample_at`, bilinear), projected by the 1x1 head (on the sampled
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
            self.unet_k = freeze(copy.deepcopy(self.unet))
            self.projection_k = freeze(copy.deepcopy(self.projection))

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
            rgb=self.bands == BAND_PRESETS["rgb"],
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
            "lr_scheduler": step_schedule(opt, cfg.max_epochs, cfg.lr_milestones, cfg.lr_gamma),
        }

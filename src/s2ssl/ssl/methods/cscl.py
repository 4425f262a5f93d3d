"""Context-self contrastive pre-training: ``cscl`` stage 1.

* :class:`CSCLTask` — ``cscl`` stage 1 (Tarasiou, Guler, Zafeiriou, "Context-self contrastive
  pretraining for crop type semantic segmentation", IEEE TGRS 2022): 3-D U-Net (or ResNet U-Net
  on single-date land cover) + :class:`~s2ssl.ssl.losses.CSCLHead`,
  ``L = mean(−w⁺·y·s + (1 − y)·s)`` against :func:`~s2ssl.ssl.losses.cscl_targets`.
"""

from __future__ import annotations

from typing import Any, Final

import torch
from torch import Tensor, nn

from s2ssl.classes import LABEL_IGNORE
from s2ssl.config import CSCLConfig
from s2ssl.data.temporal import select_dates, temporal_sampling
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D, append_doy_channel
from s2ssl.seeding import derive_seed
from s2ssl.ssl.losses import CSCLHead, cscl_loss, cscl_targets
from s2ssl.ssl.methods.base import PretrainTask, StepOutput
from s2ssl.ssl.probe import ProbeSplit
from s2ssl.ssl.views import cscl_batch, to_reflectance

__all__ = ["CSCLTask"]


_STD_ROWS: Final[int] = 2048
"""Pixel embeddings used for the collapse monitor of dense / CSCL batches (strided subsample)."""


class CSCLTask(PretrainTask):
    """``cscl`` stage 1 (Tarasiou, Guler, Zafeiriou 2021/2022), supervised by label affinities.

    ``labels: croptype``: 3-D U-Net over ``[T, C + 1, H, W]`` (the bands as reflectance + doy / 365)
    → 128-d per-pixel embeddings; ``labels: landcover``: a ResNet U-Net on standardised
    single-date images. Then :class:`~s2ssl.ssl.losses.CSCLHead` (3×3, dilation 1) and
    ``L = mean(−w⁺·y·s + (1 − y)·s)``, w⁺ = 0.125, unknown (255) pixels excluded. Adam (lr 1e-4)
    with lr × 0.975 per epoch, as the paper. The backbone is what transfers (stage 2 drops the
    similarity head). On time series each step sees ``num_dates`` of every series' real dates,
    a random subset drawn with :meth:`date_generator`
    (:func:`~s2ssl.data.temporal.select_dates`).
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

    def date_generator(self) -> torch.Generator:
        """The CPU generator of a training step's date draws, seeded from (seed, epoch, step,
        rank); separate from the augmentation generator."""
        seed = derive_seed(self.seed, self.current_epoch, self.global_step, self.rank, 0xDA7E)
        return torch.Generator().manual_seed(seed)

    def shared_step(self, batch: dict[str, Tensor], generator: torch.Generator) -> StepOutput:
        cfg = self.cfg
        if self.time_series:
            raw, doy = select_dates(
                batch["image"],
                batch["doy"],
                batch.get("n_dates"),
                self.num_dates,
                self.date_generator(),
            )
            x, y = cscl_batch(
                to_reflectance(raw),
                batch["label"],
                generator,
                doy=doy,
                crop_size=cfg.crop_size,
                flip=cfg.flip,
                rot90=cfg.rot90,
            )
        else:
            x, y = cscl_batch(
                to_reflectance(batch["image"])[:, 0],
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
                "dates": temporal_sampling(self.num_dates),
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

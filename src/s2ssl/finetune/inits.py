"""Initialise a downstream network from random weights or from a pre-trained encoder.

Transfer rules:

* land cover (:class:`~s2ssl.models.downstream.SegmentationNet`): a SeCo-family ResNet initialises
  the U-Net's encoder (decoder random); a pre-trained U-Net (``dense``, or ``cscl`` trained with
  ``labels: landcover``) initialises the whole U-Net (Embedding Earth); the 1×1 classifier is new;
* crop type (:class:`~s2ssl.models.downstream.TimeSeriesSegmentationNet`): CSCL stage 2 reloads the
  3-D U-Net backbone of stage 1 (similarity head dropped) under a fresh classifier;
* scenes (:class:`~s2ssl.models.downstream.SceneNet`; multi-label scenes:
  :class:`~s2ssl.models.downstream.MultilabelSceneNet`): a ResNet encoder (the U-Net's encoder
  for ``dense``) with a fresh linear layer;
* a published encoder (a name of ``finetune.published``, :mod:`s2ssl.models.published`) is a
  ResNet: it initialises the U-Net's encoder (land cover) or the scene encoder. Its bands are the
  checkpoint's, which the run's data (``params.band_names``) must hold, unless ``adapt_bands``
  rebuilds the first convolution for the run's bands. Its input standardisation is the
  published pipeline's written on reflectance (SSL4EO: ``DN / 10000``, mean 0, std 1; SeCo: its
  quantile stretch + ImageNet normalisation as one affine map); the load report goes into
  :attr:`InitInfo.load_report` and the run record.

A pre-trained init brings its own bands and input standardisation (the statistics of the
pre-training data, recorded in the encoder's ``meta.json``); ``random`` uses the task's bands and
the statistics of the downstream training data (random init takes ``params.band_names``, or
B02, B03, B04 for ``bands: rgb``). Pre-trained weights are copied bit for bit.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from s2ssl.bands import BAND_PRESETS, missing_bands
from s2ssl.config import (
    RANDOM_INITS,
    CroptypeFinetune,
    ImageClassifierFinetune,
    LandcoverFinetune,
    Params,
    PublishedWeights,
)
from s2ssl.finetune.data import TaskData
from s2ssl.models.adapt import adapt_first_conv
from s2ssl.models.downstream import (
    DownstreamNet,
    MultilabelSceneNet,
    SceneNet,
    SegmentationNet,
    TimeSeriesSegmentationNet,
)
from s2ssl.models.published import PublishedEncoder, load_published
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.saved import encoder_dir, load_encoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D
from s2ssl.taskspec import task_spec

__all__ = ["InitInfo", "encoder_path", "initial_model", "published_encoder", "scene_net_class"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitInfo:
    """Where a downstream network's starting weights came from."""

    init: str
    bands: tuple[str, ...]
    encoder: str | None = None
    """Path of the pre-trained encoder directory (``None`` for random init)."""
    encoder_sha256: str | None = None
    """SHA-256 of the encoder's ``weights.pt`` (lineage)."""
    transferred: tuple[str, ...] = ()
    """State-dict keys of the downstream network that hold pre-trained weights."""
    encoder_meta: dict[str, Any] = field(default_factory=dict)
    load_report: dict[str, Any] = field(default_factory=dict)
    """:meth:`s2ssl.models.published.LoadReport.as_dict` of a published init (else empty)."""


def encoder_path(models_dir: str | Path, method: str, unit: str) -> Path:
    """The exported encoder of pre-training ``method``'s run ``unit`` (``r<k>``, CSCL stage 1
    ``r<k>.<setting>.f<pct>``) under ``models_dir`` (models/pretrain)."""
    return encoder_dir(models_dir, method, unit)


def _bands(choice: str, params: Params) -> tuple[str, ...]:
    """Random-init bands: ``all`` = the run's bands (``params.band_names``), ``rgb`` = the
    ``rgb`` preset; every one must be in the run's data."""
    bands = tuple(BAND_PRESETS["rgb"]) if choice == "rgb" else tuple(params.band_names)
    absent = missing_bands(params.band_names, bands)
    if absent:
        raise ValueError(
            f"bands: {choice} needs {list(absent)}, which the data (bands: {params.bands}) "
            "lacks; set the task's bands to all or add them to the top-level bands"
        )
    return bands


def published_encoder(
    name: str, spec: PublishedWeights, params: Params, data: TaskData
) -> PublishedEncoder:
    """Load ``finetune.published.<name>`` for a run on ``params.band_names``: refuse a
    checkpoint whose bands the data lack (naming them) unless ``adapt_bands``, then adapt its
    first convolution; the load report is printed (stderr) and logged."""
    loaded = load_published(spec.path, format=spec.format, bands=spec.bands)
    run_bands = tuple(params.band_names)
    absent = missing_bands(run_bands, loaded.bands)
    if absent and not spec.adapt_bands:
        raise ValueError(
            f"finetune.published.{name} ({spec.path}) needs bands {list(absent)} that the run's "
            f"data (bands: {list(run_bands)}) lacks; add them to the top-level bands or set "
            f"finetune.published.{name}.adapt_bands: true"
        )
    if spec.adapt_bands and tuple(loaded.bands) != run_bands:
        stats = data.norm_stats
        fill_mean = dict(zip(stats.bands, stats.mean, strict=True))
        fill_std = dict(zip(stats.bands, stats.std, strict=True))
        loaded = adapt_first_conv(loaded, run_bands, fill_mean, fill_std)
    summary = f"finetune.published.{name}: {loaded.report.summary()}"
    print(summary, file=sys.stderr)
    _LOG.info(summary)
    return loaded


def _from_published(
    task: str, init: str, params: Params, data: TaskData
) -> tuple[DownstreamNet, InitInfo]:
    cfg = params.finetune.task_config(task)
    spec = params.finetune.published[init]
    loaded = published_encoder(init, spec, params, data)
    encoder, bands = loaded.encoder, loaded.bands
    mean, std = list(loaded.mean), list(loaded.std)
    if task == "landcover" and isinstance(cfg, LandcoverFinetune):
        unet = ResNetUNet(encoder.depth, encoder.in_channels, cfg.feature_dim)
        unet.encoder.load_state_dict(encoder.state_dict(), strict=True)
        model: DownstreamNet = SegmentationNet(unet.train(), bands, data.class_set, mean, std)
        transferred = _prefixed("backbone.encoder", encoder)
    elif task_spec(task).is_scene_level:
        net = scene_net_class(task)
        model = net(encoder.train(), bands, data.class_set, mean, std)
        transferred = _prefixed("encoder", encoder)
    else:
        raise ValueError(
            f"the published init {init!r} is a 2-D ResNet; it cannot initialise {task}"
        )
    report = loaded.report
    info = InitInfo(init, bands, report.source, report.sha256, transferred, {}, report.as_dict())
    return model, info


def scene_net_class(task: str) -> type[SceneNet]:
    """The network of image-level ``task``: :class:`MultilabelSceneNet` for a multi-label task,
    else :class:`SceneNet`."""
    return MultilabelSceneNet if task_spec(task).is_multilabel else SceneNet


def _standardisation(meta: dict[str, Any], path: Path) -> tuple[list[float], list[float]]:
    norm = meta.get("normalization", {})
    if norm.get("kind") != "standardize":
        raise ValueError(
            f"the encoder at {path} expects {norm.get('kind')!r} inputs, not per-band "
            "standardised single-date images; it cannot initialise this task"
        )
    return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]


def _load(
    models_dir: Path, init: str, task: str, unit: str
) -> tuple[nn.Module, dict[str, Any], Path, str]:
    path = encoder_path(models_dir, init, unit)
    if not path.exists():
        stage = "pretrain_cscl" if init == "cscl" else f"pretrain@{init}"
        raise ValueError(
            f"finetune.{task}.inits has {init!r} but no pre-trained encoder of run {unit!r} "
            f"exists at {path}; run `dvc repro {stage}` (with the same evaluate.replicates and, "
            f"for cscl, label fractions) or remove it from finetune.{task}.inits"
        )
    module, meta = load_encoder(path)
    digest = hashlib.sha256((path / "weights.pt").read_bytes()).hexdigest()
    return module, meta, path, digest


def _prefixed(prefix: str, module: nn.Module) -> tuple[str, ...]:
    return tuple(f"{prefix}.{k}" for k in module.state_dict())


def initial_model(
    task: str,
    init: str,
    params: Params,
    data: TaskData,
    models_dir: str | Path,
    unit: str = "r0",
) -> tuple[DownstreamNet, InitInfo]:
    """The untrained downstream network of ``task`` initialised as ``init`` says (``random`` and
    ``random_b``: random weights; a name of ``finetune.published``: that published encoder;
    else the encoder of pre-training run ``unit``).

    Raises:
        ValueError: an encoder that is missing or cannot initialise ``task`` (wrong kind, number
            of dates), with what to do about it.
    """
    cfg = params.finetune.task_config(task)
    classes = data.class_set
    models = Path(models_dir)
    if task == "croptype":
        if not isinstance(cfg, CroptypeFinetune):  # pragma: no cover - task_config guarantees
            raise TypeError("croptype needs a CroptypeFinetune config")
        return _croptype(init, cfg, params, data, models, unit)
    if init not in RANDOM_INITS and init in params.finetune.published:
        return _from_published(task, init, params, data)
    if init in RANDOM_INITS:
        if not isinstance(cfg, LandcoverFinetune | ImageClassifierFinetune):  # pragma: no cover
            raise TypeError(f"{task} needs a LandcoverFinetune / ImageClassifierFinetune config")
        bands = _bands(cfg.bands, params)
        stats = data.norm_stats.select(bands)
        mean, std = list(stats.mean), list(stats.std)
        if task == "landcover" and isinstance(cfg, LandcoverFinetune):
            unet = ResNetUNet(cfg.depth, len(bands), cfg.feature_dim)
            return SegmentationNet(unet, bands, classes, mean, std), InitInfo(init, bands)
        encoder = ResNetEncoder(cfg.depth, len(bands))
        net = scene_net_class(task)
        return net(encoder, bands, classes, mean, std), InitInfo(init, bands)

    module, meta, path, digest = _load(models, init, task, unit)
    bands = tuple(str(b) for b in meta.get("bands", []))
    kind = meta.get("architecture", {}).get("kind")
    if kind == "unet3d":
        raise ValueError(
            f"the {init} encoder at {path} is a 3-D U-Net for time series; it cannot initialise "
            f"the single-date {task} task (set pretrain.cscl.labels: landcover for a single-date "
            f"CSCL encoder, or remove {init!r} from finetune.{task}.inits)"
        )
    mean, std = _standardisation(meta, path)
    if task == "landcover":
        if not isinstance(cfg, LandcoverFinetune):  # pragma: no cover
            raise TypeError("landcover needs a LandcoverFinetune config")
        if isinstance(module, ResNetUNet):
            unet = module
            transferred = _prefixed("backbone", unet)
        elif isinstance(module, ResNetEncoder):
            unet = ResNetUNet(module.depth, module.in_channels, cfg.feature_dim)
            unet.encoder.load_state_dict(module.state_dict(), strict=True)
            transferred = _prefixed("backbone.encoder", module)
        else:  # pragma: no cover - build_encoder only makes these kinds
            raise ValueError(f"unexpected encoder {type(module).__name__} at {path}")
        model: DownstreamNet = SegmentationNet(unet.train(), bands, classes, mean, std)
    elif task_spec(task).is_scene_level:
        encoder = module.encoder if isinstance(module, ResNetUNet) else module
        if not isinstance(encoder, ResNetEncoder):  # pragma: no cover
            raise ValueError(f"unexpected encoder {type(module).__name__} at {path}")
        model = scene_net_class(task)(encoder.train(), bands, classes, mean, std)
        transferred = _prefixed("encoder", encoder)
    else:
        raise ValueError(f"unknown task {task!r}")
    info = InitInfo(init, bands, str(path), digest, transferred, meta)
    return model, info


def _croptype(
    init: str, cfg: CroptypeFinetune, params: Params, data: TaskData, models: Path, unit: str
) -> tuple[DownstreamNet, InitInfo]:
    bands = tuple(params.band_names)
    timesteps = data.series_length(cfg.n_dates, "finetune.croptype.n_dates")
    if init in RANDOM_INITS:
        backbone = UNet3D(len(bands) + 1, timesteps, cfg.embedding_dim, cfg.features)
        return TimeSeriesSegmentationNet(backbone, bands, data.class_set), InitInfo(init, bands)
    module, meta, path, digest = _load(models, init, "croptype", unit)
    if not isinstance(module, UNet3D):
        raise ValueError(
            f"the {init} encoder at {path} is not a 3-D U-Net (kind "
            f"{meta.get('architecture', {}).get('kind')!r}); crop-type fine-tuning needs CSCL "
            "stage 1 on time series (pretrain.cscl.labels: croptype)"
        )
    if module.timesteps != timesteps:
        raise ValueError(
            f"the {init} encoder at {path} takes {module.timesteps} dates, fine-tuning "
            f"{timesteps}; set finetune.croptype.n_dates and pretrain.cscl.n_dates to the same "
            "number of dates, or pre-train again on this data"
        )
    enc_bands = tuple(str(b) for b in meta.get("bands", bands))
    model = TimeSeriesSegmentationNet(module.train(), enc_bands, data.class_set)
    info = InitInfo(init, enc_bands, str(path), digest, _prefixed("backbone", module), meta)
    return model, info

"""The ``pretrain`` section: the methods, their hyperparameters, the online probe, the hardware."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from s2ssl.config.common import (
    Fraction,
    PositiveInt,
    StrictModel,
    check_n_dates,
    section_json,
)

__all__ = [
    "PRETRAIN_METHODS",
    "AppearanceConfig",
    "CSCLConfig",
    "DenseConfig",
    "MocoConfig",
    "PretrainConfig",
    "PretrainMethod",
    "ProbeConfig",
    "SgdCropTraining",
]

PRETRAIN_METHODS: tuple[str, ...] = ("seco", "moco", "moco_tp", "dense", "cscl")
"""Pre-training methods; each is one DVC ``foreach`` item of the ``pretrain`` stage."""

PretrainMethod = Literal["seco", "moco", "moco_tp", "dense", "cscl"]


def _check_pair(v: tuple[float, float], low: float, high: float, what: str) -> tuple[float, float]:
    lo, hi = v
    if not low < lo <= hi <= high:
        raise ValueError(
            f"{what} must be [low, high] with {low} < low <= high <= {high}, got {[lo, hi]}"
        )
    return v


def _check_milestones(v: tuple[float, ...]) -> tuple[float, ...]:
    if any(not 0.0 < m < 1.0 for m in v) or list(v) != sorted(set(v)):
        raise ValueError(
            f"must be increasing fractions of max_epochs in (0, 1), e.g. [0.6, 0.8], got {list(v)}"
        )
    return v


class AppearanceConfig(StrictModel):
    """The appearance augmentation ``A`` (SeCo / MoCo-v2, adapted to multispectral input).

    SeCo's RGB pipeline (colour jitter 0.4 with p = 0.8, grayscale p = 0.2, Gaussian blur σ in
    [0.1, 2] with p = 0.5, horizontal flip) becomes band-wise brightness/contrast, blur, optional
    noise and flips (our choice). Grayscale only applies to RGB input.
    """

    brightness: float = Field(ge=0, le=2, description="shift, in band std units")
    contrast: float = Field(ge=0, le=1, description="factor range 1 ± contrast")
    jitter_p: Fraction = Field(description="probability of brightness/contrast")
    grayscale_p: Fraction = Field(description="RGB input only (SeCo)")
    blur_p: Fraction
    blur_sigma: tuple[float, float]
    noise_p: Fraction
    noise_std: float = Field(ge=0, le=1, description="reflectance units")
    flip: bool = Field(description="random horizontal flip (part of A in SeCo)")

    @field_validator("blur_sigma")
    @classmethod
    def _sigma(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _check_pair(v, 0.0, 20.0, "blur_sigma")


class ProbeConfig(StrictModel):
    """Online cosine kNN probe run after every pre-training epoch.

    Votes are weighted by ``exp(cos / temperature)`` (Wu et al. 2018 "InstDisc"; DINO, Caron et
    al. 2021) or counted (``voting: majority``).
    """

    k: PositiveInt
    temperature: float = Field(gt=0, le=10)
    voting: Literal["weighted", "majority"]
    bank_size: PositiveInt = Field(description="scene level: max bank patches")
    query_size: PositiveInt = Field(description="scene level: max query patches")
    scene_tile: PositiveInt = Field(
        description="scene level: patches are cut into tiles labelled by majority"
    )
    pixel_bank_images: PositiveInt = Field(description="pixel level: bank images")
    pixel_query_images: PositiveInt = Field(description="pixel level: query images")
    pixels_per_image: PositiveInt = Field(description="pixel level: pixels per image")
    batch_size: PositiveInt = Field(description="images per encoding batch")


class SgdCropTraining(StrictModel):
    """What the contrastive methods share: random-resized-crop scale and the SGD step schedule
    (lr × ``lr_gamma`` at the ``lr_milestones`` fractions of ``max_epochs``)."""

    crop_scale: tuple[float, float]
    lr: float = Field(gt=0, le=10)
    sgd_momentum: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0, le=1)
    lr_milestones: tuple[float, ...]
    lr_gamma: float = Field(gt=0, le=1)

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, v: tuple[float, float]) -> tuple[float, float]:
        return _check_pair(v, 0.0, 1.0, "crop_scale")

    @field_validator("lr_milestones")
    @classmethod
    def _milestones(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        return _check_milestones(v)


class MocoConfig(SgdCropTraining):
    """``seco``, ``moco`` and ``moco_tp`` (Mañas et al., ICCV 2021; MoCo-v2, Chen et al. 2020).

    Paper defaults: ResNet-18, RGB, SGD lr 0.03 momentum 0.9 wd 1e-4, batch 256, 200 epochs with lr
    × 0.1 at 60 % and 80 %, key momentum 0.999, K = 16384, τ = 0.07. The values in ``params.yaml``
    fit the CPU budget and the small synthetic world (384 locations): the queue must stay far below
    the training set size — with K close to N a location's own stale key from the previous epoch is
    often still queued and acts as a negative (measured: with K = 256 the loss rose towards chance
    and the embeddings collapsed); K = 64 makes that rare (≈ (K/N)²/2 of the queries). With a few
    hundred steps a key momentum of 0.99 lets the key encoder follow. The learning rate follows
    MoCo's linear scaling rule, 0.03 × batch / 256 = 0.00375 at batch 32 (measured on the default
    world, SeCo, 10 epochs: with lr 0.03 the embedding std fell to 0.005 and the loss stayed near
    chance; with 0.00375 the loss fell 12.9 → 12.1 and the std stayed 0.02–0.03).
    """

    lr: float = Field(gt=0, le=10, description="paper: 0.03 at batch 256")
    max_epochs: PositiveInt
    batch_size: int = Field(ge=2, le=65536)
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    crop_size: int = Field(ge=32, le=1024, description="output of the resized crop")
    embedding_dim: PositiveInt
    queue_size: PositiveInt
    temperature: float = Field(gt=0, le=10)
    key_momentum: float = Field(ge=0, le=1)
    appearance: AppearanceConfig


class DenseConfig(SgdCropTraining):
    """``dense``: pixel-level contrastive pre-training of a ResNet U-Net (Embedding Earth, Tarasiou
    & Zafeiriou 2022; the official code was never released, the design is ours)."""

    max_epochs: PositiveInt
    batch_size: int = Field(ge=2, le=65536)
    depth: Literal[18, 50]
    bands: Literal["rgb", "all"]
    crop_size: int = Field(ge=32, le=1024)
    crop_scale: tuple[float, float] = Field(
        description="larger than SeCo's 0.2 so two crops overlap"
    )
    rot90: bool
    points_per_image: PositiveInt
    feature_dim: PositiveInt = Field(description="U-Net per-pixel output channels")
    embedding_dim: PositiveInt
    temperature: float = Field(gt=0, le=10)
    symmetric: bool
    key_encoder: bool = Field(description="momentum (dual) key encoder")
    key_momentum: float = Field(ge=0, le=1)
    optimizer: Literal["sgd", "adamw"]
    appearance: AppearanceConfig

    @field_validator("crop_size")
    @classmethod
    def _div32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be divisible by 32 (the U-Net's output stride), got {v}")
        return v


class CSCLConfig(StrictModel):
    """``cscl``: stage 1 of CSCL (Tarasiou, Guler, Zafeiriou 2021/2022), supervised.

    ``labels: croptype`` trains the 3-D U-Net on the crop-type time series (every band as
    reflectance + day-of-year / 365); ``labels: landcover`` trains a ResNet U-Net on single-date
    land cover. Paper: U-Net width 16, Adam lr 1e-4 × 0.975 per epoch, batch 32, w⁺ = 0.125,
    3×3 window. ``params.yaml`` shrinks width and crops to fit the CPU budget.

    ``n_dates`` (``labels: croptype``): the number of dates ``T`` the 3-D U-Net takes; every step
    draws a random subset of ``T`` of each series' real dates, the probe spreads ``T`` dates
    evenly (:mod:`s2ssl.data.temporal`); ``null`` takes the whole series, which every sample must
    then have in full. Fine-tuning from this encoder needs the same ``finetune.croptype.n_dates``.
    """

    labels: Literal["croptype", "landcover"]
    max_epochs: PositiveInt
    batch_size: int = Field(ge=1, le=65536)
    features: PositiveInt = Field(description="3-D U-Net base width (paper: 16)")
    depth: Literal[18, 50] = Field(description="ResNet U-Net depth (landcover)")
    crop_size: int | None = Field(
        ge=4, description="random square crop per step (None: whole patch)"
    )
    flip: bool
    rot90: bool
    embedding_dim: PositiveInt
    kernel_size: int = Field(ge=1, le=15)
    dilation: PositiveInt
    pos_weight: float = Field(ge=0, le=10, description="w⁺")
    lr: float = Field(gt=0, le=10)
    lr_decay: float = Field(gt=0, le=1, description="lr factor per epoch")
    weight_decay: float = Field(ge=0, le=1)
    n_dates: int | None = Field(
        ge=4, description="dates the 3-D U-Net takes (null: the dataset's series length)"
    )

    @field_validator("n_dates")
    @classmethod
    def _n_dates(cls, v: int | None) -> int | None:
        return check_n_dates(v)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (a centred window), got {v}")
        return v

    @field_validator("crop_size")
    @classmethod
    def _div4(cls, v: int | None) -> int | None:
        if v is not None and v % 4:
            raise ValueError(
                f"must be divisible by 4 (3-D U-Net; 32 for the ResNet U-Net), got {v}"
            )
        return v

    @model_validator(mode="after")
    def _landcover_crop(self) -> CSCLConfig:
        if self.labels == "landcover" and self.crop_size is not None and self.crop_size % 32:
            raise ValueError(
                f"labels: landcover trains a ResNet U-Net, so crop_size must be divisible by 32 "
                f"or null (whole patch), got {self.crop_size}"
            )
        return self


class PretrainConfig(StrictModel):
    """``pretrain`` stage: which methods run, their hyperparameters, the probe and the hardware.

    ``accelerator`` / ``devices`` / ``strategy`` are Lightning's (``auto`` picks the GPUs when
    present, DDP over several); ``precision: auto`` is ``bf16-mixed`` on CUDA and ``32`` on CPU;
    ``channels_last`` trains the 2-D networks in channels-last memory format (``auto``: on CUDA
    only; the 3-D U-Net always keeps its layout). It changes no result beyond summation order and
    made dense pre-training 15-30 % faster on the 2-core CPU (SeCo / MoCo unchanged), hence on.
    """

    methods: list[Literal["seco", "moco", "moco_tp", "dense"]] = Field(
        min_length=1,
        description="the self-supervised methods (pretrain@<method>); CSCL stage 1 is supervised "
        "and has its own stage (pretrain_cscl), trained per label subset",
    )
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    devices: int | Literal["auto"]
    strategy: Literal["auto", "ddp", "ddp_spawn"]
    num_nodes: PositiveInt
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"]
    channels_last: bool | Literal["auto"]
    deterministic: bool
    num_workers: int = Field(ge=0, le=64)
    limit_train_batches: PositiveInt | None = Field(
        description="cap on training batches per epoch (None: the whole split)"
    )
    log_every_n_steps: PositiveInt
    torch_threads: PositiveInt | None = Field(
        description="torch intra-op threads (None: torch's default, all cores)"
    )
    probe: ProbeConfig
    seco: MocoConfig
    moco: MocoConfig
    moco_tp: MocoConfig
    dense: DenseConfig
    cscl: CSCLConfig

    @field_validator("methods")
    @classmethod
    def _unique_methods(cls, v: list[str]) -> list[str]:
        dupes = sorted({m for m in v if v.count(m) > 1})
        if dupes:
            raise ValueError(f"methods must be unique; repeated: {dupes}")
        return v

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"must be >= 1 or 'auto', got {v}")
        return v

    def method_config(self, method: str) -> MocoConfig | DenseConfig | CSCLConfig:
        """The hyperparameters of ``method`` (one of :data:`PRETRAIN_METHODS`)."""
        if method not in PRETRAIN_METHODS:
            raise ValueError(
                f"unknown pre-training method {method!r}; choose one of {list(PRETRAIN_METHODS)}"
            )
        cfg: MocoConfig | DenseConfig | CSCLConfig = getattr(self, method)
        return cfg

    def stage_params(self, method: str) -> dict[str, Any]:
        """What ``pretrain@<method>`` depends on, as JSON: the keys every method reads and the
        method's own section (never the other methods' sections)."""
        shared = section_json(self, exclude={"methods", *PRETRAIN_METHODS})
        return {**shared, method: self.method_config(method).model_dump(mode="json")}

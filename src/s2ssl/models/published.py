"""Published pre-trained encoders: recognise a checkpoint's layout, re-key it onto
:class:`~s2ssl.models.resnet.ResNetEncoder` and say what was loaded (:class:`LoadReport`).

Layouts (:data:`LAYOUTS`):

* ``ssl4eo_moco``: SSL4EO-S12 MoCo(v2) ResNet-18/50 (Wang et al. 2022, zhu-xlab/SSL4EO-S12):
  ``{"state_dict": {"module.encoder_q.<torchvision name>": ...}}`` from DDP; ``encoder_q.fc``
  (the projection, a ``Linear`` or ``Sequential`` MLP) and the key encoder / queue are dropped.
  13 Level-1C bands in the SSL4EO order ``B01 … B08, B8A, B09, B10, B11, B12`` (12 without B10);
  input ``DN / 10000`` with no further standardisation (their README: "input clip to [0,1] by
  dividing 10000"), i.e. s2ssl reflectance with mean 0, std 1;
* ``seco``: official SeCo Lightning checkpoints (Mañas et al. 2021, ServiceNow/seasonal-contrast):
  ``encoder_q = nn.Sequential(*resnet.children()[:-1], Flatten)``, so ``encoder_q.0`` = conv1,
  ``.1`` = bn1, ``.4`` … ``.7`` = layer1 … layer4. RGB in the channel order B04, B03, B02: the
  input channels of conv1 are permuted to s2ssl's B02, B03, B04. Their input: reflectance × 255 as
  uint8, per-band quantile stretch ``(v - min_q) / (max_q - min_q)`` (B02 3–88, B03 2–103, B04
  0–129), then ImageNet normalisation; as an affine map of reflectance this is
  ``(reflectance - mean) / std`` with ``mean = (min_q + m (max_q - min_q)) / 255`` and
  ``std = s (max_q - min_q) / 255`` (``m``, ``s`` ImageNet's for that colour; the stretch's clip
  to [0, 1] is not reproduced);
* ``torchgeo``: TorchGeo ``.pth`` ResNet weights (timm names, ``fc`` dropped); the bands come from
  the caller or a sidecar ``<file>.json`` (``{"bands": [...], "mean": [...], "std": [...]}``,
  mean / std on reflectance; default mean 0, std 1: TorchGeo's Sentinel-2 weights take
  ``DN / 10000``);
* ``s2ssl``: an s2ssl export: a directory (or file in it) with ``model.safetensors`` +
  ``config.json`` or ``weights.pt`` + ``meta.json``.

A load that leaves any encoder parameter unmatched (missing, or of another shape) is refused
with a :class:`ValueError` naming the parameters and the layouts tried: never a silent random
init.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import torch
from torch import Tensor

from s2ssl.models.interchange import CONFIG_FILE, SAFETENSORS_FILE, read_interchange
from s2ssl.models.resnet import SUPPORTED_DEPTHS, ResNetEncoder
from s2ssl.models.saved import META_FILE, WEIGHTS_FILE

__all__ = [
    "LAYOUTS",
    "SECO_STANDARDISATION",
    "SSL4EO_L1C_BANDS",
    "SSL4EO_L2A_BANDS",
    "LoadReport",
    "PublishedEncoder",
    "load_published",
]

LAYOUTS: Final[tuple[str, ...]] = ("s2ssl", "ssl4eo_moco", "seco", "torchgeo")
"""Checkpoint layouts :func:`load_published` recognises (``format: auto`` tries them in order)."""

SSL4EO_L1C_BANDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
"""Channel order of SSL4EO-S12's 13-band Level-1C pre-training (``ALL_BANDS_S2_L1C``)."""
SSL4EO_L2A_BANDS: Final[tuple[str, ...]] = tuple(b for b in SSL4EO_L1C_BANDS if b != "B10")

_SECO_BANDS: Final[tuple[str, ...]] = ("B04", "B03", "B02")
"""Channel order of SeCo's RGB checkpoints (``RGB_BANDS``)."""
_SECO_QUANTILES: Final[dict[str, tuple[float, float]]] = {
    "B02": (3.0, 88.0),
    "B03": (2.0, 103.0),
    "B04": (0.0, 129.0),
}
_IMAGENET: Final[dict[str, tuple[float, float]]] = {
    "B04": (0.485, 0.229),
    "B03": (0.456, 0.224),
    "B02": (0.406, 0.225),
}
SECO_STANDARDISATION: Final[dict[str, tuple[float, float]]] = {
    b: ((lo + _IMAGENET[b][0] * (hi - lo)) / 255.0, _IMAGENET[b][1] * (hi - lo) / 255.0)
    for b, (lo, hi) in _SECO_QUANTILES.items()
}
"""``band: (mean, std)`` on reflectance equivalent to SeCo's input pipeline (module docstring)."""

_WRAPPERS: Final[tuple[str, ...]] = ("state_dict", "model_state_dict", "model")
_SECO_CHILDREN: Final[dict[str, str]] = {
    "0": "conv1",
    "1": "bn1",
    "4": "layer1",
    "5": "layer2",
    "6": "layer3",
    "7": "layer4",
}
_SECO_KEY = re.compile(r"^encoder_q\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class LoadReport:
    """What a published checkpoint gave the encoder."""

    source: str
    sha256: str
    layout: str
    layouts_tried: tuple[str, ...]
    architecture: str
    matched: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    """Checkpoint entries not used (projection heads, key encoder, queue, ``fc``)."""
    shape_mismatches: tuple[str, ...]
    checkpoint_bands: tuple[str, ...]
    bands: tuple[str, ...]
    scaling: str
    notes: tuple[str, ...] = ()
    adapted: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for run records (the unused entries grouped by their first name part)."""
        out = asdict(self)
        out["matched"] = len(self.matched)
        groups: dict[str, int] = {}
        for key in self.unexpected:
            head = (
                key.split(".")[0] if not key.startswith("module.") else ".".join(key.split(".")[:2])
            )
            groups[head] = groups.get(head, 0) + 1
        out["unexpected"] = dict(sorted(groups.items()))
        for name in ("layouts_tried", "missing", "shape_mismatches", "checkpoint_bands", "bands"):
            out[name] = list(out[name])
        out["notes"] = list(self.notes)
        return out

    def summary(self) -> str:
        """A few printable lines."""
        lines = [
            f"loaded {self.source} as {self.layout} ({self.architecture}): "
            f"{len(self.matched)} parameters matched, {len(self.missing)} missing, "
            f"{len(self.shape_mismatches)} shape mismatches, {len(self.unexpected)} unused",
            f"  bands {list(self.checkpoint_bands)} -> model bands {list(self.bands)}",
            f"  scaling: {self.scaling}",
        ]
        lines += [f"  {note}" for note in self.notes]
        if self.adapted:
            lines.append(f"  first convolution adapted: {self.adapted}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PublishedEncoder:
    """A loaded published encoder, its bands and its input standardisation on reflectance."""

    encoder: ResNetEncoder
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    report: LoadReport


@dataclass(frozen=True)
class _Rekeyed:
    state: dict[str, Tensor]
    unused: tuple[str, ...]
    bands: tuple[str, ...] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    scaling: str
    notes: tuple[str, ...] = ()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unwrap(obj: Any) -> dict[str, Tensor]:
    while isinstance(obj, Mapping):
        wrapped = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if wrapped is None:
            break
        obj = wrapped
    if not isinstance(obj, Mapping):
        raise ValueError(f"the checkpoint holds a {type(obj).__name__}, not a state_dict")
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def _split(state: Mapping[str, Tensor], prefix: str) -> tuple[dict[str, Tensor], list[str]]:
    """Entries under ``prefix`` (prefix removed, ``fc.*`` left out) and the other keys."""
    kept: dict[str, Tensor] = {}
    unused: list[str] = []
    for key, value in state.items():
        if key.startswith(prefix) and not key[len(prefix) :].startswith("fc."):
            kept[key[len(prefix) :]] = value
        else:
            unused.append(key)
    return kept, unused


def _ssl4eo(state: Mapping[str, Tensor], bands: Sequence[str] | None) -> _Rekeyed | None:
    if not any(k.startswith("module.encoder_q.") for k in state):
        return None
    kept, unused = _split(state, "module.encoder_q.")
    n = kept["conv1.weight"].shape[1] if "conv1.weight" in kept else 0
    default = {13: SSL4EO_L1C_BANDS, 12: SSL4EO_L2A_BANDS}.get(int(n))
    chosen = tuple(bands) if bands else default
    ones = tuple(1.0 for _ in range(int(n)))
    zeros = tuple(0.0 for _ in range(int(n)))
    return _Rekeyed(
        kept, tuple(unused), chosen, zeros, ones, "DN / 10000 (reflectance), mean 0, std 1"
    )


def _seco(state: Mapping[str, Tensor], bands: Sequence[str] | None) -> _Rekeyed | None:
    if not any(_SECO_KEY.match(k) for k in state):
        return None
    kept: dict[str, Tensor] = {}
    unused: list[str] = []
    for key, value in state.items():
        m = _SECO_KEY.match(key)
        if m and m.group(1) in _SECO_CHILDREN:
            kept[f"{_SECO_CHILDREN[m.group(1)]}.{m.group(2)}"] = value
        else:
            unused.append(key)
    notes: list[str] = []
    source = tuple(bands) if bands else _SECO_BANDS
    target = source
    if "conv1.weight" in kept and set(source) == set(_SECO_BANDS) and len(source) == 3:
        target = ("B02", "B03", "B04")
        order = [source.index(b) for b in target]
        kept["conv1.weight"] = kept["conv1.weight"][:, order].contiguous()
        notes.append(
            f"conv1 input channels permuted from the checkpoint's {list(source)} to "
            f"s2ssl's {list(target)}"
        )
    mean = (
        tuple(SECO_STANDARDISATION[b][0] for b in target) if set(target) <= set(_IMAGENET) else None
    )
    std = tuple(SECO_STANDARDISATION[b][1] for b in target) if mean is not None else None
    scaling = (
        "SeCo quantile stretch + ImageNet normalisation as (reflectance - mean) / std "
        f"with mean {[round(v, 5) for v in mean or ()]}, std {[round(v, 5) for v in std or ()]}"
    )
    return _Rekeyed(kept, tuple(unused), target, mean, std, scaling, tuple(notes))


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"the sidecar {side} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"the sidecar {side} must hold a JSON object with 'bands'")
    return data


def _torchgeo(
    state: Mapping[str, Tensor], bands: Sequence[str] | None, side: Mapping[str, Any]
) -> _Rekeyed | None:
    if "conv1.weight" not in state or not any(k.startswith("layer1.") for k in state):
        return None
    kept, unused = _split(state, "")
    chosen = tuple(bands) if bands else tuple(side.get("bands") or ()) or None
    n = int(kept["conv1.weight"].shape[1])
    mean = tuple(float(v) for v in side.get("mean", [0.0] * n))
    std = tuple(float(v) for v in side.get("std", [1.0] * n))
    scaling = (
        "reflectance standardised with the sidecar's mean / std"
        if "mean" in side
        else "DN / 10000 (reflectance), mean 0, std 1 (TorchGeo's Sentinel-2 convention)"
    )
    return _Rekeyed(kept, tuple(unused), chosen, mean, std, scaling)


def _s2ssl_files(path: Path) -> Path | None:
    folder = path if path.is_dir() else path.parent
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if {SAFETENSORS_FILE, CONFIG_FILE} <= names or {WEIGHTS_FILE, META_FILE} <= names:
        return folder
    return None


def _s2ssl(folder: Path, bands: Sequence[str] | None) -> _Rekeyed:
    if (folder / SAFETENSORS_FILE).is_file() and (folder / CONFIG_FILE).is_file():
        state, config = read_interchange(folder)
        if config.get("architecture") not in {f"resnet{d}" for d in SUPPORTED_DEPTHS}:
            raise ValueError(
                f"{folder} holds a {config.get('architecture')!r} export; a published init "
                "needs a ResNet encoder (resnet18 / resnet50)"
            )
        norm = config.get("normalization", {})
        source_bands = config.get("bands")
    else:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        raw = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        kind = meta.get("architecture", {}).get("kind")
        prefix = {"resnet": "", "unet": "encoder."}.get(kind)
        if prefix is None:
            raise ValueError(f"{folder} holds a {kind!r} encoder; a published init needs a ResNet")
        state, _ = _split(raw, prefix)
        norm = meta.get("normalization", {})
        source_bands = meta.get("bands")
    if norm.get("kind") != "standardize":
        raise ValueError(f"{folder} expects {norm.get('kind')!r} inputs, not standardised ones")
    return _Rekeyed(
        state,
        (),
        tuple(bands) if bands else tuple(source_bands or ()),
        tuple(float(v) for v in norm["mean"]),
        tuple(float(v) for v in norm["std"]),
        "reflectance standardised with the export's mean / std",
    )


def _depth(state: Mapping[str, Tensor]) -> int:
    if any(k.startswith("layer1.0.conv3.") for k in state):
        blocks = {k.split(".")[1] for k in state if k.startswith("layer3.")}
        return 50 if len(blocks) == 6 else -len(blocks)
    blocks = {k.split(".")[1] for k in state if k.startswith("layer1.")}
    return 18 if len(blocks) == 2 else -len(blocks)


def _refuse(path: Path, tried: Sequence[str], reason: str) -> ValueError:
    return ValueError(
        f"refusing to load {path}: {reason} (layouts tried: {', '.join(tried)}); "
        "check finetune.published.<name>.format / the file, nothing was initialised at random"
    )


def load_published(
    path: str | Path, *, format: str = "auto", bands: Sequence[str] | None = None
) -> PublishedEncoder:
    """Load a published ResNet encoder checkpoint and report what was matched.

    Args:
        path: a checkpoint file (``.pth`` / ``.ckpt`` / ``.pt``) or an s2ssl export directory.
        format: ``auto`` (recognise the layout) or one of :data:`LAYOUTS`.
        bands: the checkpoint's bands in its channel order; required for ``torchgeo`` without
            a sidecar, else they override the layout's default.

    Returns:
        The encoder (train mode), its bands in s2ssl order (SeCo: permuted), its
        standardisation on reflectance and the :class:`LoadReport`.

    Raises:
        ValueError: unreadable file, unrecognised layout, unknown bands or any encoder
            parameter left unmatched (names them and the layouts tried).
    """
    p = Path(path)
    if format != "auto" and format not in LAYOUTS:
        raise ValueError(f"unknown checkpoint format {format!r}; use auto or one of {LAYOUTS}")
    if not p.exists():
        raise ValueError(f"published weights {p} do not exist; put the file under weights/")
    tried = list(LAYOUTS) if format == "auto" else [format]
    folder = _s2ssl_files(p)
    rekeyed: _Rekeyed | None = None
    layout = ""
    if (
        folder is not None
        and "s2ssl" in tried
        and (p.is_dir() or p.suffix in {".safetensors", ".pt"})
    ):
        rekeyed, layout = _s2ssl(folder, bands), "s2ssl"
        digest_file = folder / (
            SAFETENSORS_FILE if (folder / SAFETENSORS_FILE).is_file() else WEIGHTS_FILE
        )
    else:
        if p.is_dir():
            raise _refuse(p, tried, "a directory that is no s2ssl export")
        digest_file = p
        try:
            raw = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # unpickling errors vary by file
            raise ValueError(f"cannot read {p} as a torch checkpoint ({e})") from None
        state = _unwrap(raw)
        readers: dict[str, Callable[[], _Rekeyed | None]] = {
            "ssl4eo_moco": lambda: _ssl4eo(state, bands),
            "seco": lambda: _seco(state, bands),
            "torchgeo": lambda: _torchgeo(state, bands, _sidecar(p)),
        }
        for name in tried:
            if name in readers:
                rekeyed = readers[name]()
                if rekeyed is not None:
                    layout = name
                    break
        if rekeyed is None:
            sample = ", ".join(sorted(state)[:5]) or "no tensors"
            raise _refuse(p, tried, f"no known key layout (first keys: {sample})")
    return _build(p, _sha256(digest_file), layout, tried, rekeyed)


def _build(
    path: Path, digest: str, layout: str, tried: Sequence[str], rk: _Rekeyed
) -> PublishedEncoder:
    state = rk.state
    if "conv1.weight" not in state:
        raise _refuse(path, tried, f"layout {layout} matched but it holds no conv1.weight")
    depth = _depth(state)
    if depth not in SUPPORTED_DEPTHS:
        raise _refuse(path, tried, f"not a ResNet-18 / ResNet-50 ({-depth} blocks in a stage)")
    in_chans = int(state["conv1.weight"].shape[1])
    encoder = ResNetEncoder(depth, in_chans)
    reference = encoder.state_dict()
    missing = tuple(k for k in reference if k not in state)
    mismatched = tuple(
        f"{k}: checkpoint {list(state[k].shape)} vs encoder {list(v.shape)}"
        for k, v in reference.items()
        if k in state and state[k].shape != v.shape
    )
    unused = rk.unused + tuple(k for k in state if k not in reference)
    if missing or mismatched:
        names = ", ".join([*missing[:10], *mismatched[:10]])
        raise _refuse(
            path,
            tried,
            f"layout {layout} leaves {len(missing)} encoder parameters missing and "
            f"{len(mismatched)} of another shape: {names}",
        )
    if not rk.bands:
        raise ValueError(
            f"{path} ({layout}) does not say which bands its {in_chans} input channels are: set "
            f"finetune.published.<name>.bands or write {path.with_suffix('.json')} "
            '{"bands": [...]}'
        )
    if len(rk.bands) != in_chans or rk.mean is None or rk.std is None or len(rk.mean) != in_chans:
        raise ValueError(
            f"{path} ({layout}) has {in_chans} input channels but {len(rk.bands)} bands "
            f"{list(rk.bands)} (and {len(rk.mean or ())} standardisation values) were given"
        )
    encoder.load_state_dict({k: state[k] for k in reference}, strict=True)
    report = LoadReport(
        source=str(path),
        sha256=digest,
        layout=layout,
        layouts_tried=tuple(tried),
        architecture=f"resnet{depth}",
        matched=tuple(reference),
        missing=(),
        unexpected=unused,
        shape_mismatches=(),
        checkpoint_bands=tuple(rk.bands),
        bands=tuple(rk.bands),
        scaling=rk.scaling,
        notes=rk.notes,
    )
    return PublishedEncoder(encoder.train(), tuple(rk.bands), rk.mean, rk.std, report)

"""Exported encoders in the layout other libraries load: ``model.safetensors`` + ``config.json``.

Next to ``weights.pt`` / ``meta.json`` (:mod:`s2ssl.models.saved`) every exported encoder holds

* ``model.safetensors``: the weights under the parameter names of timm's / torchvision's ResNet
  (``timm.create_model("resnet18", in_chans=C, num_classes=0).state_dict()``: ``conv1.weight``,
  ``bn1.{weight,bias,running_mean,running_var,num_batches_tracked}``, ``layer1.0.conv1.weight``
  … ``layer4.*``; no ``fc``). A ResNet encoder is written whole; a U-Net (``dense``, CSCL on
  land cover) contributes its ResNet encoder only (the decoder is not part of a timm ResNet);
  the CSCL 3-D U-Net has no timm counterpart and is written under its own names with
  architecture ``s2ssl-unet3d``;
* ``config.json``: the architecture name (``resnet18`` / ``resnet50`` / ``s2ssl-unet3d``),
  ``in_chans``, the input bands, the input scaling and standardisation, the method, the data
  fingerprint, the s2ssl version and what was exported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

import s2ssl

__all__ = [
    "CONFIG_FILE",
    "SAFETENSORS_FILE",
    "UNET3D_ARCHITECTURE",
    "interchange_config",
    "interchange_weights",
    "read_interchange",
    "tensor_shapes",
    "write_interchange",
]

SAFETENSORS_FILE: Final[str] = "model.safetensors"
CONFIG_FILE: Final[str] = "config.json"
UNET3D_ARCHITECTURE: Final[str] = "s2ssl-unet3d"
"""``config.json`` architecture of the CSCL 3-D U-Net (no timm counterpart; s2ssl names)."""

INPUT_SCALING: Final[dict[str, Any]] = {
    "input": "reflectance",
    "reflectance": "(DN + offset) / 10000, offset -1000 for processing baseline >= 04.00 "
    "(acquisitions since 2022-01-25) and 0 before",
    "dn_divisor": 10000,
}
"""How a raw Sentinel-2 DN becomes the reflectance every s2ssl encoder reads."""


def _resnet_name(depth: int) -> str:
    return f"resnet{depth}"


def interchange_weights(
    weights: Mapping[str, Tensor], architecture: Mapping[str, Any]
) -> tuple[dict[str, Tensor], str, str]:
    """The part of an encoder's ``state_dict`` that ``model.safetensors`` holds, under its
    interchange names.

    Args:
        weights: the encoder's ``state_dict`` (s2ssl names).
        architecture: its ``meta.json`` architecture (``kind`` resnet / unet / unet3d).

    Returns:
        ``(tensors, architecture name, what was exported in words)``.

    Raises:
        ValueError: an unknown architecture kind, or a U-Net whose state holds no encoder.
    """
    kind = architecture.get("kind")
    if kind == "resnet":
        tensors = {k: v for k, v in weights.items() if not k.startswith("fc.")}
        name = _resnet_name(int(architecture["depth"]))
        return tensors, name, f"the whole ResNet encoder under timm / torchvision names ({name})"
    if kind == "unet":
        prefix = "encoder."
        tensors = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if not tensors:
            raise ValueError("the U-Net state_dict holds no 'encoder.*' parameters to export")
        name = _resnet_name(int(architecture["depth"]))
        return (
            tensors,
            name,
            f"the ResNet encoder of the U-Net under timm / torchvision names ({name}); the "
            "decoder and the final 1x1 convolution are only in weights.pt",
        )
    if kind == "unet3d":
        return (
            dict(weights),
            UNET3D_ARCHITECTURE,
            "the whole CSCL 3-D U-Net under s2ssl names (no timm counterpart)",
        )
    raise ValueError(f"cannot export encoder kind {kind!r}; expected resnet, unet or unet3d")


def interchange_config(
    meta: Mapping[str, Any], architecture_name: str, exported: str
) -> dict[str, Any]:
    """``config.json`` of an exported encoder from its ``meta.json`` content."""
    arch = dict(meta.get("architecture", {}))
    norm = dict(meta.get("normalization", {}))
    config: dict[str, Any] = {
        "architecture": architecture_name,
        "in_chans": int(arch.get("in_channels", len(meta.get("bands", [])))),
        "num_classes": 0,
        "bands": list(meta.get("bands", [])),
        "input_scaling": dict(INPUT_SCALING),
        "normalization": norm,
        "method": meta.get("method"),
        "data_fingerprint": meta.get("data_fingerprint"),
        "s2ssl_version": s2ssl.__version__,
        "exported": exported,
        "s2ssl_architecture": arch,
        "weights_file": SAFETENSORS_FILE,
    }
    if architecture_name != UNET3D_ARCHITECTURE:
        config["load_with"] = (
            f'timm.create_model("{architecture_name}", in_chans={config["in_chans"]}, '
            "num_classes=0).load_state_dict(safetensors.torch.load_file(...))"
        )
    return config


def write_interchange(
    target: str | Path, weights: Mapping[str, Tensor], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Write ``<target>/model.safetensors`` and ``<target>/config.json``; returns the config.

    ``weights`` is the encoder's ``state_dict`` and ``meta`` its ``meta.json`` content (the
    ``architecture`` says which part is exported, see :func:`interchange_weights`).
    """
    folder = Path(target)
    tensors, name, exported = interchange_weights(weights, meta.get("architecture", {}))
    config = interchange_config(meta, name, exported)
    save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()},
        str(folder / SAFETENSORS_FILE),
        metadata={"format": "pt", "architecture": name},
    )
    (folder / CONFIG_FILE).write_text(
        json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return config


def read_interchange(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, config)`` of an exported encoder: its directory or its ``model.safetensors``.

    Raises:
        ValueError: the files are missing or ``config.json`` is not JSON.
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    weights_path, config_path = folder / SAFETENSORS_FILE, folder / CONFIG_FILE
    if not weights_path.is_file() or not config_path.is_file():
        raise ValueError(
            f"{folder} is not an s2ssl interchange export (needs {SAFETENSORS_FILE} and "
            f"{CONFIG_FILE}); export with `dvc repro pretrain` or pass the weights.pt directory"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path} is not valid JSON ({e})") from None
    tensors = {k: v for k, v in load_file(str(weights_path)).items()}
    return tensors, config


def tensor_shapes(tensors: Mapping[str, Tensor]) -> dict[str, list[int]]:
    """``{name: shape}`` of a state dict (what the reference key lists compare)."""
    return {k: list(torch.as_tensor(v).shape) for k, v in tensors.items()}

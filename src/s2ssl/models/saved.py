"""The saved format of a network: a plain ``state_dict`` (``weights.pt``, read back with
``torch.load(weights_only=True)``) next to a ``meta.json`` holding the ``architecture`` it is
rebuilt from, written atomically as one directory.

Exported pre-trained encoders live in ``<models>/<method>/encoders/<unit>`` (:func:`encoder_dir`,
:func:`load_encoder`); downstream models use the same format
(:mod:`s2ssl.models.downstream`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import torch

from s2ssl.io import atomic_dir
from s2ssl.models.factory import build_encoder
from s2ssl.models.interchange import write_interchange

__all__ = [
    "ENCODERS_DIR",
    "ENCODER_DIR",
    "META_FILE",
    "WEIGHTS_FILE",
    "encoder_dir",
    "load_encoder",
    "load_saved",
    "write_saved",
]

ENCODER_DIR: Final[str] = "encoder"
ENCODERS_DIR: Final[str] = "encoders"
WEIGHTS_FILE: Final[str] = "weights.pt"
META_FILE: Final[str] = "meta.json"


def encoder_dir(models_dir: str | Path, method: str, unit: str) -> Path:
    """Where the ``pretrain`` stages export the encoder of one run (``unit``) of ``method``:
    ``<models>/<method>/encoders/<unit>`` (units: :func:`s2ssl.data.subsets.pretrain_unit`)."""
    if not unit or "/" in unit or unit.startswith("."):
        raise ValueError(f"invalid pre-training unit {unit!r}")
    return Path(models_dir) / method / ENCODERS_DIR / unit


def load_encoder(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild an exported encoder and load its weights (``torch.load(weights_only=True)``).

    Args:
        path: the encoder directory (``models/pretrain/<method>/encoders/<unit>``) or its
            ``weights.pt``.

    Returns:
        ``(module in eval mode, meta)`` where ``meta`` is the parsed ``meta.json`` (method,
        architecture, bands, normalisation, norm stats, probe results).
    """
    return load_saved(
        path,
        build_encoder,
        what="an exported encoder",
        hint="run `s2ssl pretrain` / `dvc repro pretrain` first",
    )


def load_saved(
    path: str | Path, build: Callable[[Mapping[str, Any]], Any], *, what: str, hint: str
) -> tuple[Any, dict[str, Any]]:
    """Rebuild a saved network: ``meta.json``'s ``architecture`` → ``build`` → the plain
    ``state_dict`` of ``weights.pt`` loaded strictly with ``torch.load(weights_only=True)``.

    ``path`` is the directory or its ``weights.pt``; ``what`` / ``hint`` word the error when it
    holds no such network. Returns ``(module in eval mode, meta)``.
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    meta_path = folder / META_FILE
    weights_path = folder / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise ValueError(f"{folder} is not {what} (needs {META_FILE} and {WEIGHTS_FILE}); {hint}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_path} is not valid JSON ({e})") from None
    module = build(meta.get("architecture", {}))
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"{weights_path} does not match the architecture in {meta_path}: {e}"
        ) from None
    return module.eval(), meta


def write_saved(
    target: str | Path,
    weights: Mapping[str, Any],
    meta: Mapping[str, Any],
    *,
    interchange: bool = False,
) -> None:
    """Write ``<target>/weights.pt`` (``weights``) and ``meta.json`` (``meta``, sorted keys)
    atomically: the directory appears whole or not at all.

    ``interchange``: also write ``model.safetensors`` + ``config.json`` under timm / torchvision
    names (:func:`s2ssl.models.interchange.write_interchange`; exported encoders)."""
    with atomic_dir(target) as tmp:
        torch.save(weights, tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(
            json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if interchange:
            write_interchange(tmp, weights, meta)

"""Checkpoints fabricated in the exact key layouts of published weights (importable as
``weightkit``), built from the reference timm / torchvision ResNet key lists in ``fixtures/``,
never from s2ssl's own encoder: a loader that re-keys them right must match those names."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

FIXTURES = Path(__file__).resolve().parent / "models" / "fixtures"

SECO_CHILD = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
"""torchvision ResNet attribute -> index in SeCo's ``nn.Sequential(*resnet.children()[:-1])``."""


def reference_shapes(depth: int, in_chans: int = 3) -> dict[str, list[int]]:
    """``{name: shape}`` of ``timm.create_model(f"resnet{depth}", in_chans, num_classes=0)``."""
    data = json.loads((FIXTURES / f"timm_resnet{depth}_keys.json").read_text(encoding="utf-8"))
    shapes = {k: list(v) for k, v in data["keys"].items()}
    shapes["conv1.weight"][1] = in_chans
    return shapes


def torchvision_state(
    depth: int, in_chans: int, seed: int = 0, fc: bool = True
) -> dict[str, Tensor]:
    """Random tensors under torchvision's ``resnet<depth>`` names (``fc`` of 1000 classes when
    ``fc``); ``num_batches_tracked`` is an int64 scalar as in a real state dict."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Tensor] = {}
    for name, shape in reference_shapes(depth, in_chans).items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(1234, dtype=torch.int64)
        elif name.endswith("running_var"):
            out[name] = torch.rand(shape, generator=g) + 0.5
        else:
            out[name] = torch.randn(shape, generator=g)
    if fc:
        width = 512 if depth == 18 else 2048
        out["fc.weight"] = torch.randn(1000, width, generator=g)
        out["fc.bias"] = torch.randn(1000, generator=g)
    return out


def ssl4eo_checkpoint(depth: int = 18, in_chans: int = 13, mlp: bool = True) -> tuple[dict, dict]:
    """``(checkpoint, backbone)``: SSL4EO-S12 MoCo-v2 as ``torch.save``d by its DDP training
    (``{"epoch", "arch", "state_dict": {"module.encoder_q.*", "module.encoder_k.*",
    "module.queue", "module.queue_ptr"}, "optimizer"}``; with ``mlp`` the projection
    ``encoder_q.fc`` is ``Sequential(Linear, ReLU, Linear)``: ``fc.0.*``, ``fc.2.*``)."""
    backbone = torchvision_state(depth, in_chans, fc=False)
    width = 512 if depth == 18 else 2048
    head = (
        {"fc.0.weight": torch.randn(width, width), "fc.0.bias": torch.randn(width),
         "fc.2.weight": torch.randn(128, width), "fc.2.bias": torch.randn(128)}
        if mlp else {"fc.weight": torch.randn(128, width), "fc.bias": torch.randn(128)}
    )  # fmt: skip
    state: dict[str, Tensor] = {}
    for enc in ("encoder_q", "encoder_k"):
        state.update({f"module.{enc}.{k}": v.clone() for k, v in {**backbone, **head}.items()})
    state["module.queue"] = torch.randn(128, 64)
    state["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    checkpoint = {"epoch": 100, "arch": f"resnet{depth}", "state_dict": state, "optimizer": {}}
    return checkpoint, backbone


def seco_checkpoint(depth: int = 18) -> tuple[dict, dict]:
    """``(checkpoint, backbone)``: a SeCo Lightning checkpoint (``encoder_q`` / ``encoder_k`` =
    ``nn.Sequential`` of the ResNet children, ``heads_q`` / ``heads_k`` projection MLPs, the
    queues), RGB input in the channel order B04, B03, B02."""
    backbone = torchvision_state(depth, 3, fc=False)
    state: dict[str, Tensor] = {}
    for enc in ("encoder_q", "encoder_k"):
        for name, value in backbone.items():
            head, rest = name.split(".", 1)
            state[f"{enc}.{SECO_CHILD[head]}.{rest}"] = value.clone()
    width = 512 if depth == 18 else 2048
    for heads in ("heads_q", "heads_k"):
        state[f"{heads}.0.0.weight"] = torch.randn(width, width)
        state[f"{heads}.0.2.weight"] = torch.randn(128, width)
    state["queue"] = torch.randn(1, 128, 16)
    checkpoint = {
        "epoch": 200,
        "global_step": 1000,
        "pytorch-lightning_version": "1.1.0",
        "state_dict": state,
        "hyper_parameters": {"base_encoder": f"resnet{depth}", "emb_dim": 128},
    }
    return checkpoint, backbone

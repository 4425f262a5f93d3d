"""Frozen-encoder protocols: the linear probe."""

from __future__ import annotations

import pytest
import torch

from s2ssl.config import LinearProbeConfig
from s2ssl.finetune.frozen import fit_linear_probe


@pytest.mark.slow
def test_linear_probe_folds_standardisation_into_the_layer() -> None:
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 10, 0.1, 3, 5])
    z = torch.randn(90, 5, generator=g)
    labels = (z @ torch.randn(5, 3, generator=g)).argmax(1)  # linearly separable in z
    feats = z * scale + 4  # ... and in the raw, badly scaled features
    probe = LinearProbeConfig(epochs=300, lr=0.1, weight_decay=1e-3)
    layer = fit_linear_probe(feats, labels, 3, probe, seed=1)
    acc = float((layer(feats).argmax(1) == labels).float().mean())
    assert acc > 0.9

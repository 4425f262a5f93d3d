"""Encoders rebuilt from a recorded architecture (s2ssl.models.factory)."""

from __future__ import annotations

import pytest

from s2ssl.models.factory import build_encoder


def test_build_encoder_errors() -> None:
    with pytest.raises(ValueError, match="unknown encoder kind"):
        build_encoder({"kind": "vit"})
    with pytest.raises(ValueError, match="lacks"):
        build_encoder({"kind": "resnet", "depth": 18})

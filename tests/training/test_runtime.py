"""Runtime settings of the training stages (s2ssl.training.runtime)."""

from __future__ import annotations

import torch

from s2ssl.training.runtime import resolve_precision


def test_resolve_precision() -> None:
    expected = "bf16-mixed" if torch.cuda.is_available() else "32-true"
    assert resolve_precision("auto", "auto") == expected
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("32", "gpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"

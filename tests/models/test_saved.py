"""The saved encoder format (s2ssl.models.saved): errors of a directory that holds none."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.models.saved import load_encoder


def test_load_encoder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an exported encoder"):
        load_encoder(tmp_path)

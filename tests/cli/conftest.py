"""Fixtures of the command-line tests: a GeoTIFF writer and varied DN (:mod:`rasterkit`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rasterkit import smooth_dn, write_geotiff


@pytest.fixture
def geotiff() -> Callable[..., Path]:
    """:func:`rasterkit.write_geotiff`."""
    return write_geotiff


@pytest.fixture
def dn_raster() -> Callable[..., np.ndarray]:
    """:func:`rasterkit.smooth_dn`."""
    return smooth_dn

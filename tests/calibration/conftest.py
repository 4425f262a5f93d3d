"""Fixtures of the calibration tests: a tiny world with a held-out region."""

from __future__ import annotations

from pathlib import Path

import pytest
from calibkit import HOLDOUT

from s2ssl.config import load_params, set_dotted
from testkit import TINY_SIZES, read_repo_params, write_params


@pytest.fixture(scope="session")
def holdout_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/validated`` holding landcover and croptype with 10 patches per region, enough for
    every split of the held-out region :data:`HOLDOUT` (read-only)."""
    from s2ssl.data.fetch import fetch
    from s2ssl.validation.validate import validate

    root = tmp_path_factory.mktemp("holdout_world")
    raw = read_repo_params()
    sizes = {
        **TINY_SIZES,
        "fetch.datasets": ["landcover", "croptype"],
        "fetch.synthetic.landcover.patches_per_region": 10,
        "fetch.synthetic.croptype.patches_per_region": 10,
        "holdout_region": HOLDOUT,
    }
    for key, value in sizes.items():
        set_dotted(raw, key, value)
    params = load_params(write_params(root / "params.yaml", raw))
    fetch(params, root / "raw", root / "reports")
    validate(params, root / "raw", root / "validated", root / "validate_reports")
    return root / "validated"

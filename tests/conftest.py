"""Shared fixtures: a tiny copy of the repo's params.yaml and one tiny fetched world per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_PARAMS = REPO_ROOT / "params.yaml"

TINY_SIZES: dict[str, int] = {
    "fetch.synthetic.unlabelled.locations_per_region": 2,
    "fetch.synthetic.landcover.patches_per_region": 4,
    "fetch.synthetic.croptype.patches_per_region": 4,
    "fetch.shard_size": 3,
    "pretrain.seco.max_epochs": 1,
    "pretrain.moco.max_epochs": 1,
    "pretrain.moco_tp.max_epochs": 1,
    "pretrain.dense.max_epochs": 1,
    "pretrain.cscl.max_epochs": 1,
    "holdout_region": None,
    "finetune.fractions": [0.5, 1.0],
    "finetune.landcover.min_steps": 2,
    "finetune.landcover.max_steps": 2,
    "finetune.landcover.val_every": 1,
    "finetune.croptype.min_steps": 2,
    "finetune.croptype.max_steps": 2,
    "finetune.croptype.val_every": 1,
    "finetune.scene.min_steps": 2,
    "finetune.scene.max_steps": 2,
    "finetune.scene.val_every": 1,
    "finetune.scene.linear.epochs": 20,
}
"""Dotted overrides that shrink the repo's params.yaml to seconds of generation and training."""


def read_repo_params() -> dict[str, Any]:
    """The repo's params.yaml as a plain (mutable) mapping."""
    raw = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def write_params(path: Path, raw: dict[str, Any]) -> Path:
    """Dump ``raw`` as YAML to ``path`` (dates stay YAML dates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def write_tiny_params(path: Path) -> Path:
    """The repo's params.yaml with :data:`TINY_SIZES` applied, written to ``path``."""
    from s2ssl.config import set_dotted

    raw = read_repo_params()
    for key, value in TINY_SIZES.items():
        set_dotted(raw, key, value)
    return write_params(path, raw)


@pytest.fixture
def repo_params_raw() -> dict[str, Any]:
    """A fresh, mutable copy of the repo's params.yaml mapping (edit it, then write_params)."""
    return read_repo_params()


@pytest.fixture
def tiny_params(tmp_path: Path) -> Path:
    """A tiny params.yaml (4 regions; 2 / 4 / 4 samples per region; shards of 3) in ``tmp_path``."""
    return write_tiny_params(tmp_path / "params.yaml")


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/raw`` holding unlabelled / landcover / croptype fetched once from tiny params.

    Shared by the whole session: treat it as read-only. Reports are in ``<tmp>/reports``.
    """
    from s2ssl.config import load_params
    from s2ssl.data.fetch import fetch

    root = tmp_path_factory.mktemp("tiny_fetch")
    params = load_params(write_tiny_params(root / "params.yaml"))
    fetch(params, root / "raw", root / "reports")
    return root / "raw"


@pytest.fixture(scope="session")
def tiny_validated(tiny_raw: Path) -> Path:
    """``<tmp>/validated`` holding the validated views of :func:`tiny_raw` (read-only).

    Reports (summary.json, quarantine.csv, Data Docs) are in ``<tmp>/validate_reports``.
    """
    from s2ssl.config import load_params
    from s2ssl.validation.validate import validate

    root = tiny_raw.parent
    params = load_params(root / "params.yaml")
    validate(params, tiny_raw, root / "validated", root / "validate_reports")
    return root / "validated"

"""Shared test helpers (importable as ``testkit``; ``conftest`` is not a unique module name: the
inference tests have their own conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_PARAMS = REPO_ROOT / "params.yaml"

TINY_SIZES: dict[str, Any] = {
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
    "finetune.landcover.steps": 2,
    "finetune.landcover.val_every": 1,
    "finetune.croptype.steps": 2,
    "finetune.croptype.val_every": 1,
    "finetune.scene.steps": 2,
    "finetune.scene.val_every": 1,
    "finetune.scene.linear.epochs": 20,
    "evaluate.replicates": 2,
    "evaluate.bootstrap_samples": 200,
}
"""Dotted overrides that shrink the repo's params.yaml to seconds of generation and training."""


SUITE_TEMP_BYTES = 7 * 2**30
"""Free space the whole suite needs for its temporary files: 6.5 GB at the peak, measured on a
clean clone (most of it the full tiny pipeline's encoders, checkpoints and MLflow artifacts)."""


def temp_space_problem(temp_dir: Path, needed: int = SUITE_TEMP_BYTES) -> str | None:
    """Why ``temp_dir`` cannot hold the suite's temporary files, or ``None`` when it can.

    A full disk does not fail cleanly everywhere (the test Prefect server's database stops
    answering), so the suite checks the space before it starts.
    """
    import shutil

    free = shutil.disk_usage(temp_dir).free
    if free >= needed:
        return None
    return (
        f"the test suite writes up to {needed / 2**30:.0f} GiB of temporary files under "
        f"{temp_dir}, which has {free / 2**30:.1f} GiB free: free some space (earlier sessions: "
        f"rm -rf {temp_dir}/pytest-of-*) or run pytest with --basetemp on a larger disk"
    )


def selection_space_problem(items: Sequence[Any], basetemp: str | None) -> str | None:
    """:func:`temp_space_problem` for a selection of test items: only a selection with slow tests
    writes GBs (the fast ones stay under 0.2 GB); the temporary files go to the parent of
    ``--basetemp``, else to the system's temporary directory."""
    import tempfile

    if not any(item.get_closest_marker("slow") for item in items):
        return None
    temp_dir = Path(basetemp).resolve().parent if basetemp else Path(tempfile.gettempdir())
    return temp_space_problem(temp_dir)


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


def save_tiny_segmentation_model(
    path: Path,
    bands: tuple[str, ...] = ("B02", "B03", "B04", "B08"),
    classes: tuple[str, ...] = ("water", "forest", "grassland"),
) -> Path:
    """A randomly initialised, tiny (8-channel) ResNet-18 U-Net saved as a fine-tuned model
    directory that ``s2ssl predict --model`` loads."""
    import torch

    from s2ssl.models.downstream import SegmentationNet, save_model
    from s2ssl.models.unet import ResNetUNet

    torch.manual_seed(0)
    n = len(bands)
    net = SegmentationNet(ResNetUNet(18, n, 8), bands, classes, [0.1] * n, [0.1] * n)
    return save_model(net.eval(), path, {"init": "random"})

"""Fixtures of the fine-tuning tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2ssl.config import set_dotted
from testkit import TINY_SIZES, read_repo_params, write_params


@pytest.fixture(scope="module")
def tiny_run_params(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's params at the tiny sizes, with random init only."""
    raw = read_repo_params()
    for key, value in {**TINY_SIZES, "finetune.landcover.inits": ["random"]}.items():
        set_dotted(raw, key, value)
    set_dotted(raw, "finetune.scene.inits", ["random"])
    return write_params(tmp_path_factory.mktemp("ft") / "params.yaml", raw)

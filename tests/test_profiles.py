"""The shipped budget profiles apply cleanly to the repository's params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from s2ssl.config import load_params
from s2ssl.tuning import apply_best_params
from testkit import REPO_PARAMS, REPO_ROOT

PROFILES = sorted((REPO_ROOT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_applies_to_the_repo_params(profile: Path, tmp_path: Path) -> None:
    params = Path(shutil.copy(REPO_PARAMS, tmp_path / "params.yaml"))
    changes = apply_best_params(profile, params)
    assert changes, "a profile that changes nothing is dead"
    applied = load_params(params)
    for change in changes:
        value = applied.model_dump(mode="json")
        for part in change.key.split("."):
            value = value[part]
        assert value == change.new


def test_the_converged_profile_exists() -> None:
    assert REPO_ROOT / "profiles" / "converged.yaml" in PROFILES

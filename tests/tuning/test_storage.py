"""The study's storage: one sweep at a time on a study database."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunekit import write_tune_params

from s2ssl.config import load_params
from s2ssl.tuning import run_study
from s2ssl.tuning.storage import STUDY_DB, study_lock


def test_a_second_sweep_on_the_same_database_is_refused(
    tiny_validated: Path, tmp_path: Path
) -> None:
    params = load_params(write_tune_params(tmp_path / "params.yaml"))
    out = tmp_path / "models"
    with (
        study_lock(out / STUDY_DB),
        pytest.raises(ValueError, match=r"another sweep is running on .*study\.db"),
    ):
        run_study(params, tiny_validated, tmp_path, out, tmp_path / "reports", track=False)

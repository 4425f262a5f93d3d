"""`s2ssl calibrate` (s2ssl.cli.calibrate): help, a run on the tiny world, a missing dataset."""

from __future__ import annotations

from pathlib import Path

from clikit import flat, invoke

from s2ssl.config import set_dotted
from testkit import TINY_SIZES, read_repo_params, write_params


def test_help_says_what_it_does() -> None:
    result = invoke("calibrate", "--help")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    for words in ("random init", "pre-trained encoder", "--reports", "calibrate/dvc.yaml"):
        assert words in text, words


def test_a_run_prints_runs_and_targets_and_exits_0(tiny_validated: Path, tmp_path: Path) -> None:
    raw = read_repo_params()
    for key, value in {
        **TINY_SIZES,
        "finetune.fractions": [1.0],
        "finetune.torch_threads": 1,
        "calibrate.tasks": ["croptype"],
        "calibrate.seasonal_dates": 2,
        "calibrate.pixel_classifier.max_train_pixels": 500,
        "calibrate.pixel_classifier.max_iter": 5,
    }.items():
        set_dotted(raw, key, value)
    params = write_params(tmp_path / "params.yaml", raw)
    reports = tmp_path / "reports"
    args = ("calibrate", "--params", params, "--data", tiny_validated, "--reports", reports)
    result = invoke(*args)
    assert result.exit_code == 0, result.output  # targets not met on 2 steps: still a report
    text = flat(result.output)
    assert "croptype (mIoU)" in text and "croptype_f100_min" in text and "NOT met" in text
    assert "1 run(s) trained, 0 reused" in text
    assert (reports / "summary.json").is_file() and (reports / "report.md").is_file()
    assert "0 run(s) trained, 1 reused" in flat(invoke(*args).output)


def test_missing_data_fails_with_what_to_run(tiny_params: Path, tmp_path: Path) -> None:
    result = invoke("calibrate", "--params", tiny_params, "--data", tmp_path / "none")
    assert result.exit_code == 2
    assert "dvc repro validate" in flat(result.output)

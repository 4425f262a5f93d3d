"""`s2ssl validate` (s2ssl.cli.validate)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clikit import flat, invoke


@pytest.mark.slow
def test_validate_tiny(tmp_path: Path, tiny_raw: Path) -> None:
    params = tiny_raw.parent / "params.yaml"
    out, reports = tmp_path / "validated", tmp_path / "reports"
    result = invoke(
        "validate", "-p", params, "--raw", tiny_raw, "--out", out, "--reports", reports,
        "-d", "landcover", "-d", "croptype",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "landcover" in result.stdout and "croptype" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["croptype", "landcover"]
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["landcover.n_accepted"] == 16 and summary["croptype.usable"] == 1
    assert (reports / "datadocs" / "index.html").is_file()


def test_validate_unusable_dataset_exits_1(tmp_path: Path, tiny_raw: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw / "landcover", raw / "landcover")
    shard = sorted((raw / "landcover" / "shards").iterdir())[0] / "image.npy"
    shard.write_bytes(shard.read_bytes()[:200])
    params = tiny_raw.parent / "params.yaml"
    result = invoke(
        "validate", "-p", params, "--raw", raw, "--out", tmp_path / "v",
        "--reports", tmp_path / "r", "-d", "landcover",
    )  # fmt: skip
    assert result.exit_code == 1
    text = flat(result.output)
    assert "landcover:" in text and "cannot read the dataset" in text and "truncated" in text
    assert "quarantine.csv" in text
    assert not (tmp_path / "v").exists()

"""`s2ssl fetch` (s2ssl.cli.fetch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clikit import PNG_MAGIC, REGIONS, flat, invoke, write_yaml

from s2ssl.bands import L2A_BAND_NAMES
from s2ssl.data.store import open_dataset


@pytest.mark.slow
def test_fetch_tiny(tmp_path: Path, tiny_params: Path) -> None:
    out, reports = tmp_path / "raw", tmp_path / "reports"
    result = invoke("fetch", "-p", tiny_params, "--out", out, "--reports", reports)
    assert result.exit_code == 0, result.output
    for name in ("unlabelled", "landcover", "croptype"):
        assert name in result.stdout

    expected = {"unlabelled": 8, "landcover": 16, "croptype": 16}
    for name, n in expected.items():
        ds = open_dataset(out / name)
        assert len(ds) == n, name
        assert ds.n_shards == -(-n // 3)  # shard_size 3
        assert sorted(ds.index["region"].unique()) == sorted(REGIONS)
    unlabelled = open_dataset(out / "unlabelled")
    assert unlabelled.specs["image"].shape == (5, 12, 64, 64)
    assert unlabelled.bands == L2A_BAND_NAMES  # the default preset, l2a
    assert open_dataset(out / "croptype").specs["croptype"].shape == (32, 32)

    for png in ("seasons.png", "landcover.png", "croptype.png", "ndvi_curves.png"):
        data = (reports / png).read_bytes()
        assert data[:8] == PNG_MAGIC, png
        assert len(data) > 1000, png
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["landcover.n_samples"] == 16
    assert summary["unlabelled.n_samples"] == 8
    assert summary["croptype.n_samples"] == 16
    assert summary["croptype.n_dates"] == 16
    splits = sum(summary.get(f"landcover.n_{s}", 0) for s in ("train", "val", "test"))
    assert splits == 16
    assert list(summary) == sorted(summary)


def test_fetch_bad_params_writes_nothing(tmp_path: Path, repo_params_raw: dict) -> None:
    repo_params_raw["fetch"]["source"] = "ftp"
    bad = write_yaml(tmp_path / "bad.yaml", repo_params_raw)
    out, reports = tmp_path / "raw", tmp_path / "reports"
    result = invoke("fetch", "-p", bad, "--out", out, "--reports", reports)
    assert result.exit_code == 2
    assert "fetch.source" in flat(result.stderr)
    assert "'synthetic'" in flat(result.stderr)
    assert not out.exists()
    assert not reports.exists()


def test_fetch_names_the_file_of_listed_samples_a_download_lacks(tmp_path: Path) -> None:
    from benchkit import benchmark_params, extract_v1_examples

    examples = extract_v1_examples(tmp_path / "ex") / "BigEarthNet-S2-Example"
    names = sorted(p.name for p in examples.iterdir())
    absent = "S2A_MSIL2A_20170613T101031_0_45"  # listed, never downloaded
    for split, listed in (("train", names[:3]), ("val", names[3:4]), ("test", [names[4], absent])):
        (examples / f"{split}.csv").write_text("\n".join(listed) + "\n")
    params = benchmark_params(
        tmp_path / "p.yaml", "bigearthnet_v1", {"path": str(examples), "exclude_snow_cloud": False}
    )
    reports = tmp_path / "reports"
    result = invoke("fetch", "-p", params, "--out", tmp_path / "raw", "--reports", reports)
    assert result.exit_code == 0, result.output
    assert "scene: 1 listed sample(s) not in the download" in flat(result.output)
    assert "not_downloaded_scene.txt" in flat(result.output)
    assert (reports / "not_downloaded_scene.txt").read_text() == f"{absent}\n"
    assert len(open_dataset(tmp_path / "raw" / "scene")) == 5

"""`s2ssl info` and `s2ssl check-params` (s2ssl.cli.info)."""

from __future__ import annotations

from pathlib import Path

from clikit import REGIONS, flat, invoke, write_yaml

from testkit import REPO_PARAMS


# --------------------------------------------------------------------------- check-params
def test_check_params_repo_file() -> None:
    result = invoke("check-params", "-p", REPO_PARAMS)
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "is valid (4 regions)" in out
    assert '"seed": 42' in out
    assert '"shard_size": 256' in out


def test_check_params_unknown_key_exits_2(tmp_path: Path, repo_params_raw: dict) -> None:
    repo_params_raw["fetch"]["synthetic"]["landcover"]["patch_sise"] = 64
    bad = write_yaml(tmp_path / "bad.yaml", repo_params_raw)
    result = invoke("check-params", "-p", bad)
    assert result.exit_code == 2
    err = flat(result.stderr)
    assert "error:" in err
    assert "fetch.synthetic.landcover.patch_sise: unknown key" in err
    assert "patch_size" in err
    assert "is valid" not in result.stdout


def test_check_params_bad_literal_exits_2(tmp_path: Path, repo_params_raw: dict) -> None:
    repo_params_raw["fetch"]["synthetic"]["regions"][0]["hemisphere"] = "east"
    bad = write_yaml(tmp_path / "bad.yaml", repo_params_raw)
    result = invoke("check-params", "--params", bad)
    assert result.exit_code == 2
    err = flat(result.stderr)
    assert "fetch.synthetic.regions.0.hemisphere" in err
    assert "'north' or 'south'" in err


def test_check_params_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1\n")
    result = invoke("check-params", "-p", broken)
    assert result.exit_code == 2
    assert "broken.yaml" in flat(result.stderr)
    assert "not valid YAML" in flat(result.stderr)

    result = invoke("check-params", "-p", tmp_path / "absent.yaml")
    assert result.exit_code == 2
    assert "params file not found" in flat(result.stderr)
    assert "absent.yaml" in flat(result.stderr)


def test_check_params_error_keeps_square_brackets(tmp_path: Path, repo_params_raw: dict) -> None:
    repo_params_raw["fetch"]["synthetic"]["regions"][0]["lon"] = [4.0, 1.0]
    bad = write_yaml(tmp_path / "bad.yaml", repo_params_raw)
    result = invoke("check-params", "-p", bad)
    assert result.exit_code == 2
    assert "must be [min, max] with min < max" in flat(result.stderr)


# --------------------------------------------------------------------------- info
def test_info_landcover(tiny_raw: Path) -> None:
    result = invoke("info", tiny_raw / "landcover")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for region in REGIONS:
        assert region in out
    assert "16 samples" in out
    assert "uint16" in out
    assert "1 × 12 × 64 × 64" in out  # the l2a preset: 12 bands
    assert "acquisitions: 16 from 20" in flat(out)
    assert "bands (12): B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B11, B12" in flat(out)
    assert "landcover classes (7, raster value=name): 0=water, 1=forest, 2=grassland" in flat(out)


def test_info_unlabelled_counts_dates(tiny_raw: Path) -> None:
    result = invoke("info", tiny_raw / "unlabelled")
    assert result.exit_code == 0, result.output
    assert "8 samples" in result.stdout
    assert "acquisitions: 40 from" in flat(result.stdout)  # 8 locations x 5 dates


def test_info_missing_path(tmp_path: Path) -> None:
    result = invoke("info", tmp_path / "missing")
    assert result.exit_code == 2
    err = flat(result.stderr)
    assert "no dataset at" in err
    assert "s2ssl fetch" in err


def test_info_missing_path_with_brackets(tmp_path: Path) -> None:
    result = invoke("info", tmp_path / "data[/x]")
    assert result.exit_code == 2
    assert "s2ssl fetch" in flat(result.stderr)


def test_info_benchmark_datasets_undated_scenes_and_padded_series(tmp_path: Path) -> None:
    from benchkit import benchmark_params, write_eurosat, write_pastis
    from s2ssl.config import load_params
    from s2ssl.data.fetch import fetch

    root = write_eurosat(tmp_path / "eurosat", per_class=3, classes=("Forest", "River"))
    params = load_params(benchmark_params(tmp_path / "e.yaml", "eurosat", {"path": str(root)}))
    fetch(params, tmp_path / "raw_e", tmp_path / "rep_e")
    result = invoke("info", tmp_path / "raw_e" / "scene")
    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert "acquisitions: no dates recorded" in out
    assert "one value" in out and "0=AnnualCrop, 1=Forest" in out
    assert "series length" not in out

    root = write_pastis(tmp_path / "pastis", {1: 3, 2: 5}, {1: 1, 2: 5})
    params = load_params(
        benchmark_params(tmp_path / "p.yaml", "pastis", {"path": str(root)}, bands="pastis")
    )
    fetch(params, tmp_path / "raw_p", tmp_path / "rep_p")
    out = flat(invoke("info", tmp_path / "raw_p" / "croptype").stdout)
    assert "series length: 3 to 5 dates (stored padded to 5)" in out
    assert "acquisitions: 8 from 2018-09-15" in out

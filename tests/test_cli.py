"""Tests of the ``s2ssl`` command line (s2ssl.cli) through typer's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

import s2ssl
from s2ssl.cli import app
from s2ssl.data.store import open_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_PARAMS = REPO_ROOT / "params.yaml"
REGIONS = ("north_west", "north_east", "south_pampa", "south_highveld")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str | Path) -> Result:
    """Run the CLI in-process; a wide terminal so rich does not wrap messages."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def flat(text: str) -> str:
    """``text`` with all whitespace runs collapsed (robust to rich line wrapping)."""
    return " ".join(text.split())


def write_yaml(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- help / version
def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    for command in ("fetch", "info", "check-params"):
        assert command in result.stdout
    assert "--version" in result.stdout


def test_no_args_shows_help() -> None:
    result = invoke()
    assert "check-params" in result.output
    assert "Usage" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"s2ssl {s2ssl.__version__}"


def test_cli_import_is_light() -> None:
    """`import s2ssl.cli` must not pull in heavy libraries (keeps `s2ssl --help` fast)."""
    code = (
        "import sys, s2ssl.cli; "
        "print(sorted(m for m in ('torch','numpy','matplotlib','pandas','lightning','mlflow') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


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


# --------------------------------------------------------------------------- fetch
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
    assert open_dataset(out / "unlabelled").specs["image"].shape == (5, 13, 64, 64)
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


# --------------------------------------------------------------------------- info
def test_info_landcover(tiny_raw: Path) -> None:
    result = invoke("info", tiny_raw / "landcover")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for region in REGIONS:
        assert region in out
    assert "16 samples" in out
    assert "uint16" in out
    assert "1 × 13 × 64 × 64" in out
    assert "acquisitions: 16 from 20" in flat(out)


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


# --------------------------------------------------------------------------- validate
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
    import shutil

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

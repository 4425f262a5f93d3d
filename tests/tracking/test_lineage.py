"""Tests for s2ssl.tracking.lineage: lineage tags and input hashing."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from s2ssl.tracking import (
    hash_input,
    lineage_tags,
)

HAS_GIT = shutil.which("git") is not None


def _git(repo: Path, *args: str) -> str:
    config = ["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"]
    done = subprocess.run(
        ["git", *config, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(not HAS_GIT, reason="git is not installed")
def test_lineage_tags_in_git_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "params.yaml").write_text("lr: 0.1\n")
    _git(repo, "add", "params.yaml")
    _git(repo, "commit", "-q", "-m", "init")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "untracked.txt").write_text("ignored by git.dirty\n")

    tags = lineage_tags("pretrain", {"params": "params.yaml"}, repo=repo)
    assert tags == {
        "s2ssl.stage": "pretrain",
        "dvc.stage": "pretrain",
        "git.commit": head,
        "git.dirty": "false",
        "input.params": hashlib.sha256(b"lr: 0.1\n").hexdigest(),  # the file's bytes
    }

    (repo / "params.yaml").write_text("lr: 0.2\n")
    assert lineage_tags("pretrain", repo=repo)["git.dirty"] == "true"


def test_lineage_tags_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    tags = lineage_tags("fetch", repo=plain)
    assert tags["git.commit"] == "unknown"
    assert tags["git.dirty"] == "unknown"

    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # git missing altogether
    assert lineage_tags("fetch", repo=plain)["git.commit"] == "unknown"


def test_missing_input_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'unlabelled'.*does not exist"):
        lineage_tags("pretrain", {"unlabelled": tmp_path / "nope"})


def _store(path: Path, index: bytes = b"index-v1") -> Path:
    (path / "shards" / "0").mkdir(parents=True)
    (path / "meta.json").write_text('{"schema_version": 1}')
    (path / "index.parquet").write_bytes(index)
    (path / "shards" / "0" / "image.npy").write_bytes(b"\x00" * 64)
    return path


def test_file_and_directory_hashes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"\x01\x02\x03")
    b.write_bytes(b"\x01\x02\x03")
    assert hash_input(a) == hashlib.sha256(b"\x01\x02\x03").hexdigest()  # a file: its bytes
    assert hash_input(a) == hash_input(b)
    b.write_bytes(b"\x01\x02\x04")
    assert hash_input(a) != hash_input(b)

    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "x.txt").write_text("x")
    (d / "sub" / "y.txt").write_text("y")
    before = hash_input(d)
    (d / ".sub.tmp-0123456789abcdef0123456789abcdef").mkdir()  # atomic-write leftover
    assert hash_input(d) == before
    (d / "sub" / "y.txt").write_text("z")
    assert hash_input(d) != before


def test_store_directory_hashes_only_meta_and_index(tmp_path: Path) -> None:
    from s2ssl.data.validated import fingerprint

    store = _store(tmp_path / "raw" / "unlabelled")
    before, parent_before = hash_input(store), hash_input(tmp_path / "raw")
    assert before == fingerprint(store)  # comparable with a validated manifest

    (store / "shards" / "0" / "image.npy").write_bytes(b"\x01" * 64)
    assert hash_input(store) == before
    assert hash_input(tmp_path / "raw") == parent_before  # stores nested in a directory too

    (store / "index.parquet").write_bytes(b"index-v2")
    assert hash_input(store) != before
    assert hash_input(tmp_path / "raw") != parent_before

    validated = tmp_path / "validated"
    validated.mkdir()
    (validated / "manifest.json").write_text('{"raw_fingerprint": "abc"}')
    (validated / "accepted.parquet").write_bytes(b"rows")
    v_before = hash_input(validated)
    (validated / "manifest.json").write_text('{"raw_fingerprint": "abd"}')
    assert hash_input(validated) != v_before

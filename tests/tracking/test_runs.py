"""Tests for s2ssl.tracking.runs: URIs, experiments, lineage tags, params, runs, metrics, weights
and the Lightning logger. One sqlite MLflow DB in a temp dir is shared by the module."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from s2ssl.tracking import (
    RunHandle,
    artifact_root,
    flatten_params,
    get_or_create_experiment,
    hash_input,
    lightning_logger,
    lineage_tags,
    log_metrics,
    log_state_dict,
    stage_run,
    tracking_uri,
)
from s2ssl.tracking.runs import MAX_PARAM_VAL_LENGTH

HAS_GIT = shutil.which("git") is not None

pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"  # mlflow's sqlalchemy
)


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp project root whose ``mlruns/mlflow.db`` holds all runs of this module.

    Telemetry is off; the process's tracking URI and MLFLOW_TRACKING_URI are restored afterwards.
    """
    import mlflow

    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield root
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # also unsets MLFLOW_TRACKING_URI before mp restores it


@pytest.fixture(scope="module")
def uri(mlflow_root: Path) -> str:
    """The module's sqlite tracking URI (absolute), its tables created once."""
    resolved = tracking_uri(f"sqlite:///{mlflow_root}/mlruns/mlflow.db")
    get_or_create_experiment("warm-up", resolved)
    return resolved


@pytest.fixture
def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.fixture(autouse=True)
def _no_run_left_active() -> Iterator[None]:
    yield
    if "mlflow" in sys.modules:
        import mlflow

        leftover = mlflow.active_run()
        while mlflow.active_run() is not None:
            mlflow.end_run()
        assert leftover is None, "a test left an MLflow run active"


def _experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- import cost


def test_import_does_not_load_mlflow_or_torch() -> None:
    code = (
        "import sys, s2ssl.tracking, s2ssl.tracking.runs\n"
        "heavy = [m for m in ('mlflow', 'torch', 'lightning') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- URIs


def test_relative_sqlite_uri_resolved_and_directory_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    expected = f"sqlite:///{work.as_posix()}/mlruns/mlflow.db"
    assert tracking_uri("sqlite:///mlruns/mlflow.db") == expected
    assert (work / "mlruns").is_dir()
    assert tracking_uri() == expected  # the settings default is the same relative URI
    assert tracking_uri(expected) == expected  # absolute: unchanged
    assert tracking_uri("sqlite:///mlruns/../db/x.db?timeout=5") == (
        f"sqlite:///{work.as_posix()}/db/x.db?timeout=5"
    )

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other/runs.db")
    assert tracking_uri() == f"sqlite:///{work.as_posix()}/other/runs.db"
    assert (work / "other").is_dir()
    assert tracking_uri("sqlite:///mlruns/mlflow.db") == expected  # the argument wins

    assert artifact_root(expected) == f"file://{work.as_posix()}/mlruns/artifacts"
    assert tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert tracking_uri("https://mlflow.example.org/") == "https://mlflow.example.org/"
    assert artifact_root("http://127.0.0.1:5000") == ""


@pytest.mark.parametrize("bad", ["file:./mlruns", "file:///tmp/mlruns", "mlruns", "/tmp/mlruns"])
def test_file_store_uri_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="MLflow 3 refuses the plain file store") as info:
        tracking_uri(bad)
    assert "sqlite:///mlruns/mlflow.db" in str(info.value)


@pytest.mark.parametrize("bad", ["", "sqlite:///:memory:", "sqlite://host/db"])
def test_unusable_uri_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite|tracking URI"):
        tracking_uri(bad)


# ----------------------------------------------------------------------------- experiments


def test_experiment_idempotent_with_artifacts_under_mlruns(
    uri: str, mlflow_root: Path, client
) -> None:
    first = get_or_create_experiment("pretrain seco", uri)
    assert get_or_create_experiment("pretrain seco", uri) == first
    location = client.get_experiment(first).artifact_location
    assert location == f"file://{mlflow_root.as_posix()}/mlruns/artifacts/pretrain_seco"

    client.delete_experiment(get_or_create_experiment("gone", uri))
    with pytest.raises(ValueError, match="deleted; restore it"):
        get_or_create_experiment("gone", uri)


# ----------------------------------------------------------------------------- lineage


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


# ----------------------------------------------------------------------------- input hashing


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
    assert hash_input(a) == hash_input(b)
    assert hash_input(a) == hashlib.sha256(b"\x01\x02\x03").hexdigest()  # a file: its bytes
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


# ----------------------------------------------------------------------------- params


def test_flatten_params_nesting_truncation_and_secrets() -> None:
    from pydantic import BaseModel, SecretStr

    class Opt(BaseModel):
        lr: float = 0.03
        key: SecretStr = SecretStr("hidden")

    params = {
        "pretrain": {"seco": {"lr": 0.03, "milestones": [120, 160], "opt": Opt()}},
        "fetch": {"source": "synthetic", "regions": [], "extra": {}, "out": Path("data/raw")},
        "long": "x" * 10_000,
        "SH_CLIENT_ID": "id",
        "sentinelhub": {"client_secret": "s", "Password": "p", "access_token": "t"},
        "auth_token": {"value": "nested under a secret key"},
        "bad key@1": None,
    }
    flat = flatten_params(params)
    assert flat == {
        "pretrain.seco.lr": "0.03",
        "pretrain.seco.milestones.0": "120",
        "pretrain.seco.milestones.1": "160",
        "pretrain.seco.opt.lr": "0.03",
        "fetch.source": "synthetic",
        "fetch.regions": "[]",
        "fetch.extra": "{}",
        "fetch.out": "data/raw",
        "long": flat["long"],
        "bad key_1": "None",
    }
    assert len(flat["long"]) == MAX_PARAM_VAL_LENGTH and flat["long"].endswith("...")
    assert flatten_params({"lr": 1}, prefix="pretrain") == {"pretrain.lr": "1"}

    with pytest.raises(ValueError, match="both flatten"):
        flatten_params({"a.b": 1, "a": {"b": 2}})
    with pytest.raises(TypeError, match="mapping"):
        flatten_params([("a", 1)])  # type: ignore[arg-type]


def test_param_limit_matches_mlflow() -> None:
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as MLFLOW_LIMIT

    assert MLFLOW_LIMIT == MAX_PARAM_VAL_LENGTH


# ----------------------------------------------------------------------------- runs


def test_stage_run_logs_params_tags_and_finishes(uri: str, client, tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"samples")
    params = {"many": {f"p{i:03d}": i for i in range(150)}, "sh_client_secret": "nope"}
    with stage_run(
        _experiment(),
        "pretrain-seco",
        stage="pretrain",
        params=params,
        inputs={"data": data},
        tags={"method": "seco", "api_token": "nope"},
        uri=uri,
    ) as run:
        assert isinstance(run, RunHandle)
        assert run.tracking_uri == uri
        log_metrics({"loss": 1.5})

    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.info.run_name == "pretrain-seco"
    assert logged.info.experiment_id == run.experiment_id
    assert logged.data.params == {f"many.p{i:03d}": str(i) for i in range(150)}
    tags = logged.data.tags
    assert tags["method"] == "seco"
    assert tags["s2ssl.stage"] == tags["dvc.stage"] == "pretrain"
    assert tags["input.data"] == hash_input(data)
    assert {"git.commit", "git.dirty"} <= tags.keys()
    assert "api_token" not in tags
    assert logged.data.metrics == {"loss": 1.5}


def test_stage_run_failed_killed_and_checks(uri: str, client, tmp_path: Path) -> None:
    name = _experiment()
    with pytest.raises(RuntimeError, match="boom"), stage_run(name, "bad", stage="s", uri=uri):
        raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt), stage_run(name, "ctrl-c", stage="s", uri=uri):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit), stage_run(name, "exit-0", stage="s", uri=uri):
        raise SystemExit(0)
    with pytest.raises(SystemExit), stage_run(name, "exit-2", stage="s", uri=uri):
        raise SystemExit(2)
    statuses = {
        r.info.run_name: r.info.status
        for r in client.search_runs([get_or_create_experiment(name, uri)])
    }
    assert statuses == {
        "bad": "FAILED",
        "ctrl-c": "KILLED",
        "exit-0": "FINISHED",
        "exit-2": "FAILED",
    }

    with (
        pytest.raises(ValueError, match="'raw'"),
        stage_run(name, "no-input", stage="s", inputs={"raw": tmp_path / "missing"}, uri=uri),
    ):
        pass  # pragma: no cover - never entered
    with (
        pytest.raises(ValueError, match="set by lineage_tags"),
        stage_run(name, "x", stage="s", tags={"git.commit": "fake"}, uri=uri),
    ):
        pass  # pragma: no cover
    assert len(client.search_runs([get_or_create_experiment(name, uri)])) == 4  # none created


def test_nested_run_gets_parent_tag(uri: str, client) -> None:
    name = _experiment()
    with stage_run(name, "study", stage="tune", uri=uri) as parent:
        with stage_run(name, "trial-0", stage="tune", nested=True, uri=uri) as child:
            log_metrics({"val": 0.5})
        with (
            pytest.raises(ValueError, match="already active"),
            stage_run(name, "not-nested", stage="tune", uri=uri),
        ):
            pass  # pragma: no cover
        log_metrics({"best": 0.5})  # still logs into the parent
    assert client.get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    assert client.get_run(child.run_id).info.status == "FINISHED"
    assert client.get_run(parent.run_id).data.metrics == {"best": 0.5}
    assert client.get_run(parent.run_id).info.status == "FINISHED"


def test_log_metrics_skips_non_finite(uri: str, client) -> None:
    import numpy as np
    import torch

    with pytest.raises(ValueError, match="no active MLflow run"):
        log_metrics({"loss": 1.0})
    with stage_run(_experiment(), "m", stage="pretrain", uri=uri) as run:
        for step in range(2):
            log_metrics(
                {
                    "loss": 1.0 / (step + 1),
                    "nan": math.nan,
                    "inf": float("inf"),
                    "text": "n/a",
                    "probe/acc@1": np.float32(0.25),
                    "tensor": torch.tensor(2.0),
                    "vector": torch.ones(3),
                },
                step=step,
            )
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics == {"loss": 0.5, "probe/acc_1": 0.25, "tensor": 2.0}
    history = client.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5)]


def test_log_state_dict_round_trip(uri: str, mlflow_root: Path) -> None:
    import mlflow
    import torch

    model = torch.nn.Linear(3, 2)
    with stage_run(_experiment(), "w", stage="pretrain", uri=uri) as run:
        uri_out = log_state_dict(
            model.state_dict(), "encoder", extra_files={"config.json": {"in": 3, "out": 2}}
        )
        with pytest.raises(TypeError, match="state_dict"):
            log_state_dict(model, "bad")  # type: ignore[arg-type]
    assert uri_out == f"{run.artifact_uri}/encoder"
    local = Path(uri_out.removeprefix("file://"))
    assert local.is_relative_to(mlflow_root / "mlruns" / "artifacts")

    fetched = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri_out))
    state = torch.load(fetched / "weights.pt", weights_only=True)
    restored = torch.nn.Linear(3, 2)
    restored.load_state_dict(state)
    assert torch.equal(restored.weight, model.weight)
    assert (fetched / "config.json").read_text().strip().startswith("{")


def test_lightning_logger_logs_into_the_same_run(uri: str, client) -> None:
    name = _experiment()
    with stage_run(name, "fit", stage="pretrain", params={"lr": 0.1}, uri=uri) as run:
        logger = lightning_logger(run)
        assert logger.run_id == run.run_id
        assert logger.experiment_id == run.experiment_id
        logger.log_metrics({"train/loss": 0.75}, step=3)
        logger.log_hyperparams({"module": {"queue": 16384}, "client_secret": "x"})
        logger.finalize("success")  # Lightning's end of fit must not end the stage run
        assert client.get_run(run.run_id).info.status == "RUNNING"
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.metrics == {"train/loss": 0.75}
    assert logged.data.params == {"lr": "0.1", "module.queue": "16384"}
    assert len(client.search_runs([run.experiment_id])) == 1
    assert os.environ.get("MLFLOW_TRACKING_URI") == uri

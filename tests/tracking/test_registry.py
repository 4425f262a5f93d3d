"""Model registry: the promotion policy (a table of cases), registration with lineage, loading by
alias in a fresh process, idempotency, promotion decisions and aliases, concurrency, URIs."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from s2ssl.config import PromotionPolicy, RegisterConfig
from s2ssl.finetune.models import (
    SceneNet,
    SegmentationNet,
    TimeSeriesSegmentationNet,
    load_model,
    save_model,
)
from s2ssl.models.resnet import ResNetEncoder
from s2ssl.models.unet import ResNetUNet
from s2ssl.models.unet3d import UNet3D
from s2ssl.tracking.pyfunc import predict_array
from s2ssl.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    ModelRecord,
    class_prefix,
    download_model,
    dvc_lineage,
    list_models,
    model_hash,
    promote,
    register_model,
    resolve_model,
    safe_uri,
    should_promote,
)
from s2ssl.tracking.runs import tracking_uri

BANDS = ("B02", "B03", "B04")
LC = ("water", "forest", "cropland")
CONFIG = RegisterConfig()
POLICY = PromotionPolicy(min_improvement=0.01, max_class_drop=0.1)


# --------------------------------------------------------------------------- policy table


def _rec(
    version: str,
    miou: float | None,
    test_set: str | None = "T",
    task: str = "landcover",
    model_hash: str | None = None,
    **classes: float,
) -> ModelRecord:
    metrics = {} if miou is None else {"miou" if task != "scene" else "top1": miou}
    metrics.update({f"{class_prefix(task)}{k}": v for k, v in classes.items()})
    return ModelRecord(task, version, metrics, test_set, model_hash or f"h{version}")


CASES = [
    # (id, candidate, champion, policy, promote?, reason fragment)
    ("first model", _rec("1", 0.30), None, POLICY, True, "no champion yet"),
    ("clearly better", _rec("2", 0.40), _rec("1", 0.30), POLICY, True, "miou 0.4000 >= 0.3000"),
    ("exactly the margin", _rec("2", 0.31), _rec("1", 0.30), POLICY, True, ">= 0.3000 + 0.01"),
    ("below the margin", _rec("2", 0.305), _rec("1", 0.30), POLICY, False, "< 0.3000 + 0.01"),
    ("equal", _rec("2", 0.30), _rec("1", 0.30), POLICY, False, "< 0.3000"),
    ("worse", _rec("2", 0.20), _rec("1", 0.30), POLICY, False, "miou 0.2000 < 0.3000"),
    (
        "zero margin needs strictly better",
        _rec("2", 0.30),
        _rec("1", 0.30),
        PromotionPolicy(min_improvement=0.0),
        False,
        "< 0.3000 + 0",
    ),
    (
        "zero margin, better",
        _rec("2", 0.3001),
        _rec("1", 0.30),
        PromotionPolicy(min_improvement=0.0),
        True,
        ">=",
    ),
    (
        "same model hash",
        _rec("2", 0.9, model_hash="x"),
        _rec("1", 0.3, model_hash="x"),
        POLICY,
        False,
        "already the champion",
    ),
    ("same version", _rec("1", 0.9), _rec("1", 0.3), POLICY, False, "already the champion"),
    ("no metric", _rec("2", None), _rec("1", 0.3), POLICY, False, "no finite 'miou'"),
    ("NaN metric", _rec("2", math.nan), _rec("1", 0.3), POLICY, False, "no finite 'miou'"),
    (
        "other test set",
        _rec("2", 0.9, "U"),
        _rec("1", 0.3, "T"),
        POLICY,
        False,
        "different test set",
    ),
    (
        "unknown test set",
        _rec("2", 0.9, None),
        _rec("1", 0.3, None),
        POLICY,
        False,
        "different test set",
    ),
    (
        "other test set allowed",
        _rec("2", 0.9, "U"),
        _rec("1", 0.3, "T"),
        PromotionPolicy(require_same_test_set=False),
        True,
        ">=",
    ),
    ("champion lacks the metric", _rec("2", 0.3), _rec("1", None), POLICY, True, "no finite"),
    (
        "a class collapses",
        _rec("2", 0.50, water=0.10, forest=0.9),
        _rec("1", 0.40, water=0.35, forest=0.5),
        POLICY,
        False,
        "iou.water drops by 0.2500 > 0.1",
    ),
    (
        "class drop within the guard rail",
        _rec("2", 0.50, water=0.30, forest=0.9),
        _rec("1", 0.40, water=0.35, forest=0.5),
        POLICY,
        True,
        ">=",
    ),
    (
        "guard rail off",
        _rec("2", 0.50, water=0.0),
        _rec("1", 0.40, water=0.9),
        PromotionPolicy(max_class_drop=None),
        True,
        ">=",
    ),
    (
        "scenes use top1 and per-class accuracy",
        _rec("2", 0.80, task="scene", water=0.2),
        _rec("1", 0.70, task="scene", water=0.9),
        POLICY,
        False,
        "acc.water drops",
    ),
    (
        "another metric",
        ModelRecord("landcover", "2", {"miou": 0.2, "kappa": 0.8}, "T"),
        ModelRecord("landcover", "1", {"miou": 0.5, "kappa": 0.6}, "T"),
        PromotionPolicy(metric="kappa"),
        True,
        "kappa 0.8000",
    ),
]


@pytest.mark.parametrize(
    ("candidate", "champion", "policy", "expected", "fragment"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_should_promote_table(
    candidate: ModelRecord,
    champion: ModelRecord | None,
    policy: PromotionPolicy,
    expected: bool,
    fragment: str,
) -> None:
    decision = should_promote(candidate, champion, policy)
    assert decision.promote is expected
    assert fragment in decision.reason


def test_should_promote_is_pure() -> None:
    cand, champ = _rec("2", 0.5, water=0.4), _rec("1", 0.4, water=0.45)
    before = (dict(cand.metrics), dict(champ.metrics))
    first = should_promote(cand, champ, POLICY)
    assert should_promote(cand, champ, POLICY) == first
    assert (dict(cand.metrics), dict(champ.metrics)) == before


# --------------------------------------------------------------------------- fixtures


def _segmentation_model(root: Path, name: str, seed: int, miou: float, **extra: object) -> Path:
    torch.manual_seed(seed)
    net = SegmentationNet(ResNetUNet(18, 3, 8), BANDS, LC, [0.1, 0.12, 0.14], [0.05] * 3).eval()
    test = {"miou": miou, "iou.water": miou, "iou.forest": miou, "iou.cropland": miou}
    meta = {"init": "dense", "task": "landcover", "test": test, "test_set": "T1"}
    meta.update(extra)
    return save_model(net, root / name, meta)


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite store per test (also exported for subprocesses)."""
    import mlflow

    resolved = tracking_uri(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", resolved)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    previous = mlflow.get_tracking_uri()
    yield resolved
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "a": _segmentation_model(root, "a", 0, 0.40),
        "better": _segmentation_model(root, "better", 1, 0.50),
        "worse": _segmentation_model(root, "worse", 2, 0.30),
        "best": _segmentation_model(root, "best", 3, 0.60),
    }


# --------------------------------------------------------------------------- registration


def test_model_hash_depends_on_weights_and_architecture(
    models: dict[str, Path], tmp_path: Path
) -> None:
    assert model_hash(models["a"]) == model_hash(models["a"])
    assert model_hash(models["a"]) != model_hash(models["better"])
    with pytest.raises(ValueError, match="not a fine-tuned model directory"):
        model_hash(tmp_path)


def test_dvc_lineage_reads_the_stage(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(
        textwrap.dedent(
            """\
            schema: '2.0'
            stages:
              finetune@landcover:
                cmd: s2ssl finetune --task landcover
                deps:
                - path: data/validated/landcover
                  hash: md5
                  md5: abc.dir
                params:
                  params.yaml:
                    seed: 0
                outs:
                - path: models/finetune/landcover/model
                  hash: md5
                  md5: def.dir
            """
        )
    )
    tags = dvc_lineage(lock, "finetune@landcover")
    assert tags["dvc.dep.data/validated/landcover"] == "abc.dir"
    assert tags["dvc.out.models/finetune/landcover/model"] == "def.dir"
    assert len(tags["dvc.params"]) == 64
    assert dvc_lineage(lock, "finetune@scene") == {"dvc.lock": "no entry for stage finetune@scene"}
    assert "dvc.lock" in dvc_lineage(tmp_path / "missing.lock", "x")


@pytest.mark.slow
def test_register_is_idempotent_and_tags_lineage(
    uri: str, models: dict[str, Path], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    first = register_model(CONFIG, "landcover", models["a"], lock_file=tmp_path / "none", uri=uri)
    again = register_model(CONFIG, "landcover", models["a"], lock_file=tmp_path / "none", uri=uri)
    assert first.created and not again.created
    assert (first.name, first.version) == ("s2ssl-landcover", "1")
    assert again.version == first.version
    client = MlflowClient(tracking_uri=uri)
    versions = client.search_model_versions("name = 's2ssl-landcover'")
    assert len(versions) == 1
    tags = versions[0].tags
    assert tags["s2ssl.model_hash"] == model_hash(models["a"])
    assert tags["s2ssl.init"] == "dense"
    assert tags["s2ssl.test_set"] == "T1"
    assert float(tags["metric.miou"]) == pytest.approx(0.40)
    assert "git.commit" in tags
    alias = client.get_model_version_by_alias("s2ssl-landcover", CHALLENGER)
    assert str(alias.version) == "1"
    run = client.get_run(first.run_id)
    assert run.data.tags["dvc.stage"] == "register"
    assert run.data.metrics["test.miou"] == pytest.approx(0.40)


def test_register_refuses_a_model_of_another_task(uri: str, tmp_path: Path) -> None:
    path = _segmentation_model(tmp_path, "m", 0, 0.4)
    with pytest.raises(ValueError, match="holds a 'landcover' model, not 'scene'"):
        register_model(CONFIG, "scene", path, uri=uri)


_FRESH = """
import sys
import numpy as np
import mlflow
x_path, model_uri, out_path, *doy_path = sys.argv[1:]
x = np.load(x_path)
inputs = {"x": x, "doy": np.load(doy_path[0])} if doy_path else x
np.save(out_path, mlflow.pyfunc.load_model(model_uri).predict(inputs))
"""


def _predict_fresh(
    tmp_path: Path, model_uri: str, x: np.ndarray, doy: np.ndarray | None = None
) -> np.ndarray:
    """Load ``model_uri`` in a new interpreter (MLFLOW_TRACKING_URI from the env) and predict."""
    np.save(tmp_path / "x.npy", x)
    args = [sys.executable, "-c", _FRESH, str(tmp_path / "x.npy"), model_uri, "out.npy"]
    if doy is not None:
        np.save(tmp_path / "doy.npy", doy)
        args.append(str(tmp_path / "doy.npy"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(tmp_path / "out.npy")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["segmentation", "timeseries", "scene"])
def test_registered_model_loads_by_alias_in_a_fresh_process_and_predicts_the_same(
    uri: str, tmp_path: Path, kind: str
) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    doy = None
    if kind == "segmentation":
        task, net = (
            "landcover",
            SegmentationNet(ResNetUNet(18, 3, 8), BANDS, LC, [0.1, 0.12, 0.14], [0.05] * 3),
        )
        x = rng.uniform(0.01, 0.3, (2, 3, 32, 96)).astype(np.float32)  # not the example size
    elif kind == "timeseries":
        task, net = "croptype", TimeSeriesSegmentationNet(UNet3D(4, 4, 8, 2), BANDS, LC)
        x = rng.uniform(0.01, 0.3, (2, 4, 3, 8, 8)).astype(np.float32)
        doy = np.array([[10, 50, 90, 130]] * 2, dtype=np.float32)
    else:
        task, net = "scene", SceneNet(ResNetEncoder(18, 3), BANDS, LC, [0.1] * 3, [0.05] * 3)
        x = rng.uniform(0.01, 0.3, (3, 3, 32, 32)).astype(np.float32)
    net.eval()
    model_dir = save_model(net, tmp_path / "model", {"init": "random", "task": task, "test": {}})
    reg = register_model(CONFIG, task, model_dir, uri=uri)
    promote(CONFIG, task, uri=uri)
    out = _predict_fresh(tmp_path, f"models:/s2ssl-{task}@{CHAMPION}", x, doy)
    with torch.inference_mode():
        args = (
            (torch.from_numpy(x),) if doy is None else (torch.from_numpy(x), torch.from_numpy(doy))
        )
        expected = torch.softmax(net(*args), dim=1).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)
    loaded, _ = load_model(model_dir)
    inputs = x if doy is None else {"x": x, "doy": doy}
    np.testing.assert_array_equal(predict_array(loaded, inputs, "labels"), expected.argmax(axis=1))
    assert reg.version == "1"


def test_pyfunc_input_errors_name_the_problem(models: dict[str, Path]) -> None:
    net, _ = load_model(models["a"])
    with pytest.raises(ValueError, match="input has 4 bands, the model takes 3"):
        predict_array(net, np.zeros((1, 4, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        predict_array(net, np.zeros((4, 32, 32), np.float32))
    with pytest.raises(ValueError, match="output must be one of"):
        predict_array(net, np.zeros((1, 3, 32, 32), np.float32), "classes")


# --------------------------------------------------------------------------- promotion


def test_promotion_moves_champion_only_when_the_policy_holds(
    uri: str, models: dict[str, Path]
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    register_model(CONFIG, "landcover", models["a"], uri=uri)
    first = promote(CONFIG, "landcover", uri=uri)
    assert first.promoted and first.champion_version == "1"
    assert "no champion yet" in first.reason

    register_model(CONFIG, "landcover", models["worse"], uri=uri)
    rejected = promote(CONFIG, "landcover", uri=uri)
    assert not rejected.promoted
    assert rejected.reason.startswith("miou 0.3000 < 0.4000 + 0.005")
    assert rejected.champion_version == "1" and rejected.candidate_version == "2"
    assert str(client.get_model_version_by_alias("s2ssl-landcover", CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias("s2ssl-landcover", CHALLENGER).version) == "2"
    tags = client.get_model_version("s2ssl-landcover", "2").tags
    assert tags["s2ssl.promotion.decision"] == "rejected"
    assert tags["s2ssl.promotion.reason"] == rejected.reason
    assert tags["s2ssl.promotion.champion_version"] == "1"

    register_model(CONFIG, "landcover", models["better"], uri=uri)
    won = promote(CONFIG, "landcover", uri=uri)
    assert won.promoted and won.champion_version == "3" and won.previous_champion_version == "1"
    assert str(client.get_model_version_by_alias("s2ssl-landcover", CHAMPION).version) == "3"
    model = client.get_registered_model("s2ssl-landcover")
    assert {k: str(v) for k, v in model.aliases.items()} == {
        CHAMPION: "3"
    }  # the promoted challenger lost its alias

    nothing = promote(CONFIG, "landcover", uri=uri)
    assert not nothing.promoted and "no challenger" in nothing.reason

    back = promote(CONFIG, "landcover", version="1", force=True, uri=uri)
    assert back.promoted and "forced" in back.reason
    assert str(client.get_model_version_by_alias("s2ssl-landcover", CHAMPION).version) == "1"

    rows = list_models(uri=uri)
    assert [(r.version, r.aliases) for r in rows] == [("1", (CHAMPION,)), ("2", ()), ("3", ())]
    assert rows[1].decision == "rejected" and rows[1].value == pytest.approx(0.30)


def test_promote_without_registration_is_a_clear_error(uri: str) -> None:
    with pytest.raises(ValueError, match=r"no registered model 's2ssl-landcover'.*s2ssl register"):
        promote(CONFIG, "landcover", uri=uri)


def _promote_worker(uri: str, version: str, barrier: object, queue: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    result = promote(CONFIG, "landcover", version=version, uri=uri)
    queue.put((version, result.promoted))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_concurrent_promotions_end_with_the_best_single_champion(
    uri: str, models: dict[str, Path]
) -> None:
    from mlflow import MlflowClient

    versions = {
        key: register_model(CONFIG, "landcover", models[key], uri=uri).version
        for key in ("a", "better", "best")
    }
    ctx = mp.get_context("fork")
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_promote_worker, args=(uri, v, barrier, queue))
        for v in versions.values()
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    outcomes = dict(queue.get(timeout=5) for _ in procs)
    client = MlflowClient(tracking_uri=uri)
    champion = str(client.get_model_version_by_alias("s2ssl-landcover", CHAMPION).version)
    # every promotion is decided against the champion of that moment: the best one must win,
    # whatever the order, and it was promoted exactly when it was decided
    assert str(champion) == versions["best"]
    assert outcomes[versions["best"]] is True
    assert str(client.get_registered_model("s2ssl-landcover").aliases.get(CHAMPION)) == champion


# --------------------------------------------------------------------------- URIs


def test_unknown_model_uris_are_clear_errors(
    uri: str, models: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="registered models: none"):
        download_model("models:/s2ssl-landcover@champion", tmp_path / "a", uri=uri)
    register_model(CONFIG, "landcover", models["a"], uri=uri)
    with pytest.raises(ValueError, match=r"has versions \['1'\] and aliases \['challenger'\]"):
        download_model("models:/s2ssl-landcover@champion", tmp_path / "b", uri=uri)
    with (
        pytest.raises(ValueError, match="neither an MLflow model URI"),
        resolve_model(tmp_path / "nowhere"),
    ):
        pass
    with resolve_model("models:/s2ssl-landcover@challenger") as path:
        assert (path / "weights.pt").is_file()
        assert model_hash(path) == model_hash(models["a"])
    assert not path.exists()  # the download lived only inside the context


def test_safe_uri_hides_credentials() -> None:
    assert safe_uri("postgresql://bob:hunter2@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    assert safe_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_cli_register_promote_models(uri: str, models: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from s2ssl.cli import app
    from testkit import write_tiny_params

    params = write_tiny_params(tmp_path / "params.yaml")
    root = tmp_path / "finetune"
    (root / "landcover").mkdir(parents=True)
    import shutil

    shutil.copytree(models["a"], root / "landcover" / "model")
    runner = CliRunner()
    args = ["--params", str(params)]
    done = runner.invoke(
        app,
        [
            "register",
            *args,
            "--models",
            str(root),
            "--task",
            "landcover",
            "--reports",
            str(tmp_path / "reg"),
        ],
    )
    assert done.exit_code == 0, done.output
    assert "registered as new version 1" in done.output
    registered = json.loads((tmp_path / "reg" / "registered.json").read_text())
    assert registered["tasks"]["landcover"]["version"] == "1"
    done = runner.invoke(
        app, ["promote", *args, "--task", "landcover", "--reports", str(tmp_path / "pro")]
    )
    assert done.exit_code == 0, done.output
    assert "promoted" in done.output and "no champion yet" in done.output
    decisions = json.loads((tmp_path / "pro" / "decisions.json").read_text())
    assert decisions["tasks"]["landcover"]["champion_version"] == "1"
    done = runner.invoke(app, ["models", *args], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "s2ssl-landcover" in done.output and "champion" in done.output
    done = runner.invoke(app, ["promote", *args, "--task", "landcover", "--force"])
    assert done.exit_code == 2 and "--force needs" in done.output

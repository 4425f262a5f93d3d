"""Promotion: the policy (a table of cases), decisions and aliases, concurrent promotions."""

from __future__ import annotations

import math
import multiprocessing as mp
from pathlib import Path

import pytest
from registrykit import CONFIG

from s2ssl.config import PromotionPolicy
from s2ssl.registry.listing import list_models
from s2ssl.registry.promotion import (
    ModelRecord,
    class_prefix,
    headline_metric,
    promote,
    should_promote,
)
from s2ssl.registry.registration import register_model
from s2ssl.registry.versions import CHALLENGER, CHAMPION


def promotion_policy(**changes: object) -> PromotionPolicy:
    """The repo's ``register.promote`` with ``changes``."""
    return PromotionPolicy.model_validate({**CONFIG.promote.model_dump(), **changes})


POLICY = promotion_policy(min_improvement=0.01, max_class_drop=0.1)


def _rec(
    version: str,
    miou: float | None,
    test_set: str | None = "T",
    task: str = "landcover",
    model_hash: str | None = None,
    **classes: float,
) -> ModelRecord:
    metrics = {} if miou is None else {headline_metric(task): miou}
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
        promotion_policy(min_improvement=0.0),
        False,
        "< 0.3000 + 0",
    ),
    (
        "zero margin, better",
        _rec("2", 0.3001),
        _rec("1", 0.30),
        promotion_policy(min_improvement=0.0),
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
        promotion_policy(require_same_test_set=False),
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
        promotion_policy(max_class_drop=None),
        True,
        ">=",
    ),
    (
        "scenes use balanced accuracy and per-class accuracy",
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
        promotion_policy(metric="kappa"),
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

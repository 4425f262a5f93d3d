"""Promotion: the policy (a table of cases), decisions and aliases, concurrent promotions."""

from __future__ import annotations

import math
import multiprocessing as mp
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from registrykit import CONFIG, pixel_results, scene_results

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
from s2ssl.registry.versions import CHALLENGER, CHAMPION, TAG_TEST_SAMPLES
from s2ssl.stats import paired_difference, score_from_confusion


def promotion_policy(**changes: object) -> PromotionPolicy:
    """The repo's ``register.promote`` with ``changes``."""
    return PromotionPolicy.model_validate({**CONFIG.promote.model_dump(), **changes})


POLICY = promotion_policy(min_improvement=0.01, max_class_drop=0.1)


def _rec(
    version: str,
    score: float | None,
    test_set: str | None = "T",
    task: str = "landcover",
    model_hash: str | None = None,
    *,
    samples: bool = True,
    seed: int | None = None,
    **classes: float,
) -> ModelRecord:
    """A record whose headline test score is computed from per-sample results of quality
    ``score`` (:func:`pixel_results`, :func:`scene_results`); ``samples=False``: none kept."""
    metric = headline_metric(task)
    results = None
    metrics: dict[str, float] = {}
    if score is not None and math.isfinite(score):
        results = (
            scene_results(score)
            if task == "scene"
            else pixel_results(score, int(version) if seed is None else seed)
        )
        metrics[metric] = float(score_from_confusion(results[1].sum(axis=0), metric))
    elif score is not None:
        metrics[metric] = score
    metrics.update({f"{class_prefix(task)}{k}": v for k, v in classes.items()})
    return ModelRecord(
        task, version, metrics, test_set, model_hash or f"h{version}", results if samples else None
    )


def _renamed(record: ModelRecord, prefix: str) -> ModelRecord:
    assert record.test_samples is not None
    ids, confusion = record.test_samples
    return replace(record, test_samples=(np.char.add(prefix, ids), confusion))


CASES = [
    # (id, candidate, champion, policy, promote?, reason fragment)
    ("first model", _rec("1", 0.30), None, POLICY, True, "no champion yet"),
    (
        "clearly better",
        _rec("2", 0.40),
        _rec("1", 0.30),
        POLICY,
        True,
        "> min_improvement 0.01 (paired bootstrap over 30 test samples, champion version 1)",
    ),
    (
        "slightly better, the interval crosses the margin",
        _rec("2", 0.42),
        _rec("1", 0.40),
        POLICY,
        False,
        "lower bound not above min_improvement 0.01",
    ),
    (
        "identical results need a strictly positive lower bound",
        _rec("2", 0.30, seed=1),
        _rec("1", 0.30),
        promotion_policy(min_improvement=0.0),
        False,
        "mIoU +0.0000 [95 % CI +0.0000, +0.0000]: lower bound not above min_improvement 0 ",
    ),
    ("worse", _rec("2", 0.20), _rec("1", 0.30), POLICY, False, "mIoU -0.1000 [95 % CI -0.1"),
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
        "> min_improvement",
    ),
    ("champion lacks the metric", _rec("2", 0.3), _rec("1", None), POLICY, True, "no finite"),
    (
        "candidate without per-sample results",
        _rec("2", 0.9, samples=False),
        _rec("1", 0.3),
        POLICY,
        False,
        "candidate version 2 has no per-sample test results (test_samples.npz); a comparison "
        "without uncertainty is not a finding",
    ),
    (
        "champion without per-sample results",
        _rec("2", 0.9),
        _rec("1", 0.3, samples=False),
        POLICY,
        False,
        "champion version 1 has no per-sample test results",
    ),
    (
        "neither with per-sample results",
        _rec("2", 0.9, samples=False),
        _rec("1", 0.3, samples=False),
        POLICY,
        False,
        "candidate version 2 and champion version 1 have no per-sample",
    ),
    (
        "per-sample results of other test samples",
        _renamed(_rec("2", 0.9), "x"),
        _rec("1", 0.3),
        POLICY,
        False,
        "cover other test samples (30 only the candidate's, e.g. ['xtile-000', 'xtile-001']",
    ),
    (
        "a metric that is not a function of the confusion matrix",
        _rec("2", 0.9, water=0.9),
        _rec("1", 0.3, water=0.3),
        promotion_policy(metric="iou.water"),
        False,
        "'iou.water' is not computed from confusion matrices",
    ),
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
        "> min_improvement",
    ),
    (
        "guard rail off",
        _rec("2", 0.50, water=0.0),
        _rec("1", 0.40, water=0.9),
        promotion_policy(max_class_drop=None),
        True,
        "> min_improvement",
    ),
    (
        "scenes use balanced accuracy and per-class accuracy",
        _rec("2", 0.90, task="scene", water=0.2),
        _rec("1", 0.70, task="scene", water=0.9),
        POLICY,
        False,
        "acc.water drops",
    ),
    (
        "scenes: a better balanced accuracy",
        _rec("2", 0.90, task="scene"),
        _rec("1", 0.70, task="scene"),
        POLICY,
        True,
        "balanced accuracy +0.2000 [95 % CI +0.",
    ),
    (
        "another metric",
        replace(_rec("2", 0.5), metrics={"miou": 0.2, "kappa": 0.8}),
        replace(_rec("1", 0.3), metrics={"miou": 0.5, "kappa": 0.6}),
        promotion_policy(metric="kappa"),
        True,
        "kappa +0.",
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


def test_the_reason_states_the_paired_bootstrap_interval() -> None:
    candidate, champion = _rec("2", 0.40), _rec("1", 0.30)
    assert candidate.test_samples is not None and champion.test_samples is not None
    decision = should_promote(candidate, champion, POLICY)
    expected = paired_difference(
        candidate.test_samples[1], champion.test_samples[1], "miou", confidence=0.95, n_boot=2000
    )
    assert decision.promote
    assert decision.reason == (
        f"mIoU +0.1000 [95 % CI {expected.lo:+.4f}, {expected.hi:+.4f}] > min_improvement 0.01 "
        "(paired bootstrap over 30 test samples, champion version 1)"
    )
    # the champion's samples in another order are aligned by id: the same decision
    ids, confusion = champion.test_samples
    order = np.random.default_rng(0).permutation(ids.size)
    shuffled = replace(champion, test_samples=(ids[order], confusion[order]))
    assert should_promote(candidate, shuffled, POLICY) == decision  # ids sorted: any order


def test_should_promote_is_pure() -> None:
    cand, champ = _rec("2", 0.5, water=0.4), _rec("1", 0.4, water=0.45)
    before = (dict(cand.metrics), dict(champ.metrics))
    first = should_promote(cand, champ, POLICY)
    assert should_promote(cand, champ, POLICY) == first
    assert (dict(cand.metrics), dict(champ.metrics)) == before


def test_promotion_moves_champion_only_when_the_policy_holds(
    uri: str, models: dict[str, Path], capfd: pytest.CaptureFixture[str]
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
    assert rejected.reason.startswith("mIoU -0.1000 [95 % CI -0.1")
    assert rejected.reason.endswith(
        "lower bound not above min_improvement 0.005 (paired bootstrap over 30 test samples, "
        "champion version 1)"
    )
    assert rejected.champion_version == "1" and rejected.candidate_version == "2"
    assert str(client.get_model_version_by_alias("s2ssl-landcover", CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias("s2ssl-landcover", CHALLENGER).version) == "2"
    tags = client.get_model_version("s2ssl-landcover", "2").tags
    assert tags["s2ssl.promotion.decision"] == "rejected"
    assert tags["s2ssl.promotion.reason"] == rejected.reason
    assert tags["s2ssl.promotion.champion_version"] == "1"

    register_model(CONFIG, "landcover", models["better"], uri=uri)
    capfd.readouterr()
    won = promote(CONFIG, "landcover", uri=uri)
    assert "Downloading" not in "".join(capfd.readouterr())  # no MLflow progress bars
    assert won.reason.startswith("mIoU +0.1000 [95 % CI +0.")
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

    register_model(CONFIG, "landcover", models["bare"], uri=uri)  # no test_samples.npz
    assert TAG_TEST_SAMPLES not in client.get_model_version("s2ssl-landcover", "4").tags
    assert (
        client.get_model_version("s2ssl-landcover", "1").tags[TAG_TEST_SAMPLES].startswith("runs:/")
    )
    bare = promote(CONFIG, "landcover", uri=uri)
    assert not bare.promoted and bare.candidate_version == "4"
    assert bare.reason.startswith("candidate version 4 has no per-sample test results")


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

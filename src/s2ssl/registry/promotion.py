"""Promotion: the policy and its application to the registry.

:func:`should_promote` is a pure function of two registered models' records (no I/O, no MLflow):
whether a ``challenger`` replaces the ``champion`` under ``register.promote``
(:class:`s2ssl.config.PromotionPolicy`). The comparison is statistical: both models' per-test-
sample confusion matrices (:mod:`s2ssl.registry.samples`) are aligned by sample id, and the
difference of the metric gets a paired bootstrap interval over the test samples
(:func:`s2ssl.stats.paired_difference`); the challenger wins only when the interval's lower bound
exceeds ``min_improvement``. Two headline numbers without their uncertainty are never enough.
:func:`promote` reads the records (and downloads the per-sample results) from the registry,
applies the decision, moves the ``champion`` alias and records the decision as version tags.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from s2ssl.registry.samples import TestSamples, align_samples, download_test_samples
from s2ssl.registry.versions import (
    CHALLENGER,
    CHAMPION,
    METRIC_TAG_PREFIX,
    TAG_AGAINST,
    TAG_DECIDED_AT,
    TAG_DECISION,
    TAG_HASH,
    TAG_REASON,
    TAG_TEST_SET,
    by_alias,
    model_versions,
    registry_client,
    registry_lock,
    safe_uri,
)
from s2ssl.stats import METRICS, paired_difference
from s2ssl.taskspec import task_spec
from s2ssl.tracking.backend import tracking_uri
from s2ssl.tracking.flatten import MAX_TAG_VAL_LENGTH

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from s2ssl.config import PromotionPolicy, RegisterConfig


def headline_metric(task: str) -> str:
    """The metric a task's models are compared on by default: the task spec's headline."""
    return task_spec(task).headline


def class_prefix(task: str) -> str:
    """Prefix of the per-class test scores of ``task`` (``acc.`` for scenes, else ``iou.``)."""
    return task_spec(task).class_prefix


@dataclass(frozen=True)
class ModelRecord:
    """What the promotion policy sees of one registered model version."""

    task: str
    version: str
    metrics: Mapping[str, float]
    test_set: str | None = None
    model_hash: str | None = None
    test_samples: TestSamples | None = field(default=None, compare=False, repr=False)
    """``(ids, confusion)``: the per-test-sample confusion matrices, when known."""


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`should_promote`: whether to promote, and why (one sentence)."""

    promote: bool
    reason: str


def _label(task: str, metric: str) -> str:
    spec = task_spec(task)
    return spec.headline_label if metric == spec.headline else metric


def _missing_samples(candidate: ModelRecord, champion: ModelRecord) -> str:
    """Why the two records cannot be compared sample by sample: per-sample results missing."""
    lacking = [
        f"{who} version {record.version}"
        for who, record in (("candidate", candidate), ("champion", champion))
        if record.test_samples is None
    ]
    return (
        f"{' and '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no per-sample test "
        "results (test_samples.npz); a comparison without uncertainty is not a finding"
    )


def _class_drop(
    candidate: ModelRecord, champion: ModelRecord, policy: PromotionPolicy
) -> tuple[float, str] | None:
    """The largest per-class drop beyond ``policy.max_class_drop``, or ``None``."""
    if policy.max_class_drop is None:
        return None
    prefix = class_prefix(candidate.task)
    drops = sorted(
        (
            (champion.metrics[k] - candidate.metrics[k], k)
            for k in champion.metrics
            if k.startswith(prefix)
            and k in candidate.metrics
            and math.isfinite(candidate.metrics[k])
            and math.isfinite(champion.metrics[k])
        ),
        reverse=True,
    )
    if drops and drops[0][0] > policy.max_class_drop:
        return drops[0]
    return None


def should_promote(
    candidate: ModelRecord, champion: ModelRecord | None, policy: PromotionPolicy
) -> Decision:
    """Whether ``candidate`` should replace ``champion`` under ``policy`` (pure; no I/O).

    Rules, in order: no champion → promote; the same model (hash or version) → no; the metric
    (``policy.metric`` or :func:`headline_metric`) missing or not finite on the candidate → no;
    different test sets while ``policy.require_same_test_set`` → no (an unknown test set counts
    as different); the champion without the metric → promote; either without per-sample test
    results, results on other test samples, or a metric that is not a function of the
    confusion matrix (:data:`s2ssl.stats.METRICS`) → no; the lower bound of the
    ``policy.confidence`` interval of ``metric(candidate) − metric(champion)`` (paired bootstrap
    over the test samples, ``policy.bootstrap_samples`` draws) not above
    ``policy.min_improvement`` → no; any per-class score (:func:`class_prefix`) dropping by more
    than ``policy.max_class_drop`` → no; else promote. The reason states the interval.
    """
    metric = policy.metric or headline_metric(candidate.task)
    if champion is None:
        return Decision(True, f"no champion yet: version {candidate.version} becomes the first")
    if candidate.version == champion.version or (
        candidate.model_hash is not None and candidate.model_hash == champion.model_hash
    ):
        return Decision(False, f"version {candidate.version} is already the champion's model")
    value = candidate.metrics.get(metric)
    if value is None or not math.isfinite(value):
        return Decision(
            False,
            f"candidate version {candidate.version} has no finite {metric!r} test score "
            f"(has: {sorted(candidate.metrics)[:8]})",
        )
    if policy.require_same_test_set and (
        candidate.test_set is None or candidate.test_set != champion.test_set
    ):
        return Decision(
            False,
            f"scored on a different test set than champion version {champion.version} "
            f"({(candidate.test_set or 'unknown')[:12]} vs {(champion.test_set or 'unknown')[:12]}"
            "); the scores are not comparable (register.promote.require_same_test_set)",
        )
    best = champion.metrics.get(metric)
    if best is None or not math.isfinite(best):
        return Decision(
            True, f"champion version {champion.version} has no finite {metric!r}; replaced"
        )
    cand_samples, champ_samples = candidate.test_samples, champion.test_samples
    if cand_samples is None or champ_samples is None:
        return Decision(False, _missing_samples(candidate, champion))
    aligned = align_samples(cand_samples, champ_samples)
    if isinstance(aligned, str):
        return Decision(False, f"{aligned} than champion version {champion.version}")
    if metric not in METRICS:
        return Decision(
            False,
            f"{metric!r} is not computed from confusion matrices (one of {list(METRICS)}), so "
            "it has no bootstrap interval; set register.promote.metric to one of them",
        )
    ids, ours, theirs = aligned
    try:
        estimate = paired_difference(
            ours,
            theirs,
            metric,
            confidence=policy.confidence,
            n_boot=policy.bootstrap_samples,
        )
    except ValueError as e:
        return Decision(False, f"no interval for the difference in {metric}: {e}")
    interval = (
        f"{_label(candidate.task, metric)} {estimate.value:+.4f} [{policy.confidence * 100:g} % "
        f"CI {estimate.lo:+.4f}, {estimate.hi:+.4f}]"
    )
    source = f"(paired bootstrap over {ids.size} test samples, champion version {champion.version})"
    if not estimate.lo > policy.min_improvement:
        return Decision(
            False,
            f"{interval}: lower bound not above min_improvement {policy.min_improvement:g} "
            f"{source}",
        )
    drop = _class_drop(candidate, champion, policy)
    if drop is not None:
        return Decision(
            False,
            f"{interval} > min_improvement {policy.min_improvement:g}, but {drop[1]} drops by "
            f"{drop[0]:.4f} > {policy.max_class_drop:g} (guard rail "
            "register.promote.max_class_drop)",
        )
    return Decision(True, f"{interval} > min_improvement {policy.min_improvement:g} {source}")


@dataclass(frozen=True)
class Promotion:
    """The outcome of :func:`promote` for one registered model."""

    task: str
    model: str
    promoted: bool
    reason: str
    metric: str
    candidate_version: str | None
    candidate_value: float | None
    previous_champion_version: str | None
    champion_value: float | None
    champion_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record (``reports/promote/decisions.json``)."""
        return {
            "model": self.model,
            "promoted": self.promoted,
            "reason": self.reason,
            "metric": self.metric,
            "candidate_version": self.candidate_version,
            "candidate_value": self.candidate_value,
            "previous_champion_version": self.previous_champion_version,
            "champion_value": self.champion_value,
            "champion_version": self.champion_version,
        }


def version_record(task: str, version: ModelVersion) -> ModelRecord:
    """What the policy sees of a registered version: its ``metric.*`` tags, test set and hash."""
    metrics: dict[str, float] = {}
    for key, value in version.tags.items():
        if key.startswith(METRIC_TAG_PREFIX):
            try:
                metrics[key[len(METRIC_TAG_PREFIX) :]] = float(value)
            except ValueError:
                continue
    test_set = version.tags.get(TAG_TEST_SET)
    return ModelRecord(
        task=task,
        version=str(version.version),
        metrics=metrics,
        test_set=None if test_set in (None, "unknown") else test_set,
        model_hash=version.tags.get(TAG_HASH),
    )


def promote(
    config: RegisterConfig,
    task: str,
    *,
    version: str | int | None = None,
    force: bool = False,
    uri: str | None = None,
) -> Promotion:
    """Promote the ``challenger`` (or ``version``) of ``task`` to ``champion`` if the policy holds.

    The decision and its reason are recorded on the candidate version as tags; a promoted
    challenger loses the ``challenger`` alias, a rejected one keeps it. With ``force`` the policy
    is skipped (a manual roll-back) and the reason says so.

    Both versions' per-test-sample results are downloaded for the policy's bootstrap.

    Raises:
        ValueError: no such registered model or version, nothing to promote, or per-sample
            results that are tagged but cannot be downloaded or read.
    """
    uri = tracking_uri(uri)
    name = config.model_name(task)
    client = registry_client(uri)
    metric = config.promote.metric or headline_metric(task)
    with registry_lock(uri, name):
        versions = model_versions(client, name)
        if not versions:
            raise ValueError(
                f"no registered model {name!r} at {safe_uri(uri)}; run `s2ssl register` "
                "(or `dvc repro register`) first"
            )
        if version is not None:
            wanted = str(version)
            found = [v for v in versions if str(v.version) == wanted]
            if not found:
                raise ValueError(
                    f"{name} has no version {wanted}; versions: "
                    f"{[str(v.version) for v in versions]}"
                )
            candidate = found[0]
        else:
            challenger = by_alias(client, name, CHALLENGER)
            if challenger is None:
                champion = by_alias(client, name, CHAMPION)
                return Promotion(
                    task,
                    name,
                    False,
                    "no challenger to consider (nothing newly registered)",
                    metric,
                    None,
                    None,
                    None if champion is None else str(champion.version),
                    None
                    if champion is None
                    else version_record(task, champion).metrics.get(metric),
                    None if champion is None else str(champion.version),
                )
            candidate = challenger
        champion = by_alias(client, name, CHAMPION)
        cand = version_record(task, candidate)
        champ = None if champion is None else version_record(task, champion)
        if champion is not None and champ is not None and not force:
            cand = replace(cand, test_samples=download_test_samples(candidate, uri))
            champ = replace(champ, test_samples=download_test_samples(champion, uri))
        if force:
            decision = Decision(
                True,
                f"forced by the user (policy not applied) over version "
                f"{champ.version if champ else 'none'}",
            )
            if champ is not None and champ.version == cand.version:
                decision = Decision(False, f"version {cand.version} is already the champion")
        else:
            decision = should_promote(cand, champ, config.promote)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for key, value in (
            (TAG_DECISION, "promoted" if decision.promote else "rejected"),
            (TAG_REASON, decision.reason[:MAX_TAG_VAL_LENGTH]),
            (TAG_AGAINST, "none" if champ is None else champ.version),
            (TAG_DECIDED_AT, now),
        ):
            client.set_model_version_tag(name, cand.version, key, value)
        if decision.promote:
            client.set_registered_model_alias(name, CHAMPION, cand.version)
            challenger_now = by_alias(client, name, CHALLENGER)
            if challenger_now is not None and str(challenger_now.version) == cand.version:
                client.delete_registered_model_alias(name, CHALLENGER)  # it is the champion now
        new_champion = cand.version if decision.promote else (champ.version if champ else None)
        return Promotion(
            task=task,
            model=name,
            promoted=decision.promote,
            reason=decision.reason,
            metric=metric,
            candidate_version=cand.version,
            candidate_value=cand.metrics.get(metric),
            previous_champion_version=None if champ is None else champ.version,
            champion_value=None if champ is None else champ.metrics.get(metric),
            champion_version=new_champion,
        )

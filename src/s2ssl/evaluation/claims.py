"""The papers' claims as pre-registered, three-valued tests, and the A/A control.

Each claim is a set of paired contrasts with a claimed direction ("> 0"), fixed before any
number is seen (:data:`RULES`, printed at the top of the report). A contrast **holds** when its
whole confidence interval is above 0, is **refuted** when the whole interval is below 0, and is
**inconclusive** otherwise. A claim holds when every contrast holds, is refuted when any is
refuted (:func:`s2ssl.stats.combine`).

* **Embedding Earth** (land cover, fine-tuned, mIoU): ``dense − random`` at the scarcest label
  fraction > 0; that gain minus the gain at the largest fraction > 0 (a four-arm contrast); the
  gain on the unseen region > 0 at each transfer fraction.
* **CSCL** (crop type, fine-tuned, mIoU): ``cscl − random`` > 0 at each fraction; the gain on
  boundary pixels minus the gain on interior pixels > 0 at each fraction.
* **SeCo** (the paper's ordering random < MoCo-v2 < MoCo-TP < SeCo): the adjacent contrasts
  ``moco − random``, ``moco_tp − moco``, ``seco − moco_tp`` at each in-domain fraction, on scene
  classification (linear probe, the paper's EuroSAT protocol; balanced accuracy) and on land
  cover (fine-tuned, mIoU); Holm's correction within each task's family.
* **A/A control**: ``random_b − random`` (random init against random init with independent
  seeds, through the same machinery) in every setting of every task, Holm-corrected as one
  family. It must be inconclusive; a verdict on it would be a false positive of the protocol.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from s2ssl.config import EvaluateConfig
from s2ssl.evaluation.comparisons import BASELINE, bootstrap, gain_label
from s2ssl.evaluation.records import Arm, ArmResults
from s2ssl.stats import (
    Estimate,
    Verdict,
    combine,
    holm,
    minimum_detectable_effect,
    verdict_from_interval,
)
from s2ssl.taskspec import task_spec

__all__ = ["RULES", "ClaimResult", "Contrast", "aa_control", "cscl", "embedding_earth", "seco"]

RULES: Final[dict[str, str]] = {
    "Embedding Earth": "land cover, fine-tuned, mIoU: (1) dense − random > 0 at the scarcest "
    "label fraction; (2) that gain − the gain at the largest fraction > 0; (3) dense − random > 0 "
    "on the unseen region. Holds iff all hold.",
    "CSCL": "crop type, fine-tuned, mIoU: (1) cscl − random > 0 at every label fraction; (2) "
    "boundary-pixel gain − interior-pixel gain > 0 at every fraction. Holds iff all hold.",
    "SeCo": "the order random < MoCo-v2 < MoCo-TP < SeCo: moco − random, moco_tp − moco, "
    "seco − moco_tp > 0 at every in-domain fraction, on scenes (linear probe, balanced accuracy) "
    "and on land cover (fine-tuned, mIoU); Holm-corrected within each task. Holds iff all hold.",
    "A/A control": "random_b − random (two random inits with independent seeds) in every "
    "setting of every task, Holm-corrected as one family: must be inconclusive everywhere.",
}
"""The rules, fixed before the numbers (the report prints them first)."""


@dataclass(frozen=True)
class Contrast:
    """One tested contrast of a claim."""

    label: str
    estimate: Estimate
    lo: float
    hi: float
    confidence: float
    """The level of ``[lo, hi]`` (Holm-adjusted where a family is corrected)."""
    verdict: Verdict
    mde: float


@dataclass(frozen=True)
class ClaimResult:
    """A claim's contrasts and its verdict (``None`` when it could not be evaluated)."""

    name: str
    rule: str
    contrasts: tuple[Contrast, ...]
    verdict: Verdict | None
    note: str = ""


Arms = Mapping[Arm, ArmResults]


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.6g} %"


def _fractions(arms: Arms, setting: str, protocol: str, *inits: str) -> list[float]:
    have = [
        {
            a.fraction
            for a in arms
            if a.setting == setting and a.protocol == protocol and a.init == i
        }
        for i in inits
    ]
    return sorted(set.intersection(*have)) if have else []


def _tested(label: str, estimate: Estimate, cfg: EvaluateConfig) -> Contrast:
    verdict = verdict_from_interval(estimate.lo, estimate.hi)
    return Contrast(
        label,
        estimate,
        estimate.lo,
        estimate.hi,
        estimate.confidence,
        verdict,
        minimum_detectable_effect(estimate, power=cfg.power),
    )


def _corrected(
    labels: Sequence[str], estimates: Sequence[Estimate], cfg: EvaluateConfig
) -> list[Contrast]:
    results = holm(list(estimates), alpha=1.0 - cfg.confidence)
    return [
        Contrast(
            label,
            e,
            h.lo,
            h.hi,
            h.adjusted_confidence,
            h.verdict,
            minimum_detectable_effect(e, power=cfg.power),
        )
        for label, e, h in zip(labels, estimates, results, strict=True)
    ]


def _result(name: str, contrasts: Sequence[Contrast], missing: str) -> ClaimResult:
    if not contrasts:
        return ClaimResult(name, RULES[name], (), None, f"not evaluated: {missing}")
    return ClaimResult(name, RULES[name], tuple(contrasts), combine(c.verdict for c in contrasts))


def _gain_arms(arms: Arms, arm: Arm, part: str = "all") -> list:
    return [arms[arm].parts[part], arms[arm.with_init(BASELINE)].parts[part]]


def embedding_earth(arms: Arms, cfg: EvaluateConfig) -> ClaimResult:
    """The Embedding Earth claim on land cover (see the module docstring)."""
    metric = task_spec("landcover").headline
    contrasts: list[Contrast] = []
    fractions = _fractions(arms, "in_domain", "finetune", "dense", BASELINE)
    if len(fractions) >= 2:
        low, high = fractions[0], fractions[-1]
        scarce = Arm("in_domain", "finetune", "dense", low)
        full = Arm("in_domain", "finetune", "dense", high)
        e = bootstrap(
            _gain_arms(arms, scarce), [1, -1], metric, cfg, gain_label("landcover", scarce)
        )
        contrasts.append(_tested(f"dense − random at {_pct(low)} labels", e, cfg))
        e = bootstrap(
            _gain_arms(arms, scarce) + _gain_arms(arms, full),
            [1, -1, -1, 1],
            metric,
            cfg,
            "ee.diff",
        )
        contrasts.append(_tested(f"gain at {_pct(low)} − gain at {_pct(high)}", e, cfg))
    for f in _fractions(arms, "transfer", "finetune", "dense", BASELINE):
        arm = Arm("transfer", "finetune", "dense", f)
        e = bootstrap(_gain_arms(arms, arm), [1, -1], metric, cfg, gain_label("landcover", arm))
        contrasts.append(_tested(f"dense − random on the unseen region, {_pct(f)}", e, cfg))
    return _result(
        "Embedding Earth", contrasts, "needs land-cover inits random and dense at two fractions"
    )


def cscl(arms: Arms, cfg: EvaluateConfig) -> ClaimResult:
    """The CSCL claim on crop type (see the module docstring)."""
    metric = task_spec("croptype").headline
    contrasts: list[Contrast] = []
    for f in _fractions(arms, "in_domain", "finetune", "cscl", BASELINE):
        arm = Arm("in_domain", "finetune", "cscl", f)
        e = bootstrap(_gain_arms(arms, arm), [1, -1], metric, cfg, gain_label("croptype", arm))
        contrasts.append(_tested(f"cscl − random at {_pct(f)} labels", e, cfg))
    for f in _fractions(arms, "in_domain", "finetune", "cscl", BASELINE):
        arm = Arm("in_domain", "finetune", "cscl", f)
        if "boundary" not in arms[arm].parts:
            continue
        four = _gain_arms(arms, arm, "boundary") + _gain_arms(arms, arm, "interior")
        e = bootstrap(four, [1, -1, -1, 1], metric, cfg, f"cscl.boundary.{f}")
        contrasts.append(_tested(f"boundary gain − interior gain at {_pct(f)}", e, cfg))
    return _result("CSCL", contrasts, "needs crop-type inits random and cscl")


SECO_ORDER: Final[tuple[str, ...]] = ("random", "moco", "moco_tp", "seco")
SECO_PROTOCOL: Final[dict[str, str]] = {"scene": "linear", "landcover": "finetune"}


def seco(arms_by_task: Mapping[str, Arms], cfg: EvaluateConfig) -> ClaimResult:
    """The SeCo ordering on scenes and land cover (see the module docstring)."""
    contrasts: list[Contrast] = []
    for task, protocol in SECO_PROTOCOL.items():
        arms = arms_by_task.get(task)
        if not arms:
            continue
        metric = task_spec(task).headline
        labels: list[str] = []
        estimates: list[Estimate] = []
        for f in _fractions(arms, "in_domain", protocol, *SECO_ORDER):
            for lower, upper in itertools.pairwise(SECO_ORDER):
                a = Arm("in_domain", protocol, upper, f)
                b = a.with_init(lower)
                estimates.append(
                    bootstrap(
                        [arms[a].parts["all"], arms[b].parts["all"]],
                        [1, -1],
                        metric,
                        cfg,
                        f"seco.{task}.{upper}-{lower}.{f}",
                    )
                )
                labels.append(f"{task} ({protocol}) {_pct(f)}: {upper} − {lower}")
        contrasts += _corrected(labels, estimates, cfg)
    return _result("SeCo", contrasts, _seco_missing(arms_by_task))


def _seco_missing(arms_by_task: Mapping[str, Arms]) -> str:
    """Why the SeCo claim has no contrast: per task it is defined on, what the runs lack."""
    found: list[str] = []
    for task, protocol in SECO_PROTOCOL.items():
        arms = arms_by_task.get(task)
        if not arms:
            found.append(f"no {task} runs")
            continue
        have = {a.init for a in arms if a.setting == "in_domain" and a.protocol == protocol}
        lacking = [i for i in SECO_ORDER if i not in have]
        found.append(
            f"{task} ({protocol}) lacks init {', '.join(lacking)}"
            if lacking
            else f"{task} ({protocol}) has no in-domain fraction run with all four inits"
        )
    on = " and ".join(f"{task} ({protocol})" for task, protocol in SECO_PROTOCOL.items())
    return f"defined on {on} with inits {', '.join(SECO_ORDER)}; here: {'; '.join(found)}"


def aa_control(arms_by_task: Mapping[str, Arms], cfg: EvaluateConfig) -> ClaimResult:
    """The A/A control: random_b against random everywhere (see the module docstring)."""
    labels: list[str] = []
    estimates: list[Estimate] = []
    for task, arms in arms_by_task.items():
        metric = task_spec(task).headline
        for arm in sorted(arms):
            if arm.init != "random_b" or arm.with_init(BASELINE) not in arms:
                continue
            estimates.append(
                bootstrap(_gain_arms(arms, arm), [1, -1], metric, cfg, gain_label(task, arm))
            )
            labels.append(f"{task} {arm.setting} {arm.protocol} {_pct(arm.fraction)}")
    contrasts = _corrected(labels, estimates, cfg) if estimates else []
    if not contrasts:
        return _result("A/A control", [], "needs the init random_b next to random")
    # two-sided: any verdict other than inconclusive is a detected difference
    detected = [c for c in contrasts if c.verdict != "inconclusive"]
    note = (
        "inconclusive everywhere, as it must be: the protocol called no difference between two "
        "random inits"
        if not detected
        else f"FALSE POSITIVE: a difference between two random inits was called in "
        f"{len(detected)} of {len(contrasts)} settings"
    )
    verdict: Verdict = "inconclusive" if not detected else detected[0].verdict
    return ClaimResult("A/A control", RULES["A/A control"], tuple(contrasts), verdict, note)

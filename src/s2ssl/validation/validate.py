"""The ``validate`` stage: profile every fetched dataset, check it, quarantine bad samples.

For each dataset: the profile table (:mod:`s2ssl.validation.profile`) goes through the
great-expectations suite (:mod:`s2ssl.validation.expectations`); samples failing a sample-level
expectation are quarantined with every reason, the rest get normalisation statistics
(:mod:`s2ssl.data.stats`) and become the validated dataset (:mod:`s2ssl.data.validated`, a view
of the raw store: nothing is copied or deleted). Reports for people go to ``reports_dir``:
``summary.json`` (DVC metrics), ``quarantine.csv``, ``band_stats.png`` and the Data Docs site
``datadocs/index.html``.

If any dataset is unusable (schema mismatch, too many failures, a split left empty, unreadable
store) the reports are still written, no validated output is replaced, and
:class:`ValidationFailedError` says why, so ``dvc repro`` stops before training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s2ssl.bands import missing_bands
from s2ssl.config import Params
from s2ssl.data.stats import NormStats, band_histograms, stats_from_histograms
from s2ssl.data.store import ShardedDataset, StoreError, open_dataset
from s2ssl.data.validated import write_validated
from s2ssl.io import atomic_dir, write_json_atomic, write_text_atomic
from s2ssl.progress import ProgressFactory, no_progress
from s2ssl.validation.expectations import SuiteOutcome, Validator
from s2ssl.validation.plots import band_stats_png
from s2ssl.validation.profile import band_names_of, label_arrays_of, profile_dataset


class ValidationFailedError(ValueError):
    """At least one dataset is unusable; the message lists every reason per dataset."""


@dataclass
class DatasetValidation:
    """One dataset's validation: its profile, outcome, quarantine and statistics."""

    name: str
    outcome: SuiteOutcome
    n_samples: int = 0
    profile: pd.DataFrame | None = None
    quarantine: pd.DataFrame = field(default_factory=lambda: _quarantine_frame([]))
    accepted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    norm_stats: NormStats | None = None
    store: ShardedDataset | None = None

    @property
    def usable(self) -> bool:
        """True when the dataset can go on to training."""
        return self.outcome.usable and self.norm_stats is not None


@dataclass(frozen=True)
class ValidateResult:
    """What ``validate`` wrote and found."""

    datasets: dict[str, Path]
    reports: list[Path]
    summary: dict[str, Any]
    validations: list[DatasetValidation]


def _quarantine_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["position", "sample_id", "split", "reasons"])


def _validate_one(
    name: str,
    raw_path: Path,
    params: Params,
    validator: Validator,
    progress: ProgressFactory,
) -> DatasetValidation:
    try:
        store = open_dataset(raw_path)
    except StoreError as e:
        outcome = SuiteOutcome(dataset=name, schema_errors=[f"cannot read the dataset: {e}"])
        return DatasetValidation(name=name, outcome=outcome)
    absent = missing_bands(band_names_of(store), params.band_names)
    if absent:
        outcome = SuiteOutcome(dataset=name, schema_errors=[missing_bands_message(store, absent)])
        return DatasetValidation(name=name, outcome=outcome, n_samples=len(store), store=store)
    cfg = params.fetch
    try:
        profile = profile_dataset(
            store, cfg.start_date, cfg.end_date, progress=progress, description=f"profile {name}"
        )
    except ValueError as e:
        outcome = SuiteOutcome(dataset=name, schema_errors=[str(e)])
        return DatasetValidation(name=name, outcome=outcome, n_samples=len(store), store=store)
    splits = sorted(str(s) for s in profile["split"].dropna().unique())
    outcome = validator.validate(
        name,
        profile,
        label_arrays=label_arrays_of(store),
        n_dates=store.specs["image"].shape[0],
        required_splits=splits,
    )
    rows = [
        {
            "position": pos,
            "sample_id": profile.at[pos, "sample_id"],
            "split": profile.at[pos, "split"],
            "reasons": reasons,
        }
        for pos, reasons in sorted(outcome.sample_failures.items())
    ]
    result = DatasetValidation(
        name=name,
        outcome=outcome,
        n_samples=len(store),
        profile=profile,
        quarantine=_quarantine_frame(rows),
        store=store,
    )
    if not outcome.usable:
        return result
    bad = np.fromiter(outcome.sample_failures, np.int64, len(outcome.sample_failures))
    result.accepted = np.setdiff1d(np.arange(len(store), dtype=np.int64), bad)
    hist = band_histograms(
        store.subset(result.accepted), progress=progress, description=f"band statistics {name}"
    )
    bands = band_names_of(store)
    try:
        result.norm_stats = stats_from_histograms(hist, bands, params.validation.quantiles)
    except ValueError as e:
        outcome.dataset_errors.append(str(e))
    return result


def missing_bands_message(store: ShardedDataset, absent: Sequence[str]) -> str:
    """Why a dataset lacking some of the configured ``bands`` cannot be used, and the fixes."""
    held = band_names_of(store)
    return (
        f"the dataset lacks band(s) {', '.join(absent)} of `bands` in params.yaml (it holds "
        f"{', '.join(held) or 'no named band'}): set `bands` to bands it holds (a preset such as "
        "`bands: l2a` / `bands: pastis`, or a list such as `bands: [B02, B03, B04, B08]`), or "
        "fetch data that holds them"
    )


def summarise(validations: Sequence[DatasetValidation]) -> dict[str, Any]:
    """Flat metrics for ``dvc metrics show``: counts, pass fraction, pass rate per expectation."""
    out: dict[str, Any] = {}
    for v in validations:
        p = v.name
        out[f"{p}.usable"] = int(v.usable)
        out[f"{p}.n_samples"] = v.n_samples
        out[f"{p}.n_quarantined"] = len(v.quarantine)
        out[f"{p}.n_accepted"] = len(v.accepted)
        out[f"{p}.pass_fraction"] = round(
            (v.n_samples - len(v.quarantine)) / v.n_samples if v.n_samples else 0.0, 5
        )
        for c in v.outcome.checks:
            if c.level == "sample":
                out[f"{p}.pass_rate.{c.check}"] = round(c.pass_rate, 5)
    return out


def top_reasons(quarantine: pd.DataFrame, n: int = 5) -> list[tuple[str, int]]:
    """The ``n`` most frequent failed checks in a quarantine table, with their counts."""
    reasons = quarantine["reasons"].explode().dropna().astype(str)
    counts = reasons.str.extract(r"^(\w+)")[0].value_counts().head(n)
    return [(str(k), int(v)) for k, v in counts.items()]


def failure_message(validations: Sequence[DatasetValidation]) -> str:
    """A readable account of why the unusable datasets are unusable."""
    lines = ["validation failed: the following dataset(s) are unusable"]
    for v in validations:
        if v.usable:
            continue
        lines.append(f"  {v.name}:")
        for err in [*v.outcome.schema_errors, *v.outcome.dataset_errors]:
            lines.append(f"    - {err}")
        if len(v.quarantine):
            top = ", ".join(f"{k} ({n})" for k, n in top_reasons(v.quarantine))
            lines.append(f"    - {len(v.quarantine)} of {v.n_samples} samples failed; most: {top}")
    return "\n".join(lines)


def _quarantine_csv(validations: Sequence[DatasetValidation]) -> str:
    frames = [v.quarantine.assign(dataset=v.name) for v in validations if len(v.quarantine)]
    if not frames:
        frame = _quarantine_frame([]).assign(dataset=[])
    else:
        frame = pd.concat(frames, ignore_index=True)
    frame = frame.assign(reasons=frame["reasons"].map("; ".join))
    return frame[["dataset", "position", "sample_id", "split", "reasons"]].to_csv(index=False)


def validate(
    params: Params,
    raw_dir: str | Path,
    out_dir: str | Path,
    reports_dir: str | Path,
    *,
    datasets: Sequence[str] | None = None,
    progress: ProgressFactory = no_progress,
) -> ValidateResult:
    """Validate ``datasets`` (default: every dataset ``fetch`` produces) under ``raw_dir``."""

    raw_dir, out_dir, reports_dir = Path(raw_dir), Path(out_dir), Path(reports_dir)
    names = list(datasets) if datasets is not None else list(params.fetch.datasets)
    if not names:
        raise ValueError("no dataset to validate")
    validations: list[DatasetValidation] = []
    with atomic_dir(reports_dir / "datadocs") as docs:
        validator = Validator(params.validation, params.band_names, docs_dir=docs)
        for name in names:
            validations.append(_validate_one(name, raw_dir / name, params, validator, progress))

    summary = summarise(validations)
    reports = [
        write_json_atomic(reports_dir / "summary.json", summary),
        write_text_atomic(reports_dir / "quarantine.csv", _quarantine_csv(validations)),
        band_stats_png(
            {v.name: v.norm_stats for v in validations if v.norm_stats is not None},
            reports_dir / "band_stats.png",
        ),
        reports_dir / "datadocs" / "index.html",
    ]
    if not all(v.usable for v in validations):
        raise ValidationFailedError(failure_message(validations))

    written: dict[str, Path] = {}
    for v in validations:
        if v.store is None or v.profile is None or v.norm_stats is None:  # unreachable if usable
            raise ValidationFailedError(failure_message(validations))
        written[v.name] = write_validated(
            out_dir / v.name,
            v.store,
            v.accepted,
            v.quarantine,
            v.profile,
            v.norm_stats,
            {
                k.removeprefix(f"{v.name}."): val
                for k, val in summary.items()
                if k.startswith(v.name)
            },
        )
    return ValidateResult(
        datasets=written, reports=reports, summary=summary, validations=validations
    )

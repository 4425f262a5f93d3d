"""The great-expectations suite over the profile table (the only importer of great_expectations).

Three levels of expectation, tagged in each expectation's ``meta``:

- ``schema``: band count and order, image dtype, consistent array shapes, required index columns.
  Any failure makes the whole dataset unusable (it would fail for every sample).
- ``sample``: NaNs, nodata, DN range after the offset, cloud cover, georeference, dates, label
  values and coverage, unique ids. A sample failing one is quarantined with every reason.
- ``dataset``: run after quarantine on the pass flags: the pass fraction reaches
  ``min_pass_fraction`` and no split present in the raw data is left empty.

Everything runs in an ephemeral context (no files, no analytics, no network, progress bars off);
Data Docs (HTML for a person to open) are rendered into a directory when one is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from s2ssl.config import ValidateConfig
from s2ssl.validation.profile import bands_ok

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.data_context.types.base import ProgressBarsConfig

Level = Literal["schema", "sample", "dataset"]
DOCS_SITE = "s2ssl"
_DETAIL_COLUMNS = ("dn_min_band", "dn_max_band")


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome on one dataset."""

    check: str
    level: Level
    rule: str
    success: bool
    element_count: int
    unexpected_count: int
    observed: Any = None

    @property
    def pass_rate(self) -> float:
        """Share of elements meeting the expectation (1.0 or 0.0 for aggregate expectations)."""
        if self.element_count:
            return 1.0 - self.unexpected_count / self.element_count
        return 1.0 if self.success else 0.0


@dataclass
class SuiteOutcome:
    """What the suite found in one dataset's profile table."""

    dataset: str
    checks: list[CheckResult] = field(default_factory=list)
    sample_failures: dict[int, list[str]] = field(default_factory=dict)
    """position -> every failed sample-level expectation, as readable reasons."""
    schema_errors: list[str] = field(default_factory=list)
    dataset_errors: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """False when the schema is wrong or a dataset-level expectation failed."""
        return not self.schema_errors and not self.dataset_errors


@dataclass(frozen=True)
class _Spec:
    check: str
    level: Level
    rule: str
    expectation: Any


def _meta(check: str, level: Level, rule: str) -> dict[str, str]:
    return {"check": check, "level": level, "rule": rule}


def _specs(
    cfg: ValidateConfig, required_bands: Sequence[str], label_arrays: Sequence[str], n_dates: int
) -> list[_Spec]:
    """The schema- and sample-level expectations of one dataset."""
    specs: list[tuple[str, Level, str, type, dict[str, Any]]] = [
        (
            "band_names_match",
            "schema",
            "(as many band names as image bands)",
            gxe.ExpectColumnValuesToBeInSet,
            _true(),
        ),
        (
            "bands_ok",
            "schema",
            f"(Sentinel-2 band order, including {','.join(required_bands)})",
            gxe.ExpectColumnValuesToBeInSet,
            _true(),
        ),
        (
            "image_dtype",
            "schema",
            f"in {list(cfg.allowed_dtypes)}",
            gxe.ExpectColumnValuesToBeInSet,
            {"value_set": list(cfg.allowed_dtypes)},
        ),
        ("shapes_consistent", "schema", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
        ("index_columns_ok", "schema", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
        ("sample_id", "sample", "is unique", gxe.ExpectColumnValuesToBeUnique, {}),
        (
            "nan_fraction",
            "sample",
            f"<= {cfg.max_nan_fraction}",
            gxe.ExpectColumnValuesToBeBetween,
            {"min_value": 0.0, "max_value": cfg.max_nan_fraction},
        ),
        (
            "nodata_fraction",
            "sample",
            f"<= {cfg.max_nodata_fraction}",
            gxe.ExpectColumnValuesToBeBetween,
            {"min_value": 0.0, "max_value": cfg.max_nodata_fraction},
        ),
        (
            "dn_min",
            "sample",
            f">= {cfg.dn_range[0]}",
            gxe.ExpectColumnValuesToBeBetween,
            {"min_value": cfg.dn_range[0]},
        ),
        (
            "dn_max",
            "sample",
            f"<= {cfg.dn_range[1]}",
            gxe.ExpectColumnValuesToBeBetween,
            {"max_value": cfg.dn_range[1]},
        ),
        (
            "cloud_fraction",
            "sample",
            f"<= {cfg.max_cloud_fraction}",
            gxe.ExpectColumnValuesToBeBetween,
            {"min_value": 0.0, "max_value": cfg.max_cloud_fraction},
        ),
        ("crs_present", "sample", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
        ("transform_present", "sample", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
        (
            "dates_match_images",
            "sample",
            f"(expected {n_dates} dates)",
            gxe.ExpectColumnValuesToBeInSet,
            _true(),
        ),
        ("dates_in_range", "sample", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
        ("dates_ordered", "sample", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
        ("dn_offset_ok", "sample", "is true", gxe.ExpectColumnValuesToBeInSet, _true()),
    ]
    for lab in label_arrays:
        specs.append(
            (
                f"{lab}_unknown",
                "sample",
                "== 0",
                gxe.ExpectColumnValuesToBeBetween,
                {"min_value": 0, "max_value": 0},
            )
        )
        specs.append(
            (
                f"{lab}_coverage",
                "sample",
                f">= {cfg.min_label_coverage}",
                gxe.ExpectColumnValuesToBeBetween,
                {"min_value": cfg.min_label_coverage},
            )
        )
    return [
        _Spec(check, level, rule, cls(column=check, meta=_meta(check, level, rule), **kw))
        for check, level, rule, cls, kw in specs
    ]


def _true() -> dict[str, Any]:
    return {"value_set": [True]}


class Validator:
    """Runs the suites of several datasets in one ephemeral context (one Data Docs site)."""

    def __init__(
        self,
        cfg: ValidateConfig,
        required_bands: Sequence[str],
        docs_dir: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.required_bands = tuple(required_bands)
        """The bands every dataset must hold (``params.band_names``)."""
        self._ctx = gx.get_context(mode="ephemeral")
        self._ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self._ctx.data_sources.add_pandas("profiles")
        self._actions: list[Any] = []
        self.docs_dir = Path(docs_dir).absolute() if docs_dir is not None else None
        if self.docs_dir is not None:
            self._ctx.add_data_docs_site(
                site_name=DOCS_SITE,
                site_config={
                    "class_name": "SiteBuilder",
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(self.docs_dir),
                    },
                },
            )
            self._actions = [UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])]

    def _run(
        self, name: str, specs: Sequence[_Spec], frame: pd.DataFrame, index_columns: list[str]
    ) -> list[tuple[_Spec, Any]]:
        asset = self._source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("all")
        suite = self._ctx.suites.add(gx.ExpectationSuite(name=name))
        for spec in specs:
            suite.add_expectation(spec.expectation)
        definition = self._ctx.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        checkpoint = self._ctx.checkpoints.add(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=self._actions,
                result_format={
                    "result_format": "COMPLETE",
                    "unexpected_index_column_names": index_columns,
                },
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        (suite_result,) = result.run_results.values()
        by_check = {s.check: s for s in specs}
        out = []
        for r in suite_result.results:
            check = r.expectation_config.meta["check"]
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"great-expectations could not evaluate {check!r} on {name}: "
                    f"{r.exception_info.get('exception_message')}"
                )
            out.append((by_check[check], r))
        return out

    def validate(
        self,
        dataset: str,
        profile: pd.DataFrame,
        *,
        label_arrays: Sequence[str],
        n_dates: int,
        required_splits: Sequence[str],
    ) -> SuiteOutcome:
        """Validate one dataset's profile table; see the module docstring for the levels."""
        outcome = SuiteOutcome(dataset=dataset)
        if profile.empty:
            outcome.dataset_errors.append("the dataset has no samples")
            return outcome
        specs = _specs(self.cfg, self.required_bands, label_arrays, n_dates)
        detail = [c for c in _DETAIL_COLUMNS if c in profile.columns]
        frame = profile.reset_index(drop=True)
        frame["bands_ok"] = [bands_ok(b, self.required_bands) for b in frame["band_names"]]
        for spec, r in self._run(f"{dataset}.samples", specs, frame, ["position", *detail]):
            res = r.result or {}
            unexpected = res.get("unexpected_index_list") or []
            outcome.checks.append(
                CheckResult(
                    check=spec.check,
                    level=spec.level,
                    rule=spec.rule,
                    success=bool(r.success),
                    element_count=int(res.get("element_count", len(frame))),
                    unexpected_count=int(res.get("unexpected_count", 0)),
                )
            )
            if r.success:
                continue
            if spec.level == "schema":
                outcome.schema_errors.append(_schema_error(spec.check, spec.rule, frame))
                continue
            for u in unexpected:
                outcome.sample_failures.setdefault(int(u["position"]), []).append(_reason(spec, u))
        if outcome.schema_errors:
            return outcome

        passed = ~frame["position"].isin(list(outcome.sample_failures))
        flags = pd.DataFrame(
            {
                "position": frame["position"],
                "passed": passed.astype(float),
                "accepted_split": frame["split"].where(passed, None),
            }
        )
        min_pass = self.cfg.min_pass_fraction
        dataset_specs = [
            _Spec(
                "pass_fraction",
                "dataset",
                f">= {min_pass}",
                gxe.ExpectColumnMeanToBeBetween(
                    column="passed",
                    min_value=min_pass,
                    meta=_meta("pass_fraction", "dataset", f">= {min_pass}"),
                ),
            ),
            _Spec(
                "splits_non_empty",
                "dataset",
                f"contains {sorted(required_splits)}",
                gxe.ExpectColumnDistinctValuesToContainSet(
                    column="accepted_split",
                    value_set=sorted(required_splits),
                    meta=_meta("splits_non_empty", "dataset", "every split keeps samples"),
                ),
            ),
        ]
        for spec, r in self._run(f"{dataset}.dataset", dataset_specs, flags, ["position"]):
            res = r.result or {}
            observed = res.get("observed_value")
            outcome.checks.append(
                CheckResult(
                    check=spec.check,
                    level="dataset",
                    rule=spec.rule,
                    success=bool(r.success),
                    element_count=0,
                    unexpected_count=0,
                    observed=_plain(observed),
                )
            )
            if r.success:
                continue
            if spec.check == "pass_fraction":
                outcome.dataset_errors.append(
                    f"only {float(observed):.1%} of {len(frame)} samples pass "
                    f"(minimum {min_pass:.0%}): too many bad samples"
                )
            else:
                missing = sorted(set(required_splits) - set(flags["accepted_split"].dropna()))
                outcome.dataset_errors.append(
                    f"split(s) {missing} would be left empty after quarantine"
                )
        return outcome


def _schema_error(check: str, rule: str, frame: pd.DataFrame) -> str:
    first = frame.iloc[0]
    if check == "band_names_match":
        return (
            f"the images have {first['n_bands']} bands but the dataset names "
            f"{len([b for b in str(first['band_names']).split(',') if b])} "
            f"({first['band_names'] or 'none'})"
        )
    if check == "bands_ok":
        return f"bands {first['band_names'] or '(none)'} are not valid {rule}"
    got = sorted({str(v) for v in frame[check]})
    return f"{check}: expected {rule}, got {', '.join(got)}"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _reason(spec: _Spec, unexpected: dict[str, Any]) -> str:
    value = _plain(unexpected.get(spec.check))
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    where = ""
    if spec.check in ("dn_min", "dn_max"):
        where = f" in {unexpected.get(f'{spec.check}_band')}"
    if isinstance(value, bool):
        return (
            f"{spec.check}: false" if spec.rule == "is true" else f"{spec.check}: false {spec.rule}"
        )
    return f"{spec.check} {spec.rule}: got {text}{where}"

"""The ``validate`` section: thresholds of the data-quality suite."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from s2ssl.config.common import Fraction, StrictModel

__all__ = ["ValidateConfig"]


class ValidateConfig(StrictModel):
    """``validate`` stage: thresholds of the great-expectations suite.

    A sample failing a sample-level expectation is quarantined; a dataset whose pass fraction
    drops below ``min_pass_fraction`` (or whose schema is wrong, or a split empties) is unusable.
    Every dataset must hold the top-level ``bands`` (checked by name, whatever else it holds).
    """

    allowed_dtypes: list[Literal["uint16", "float32"]] = Field(min_length=1)
    max_nan_fraction: Fraction
    max_nodata_fraction: Fraction
    dn_range: tuple[int, int]
    max_cloud_fraction: Fraction
    min_label_coverage: Fraction
    min_pass_fraction: Fraction
    quantiles: tuple[float, float]

    @model_validator(mode="after")
    def _ranges(self) -> ValidateConfig:
        lo, hi = self.dn_range
        if not -1000 <= lo < hi <= 65535:
            raise ValueError(
                f"dn_range must be [low, high] with -1000 <= low < high <= 65535, got {[lo, hi]}"
            )
        q_lo, q_hi = self.quantiles
        if not 0.0 <= q_lo < q_hi <= 1.0:
            raise ValueError(
                f"quantiles must be [low, high] in [0, 1], low < high, got {[q_lo, q_hi]}"
            )
        return self

"""The ``evaluate`` section: what the report draws."""

from __future__ import annotations

from pydantic import Field

from s2ssl.config.common import PositiveInt, StrictModel

__all__ = ["EvaluateConfig"]


class EvaluateConfig(StrictModel):
    """``evaluate`` stage: which figures the report draws."""

    strip_samples: PositiveInt = Field(description="test images in each strip PNG")

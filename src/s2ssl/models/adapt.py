"""Rebuild the first convolution of a published encoder for other bands (``adapt_bands``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import torch

from s2ssl.models.published import LoadReport, PublishedEncoder
from s2ssl.models.resnet import ResNetEncoder

__all__ = ["adapt_first_conv"]


def adapt_first_conv(
    loaded: PublishedEncoder,
    bands: Sequence[str],
    fill_mean: Mapping[str, float],
    fill_std: Mapping[str, float],
) -> PublishedEncoder:
    """The encoder with its first convolution rebuilt for ``bands``.

    Rule: a band the checkpoint has keeps its filter (copied by name); a new band's filter is
    the mean of the kept bands' filters; then the whole weight is scaled by
    ``old channel count / new channel count`` (timm's ``adapt_input_conv`` repeats the RGB filters
    and scales by ``3 / in_chans`` so the summed response stays comparable). Kept bands keep
    their standardisation; a new band takes ``fill_mean`` / ``fill_std`` (the downstream
    training data's statistics).

    Raises:
        ValueError: ``bands`` shares no band with the checkpoint, or lacks fill statistics.
    """
    old = loaded.bands
    kept = [b for b in bands if b in old]
    if not kept:
        raise ValueError(
            f"cannot adapt {list(old)} to {list(bands)}: no band in common, nothing to copy"
        )
    new = [b for b in bands if b not in old]
    absent = [b for b in new if b not in fill_mean or b not in fill_std]
    if absent:
        raise ValueError(f"no standardisation statistics for the new bands {absent}")
    weight = loaded.encoder.conv1.weight.detach()
    mean_filter = weight[:, [old.index(b) for b in kept]].mean(dim=1)
    columns = [weight[:, old.index(b)] if b in old else mean_filter for b in bands]
    adapted = torch.stack(columns, dim=1) * (len(old) / len(bands))
    encoder = ResNetEncoder(loaded.encoder.depth, len(bands))
    state = loaded.encoder.state_dict()
    state["conv1.weight"] = adapted
    encoder.load_state_dict(state, strict=True)
    pos = {b: i for i, b in enumerate(old)}
    mean = tuple(loaded.mean[pos[b]] if b in pos else float(fill_mean[b]) for b in bands)
    std = tuple(loaded.std[pos[b]] if b in pos else float(fill_std[b]) for b in bands)
    detail = {
        "from": list(old),
        "to": list(bands),
        "kept": kept,
        "dropped": [b for b in old if b not in bands],
        "new": new,
        "rule": "kept filters copied by name, new = mean of kept filters, all x old/new count",
        "scale": len(old) / len(bands),
    }
    report = LoadReport(**{**asdict(loaded.report), "bands": tuple(bands), "adapted": detail})
    return PublishedEncoder(encoder.train(), tuple(bands), mean, std, report)

"""Resampling through a view geometry: identity, nearest labels and fill outside the source."""

from __future__ import annotations

import torch

from s2ssl.ssl.geometry import ViewGeometry, sample_view_geometry
from s2ssl.ssl.resample import apply_geometry, apply_geometry_labels, sample_at

OUT = (12, 12)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_whole_image_without_flip_or_rotation_is_the_identity():
    x = torch.randn(3, 4, *OUT, generator=gen(1))
    geom = sample_view_geometry(3, OUT, OUT, scale=(1, 1), ratio=(1, 1), flip=False, rot90=False)
    torch.testing.assert_close(geom.matrix, ViewGeometry.identity(3, OUT).matrix)
    torch.testing.assert_close(apply_geometry(x, geom), x, atol=1e-5, rtol=0)
    ys, xs = torch.meshgrid(torch.arange(OUT[0]), torch.arange(OUT[1]), indexing="ij")
    centres = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2).float().expand(3, -1, -1) + 0.5
    read = sample_at(x, centres)  # [N, H*W, C]
    torch.testing.assert_close(read, x.flatten(2).transpose(1, 2), atol=1e-5, rtol=0)


def test_nearest_labels_on_a_2x2_flip_and_fill_outside():
    labels = torch.tensor([[[1, 2], [3, 4]]], dtype=torch.int32)
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    flip = ViewGeometry.from_boxes(box, (2, 2), (2, 2), flip=torch.tensor([True]))
    assert torch.equal(apply_geometry_labels(labels, flip)[0], torch.tensor([[2, 1], [4, 3]]).int())
    # a box twice as wide as the source: its right half lies outside and takes `fill`
    wide = ViewGeometry.from_boxes(torch.tensor([[0.0, 0.0, 4.0, 2.0]]), (2, 2), (2, 4))
    out = apply_geometry_labels(labels, wide, fill=-1)
    assert torch.equal(out[0], torch.tensor([[1, 2, -1, -1], [3, 4, -1, -1]]).int())

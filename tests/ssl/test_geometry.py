"""View geometry: hand-checked flips and quarter turns, crop bounds, argument errors."""

from __future__ import annotations

import pytest
import torch

from s2ssl.ssl.geometry import ViewGeometry, sample_view_geometry
from s2ssl.ssl.resample import apply_geometry, apply_geometry_labels

SRC = (20, 28)  # (height, width), deliberately not square
OUT = (12, 12)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


IMAGE_3X3 = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
FLIPPED_3X3 = [[2, 1, 0], [5, 4, 3], [8, 7, 6]]
ROT90_3X3 = [[2, 5, 8], [1, 4, 7], [0, 3, 6]]  # one quarter turn counter-clockwise
FLIP_THEN_ROT90_3X3 = [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


@pytest.mark.parametrize(
    ("flip", "turns", "expected"),
    [
        (True, 0, FLIPPED_3X3),
        (False, 1, ROT90_3X3),
        (True, 1, FLIP_THEN_ROT90_3X3),
        (False, 2, [row[::-1] for row in IMAGE_3X3[::-1]]),
    ],
)
def test_flip_and_rot90_match_hand_written_arrays(flip, turns, expected):
    full = torch.tensor([[0.0, 0.0, 3.0, 3.0]])
    geom = ViewGeometry.from_boxes(
        full, (3, 3), (3, 3), flip=torch.tensor([flip]), rot90=torch.tensor([turns])
    )
    want = torch.tensor(expected)
    image = torch.tensor(IMAGE_3X3)
    for mode in ("bilinear", "nearest"):
        out = apply_geometry(image[None, None].float(), geom, mode=mode)
        torch.testing.assert_close(out[0, 0], want.float(), atol=1e-5, rtol=0)
    for dtype in (torch.int64, torch.uint8):
        labels = apply_geometry_labels(image[None].to(dtype), geom)
        assert labels.dtype == dtype
        assert torch.equal(labels[0], want.to(dtype))
    # also agrees with torch's own flip / rot90
    ref = torch.rot90(torch.flip(image, dims=[-1]) if flip else image, turns, dims=(-2, -1))
    assert torch.equal(ref, want)


def test_crops_respect_scale_bounds_stay_inside_and_are_reproducible():
    scale = (0.3, 0.6)
    geom = sample_view_geometry(256, SRC, OUT, scale=scale, generator=gen(3))
    frac = geom.source_area() / (SRC[0] * SRC[1])
    assert (frac >= scale[0] - 1e-5).all() and (frac <= scale[1] + 1e-5).all()
    corners = geom.source_corners()
    assert (corners >= -1e-4).all()
    assert (corners[..., 0] <= SRC[1] + 1e-4).all() and (corners[..., 1] <= SRC[0] + 1e-4).all()
    # aspect ratio of the source box within (3/4, 4/3)
    extent = corners.amax(dim=1) - corners.amin(dim=1)
    box_ratio = extent[:, 0] / extent[:, 1]
    rotated = geom.matrix[:, 0, 0].abs() < 1e-6  # quarter turns swap the box's axes in `extent`
    assert not rotated.all() and rotated.any()
    assert (box_ratio >= 3 / 4 - 1e-4).all() and (box_ratio <= 4 / 3 + 1e-4).all()

    # a strip source: large crops of ratio <= 4/3 cannot fit, the fallback keeps area and bounds
    strip = sample_view_geometry(256, (8, 32), OUT, scale=(0.5, 1.0), generator=gen(3))
    frac = strip.source_area() / (8 * 32)
    assert (frac >= 0.5 - 1e-5).all() and (frac <= 1.0 + 1e-5).all()
    corners = strip.source_corners()
    assert (corners >= -1e-4).all()
    assert (corners[..., 0] <= 32 + 1e-4).all() and (corners[..., 1] <= 8 + 1e-4).all()

    same = sample_view_geometry(256, SRC, OUT, scale=scale, generator=gen(3))
    other = sample_view_geometry(256, SRC, OUT, scale=scale, generator=gen(4))
    assert torch.equal(geom.matrix, same.matrix)
    assert not torch.allclose(geom.matrix, other.matrix)


def test_geometry_argument_errors():
    with pytest.raises(ValueError, match="square"):
        sample_view_geometry(2, SRC, (8, 12), rot90=True)
    with pytest.raises(ValueError, match="scale"):
        sample_view_geometry(2, SRC, OUT, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="ratio"):
        sample_view_geometry(2, SRC, OUT, ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"\[N, 2, 3\]"):
        ViewGeometry(torch.zeros(2, 3, 3), OUT, SRC)
    geom = sample_view_geometry(2, SRC, OUT, generator=gen())
    with pytest.raises(ValueError, match="spatial size"):
        apply_geometry(torch.zeros(2, 1, *OUT), geom)
    with pytest.raises(ValueError, match="samples"):
        apply_geometry(torch.zeros(3, 1, *SRC), geom)
    with pytest.raises(ValueError, match="integer"):
        apply_geometry_labels(torch.zeros(2, *SRC), geom)

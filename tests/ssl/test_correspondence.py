"""Exact correspondence between views: coordinate ramps, disjoint and rotated views."""

from __future__ import annotations

import torch

from s2ssl.ssl.correspondence import sample_correspondences
from s2ssl.ssl.geometry import ViewGeometry, sample_view_geometry
from s2ssl.ssl.resample import apply_geometry, sample_at

SRC = (20, 28)  # (height, width), deliberately not square
OUT = (12, 12)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def coordinate_ramp(size: tuple[int, int], pad: int = 0) -> torch.Tensor:
    """[1, 2, H + 2 pad, W + 2 pad]: channel 0 = x, channel 1 = y of each pixel centre, in the
    coordinates of the unpadded image (pixel centres at i + 0.5)."""
    h, w = size
    ys = torch.arange(h + 2 * pad, dtype=torch.float32) + 0.5 - pad
    xs = torch.arange(w + 2 * pad, dtype=torch.float32) + 0.5 - pad
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy])[None]


def pad_geometry(n: int, size: tuple[int, int], pad: int) -> ViewGeometry:
    """Geometry reading an image padded by ``pad`` px as the unpadded image (a translation)."""
    h, w = size
    boxes = torch.tensor([[pad, pad, pad + w, pad + h]], dtype=torch.float32).expand(n, 4)
    return ViewGeometry.from_boxes(boxes, (h + 2 * pad, w + 2 * pad), size)


def test_correspondence_is_exact_on_a_coordinate_ramp():
    n, pad = 48, 2
    g = gen(7)
    g1 = sample_view_geometry(n, SRC, OUT, generator=g)
    g2 = sample_view_geometry(n, SRC, OUT, generator=g)
    # the draws exercise flips (negative determinant) and quarter turns (off-diagonal terms)
    det = torch.linalg.det(g1.matrix[:, :, :2])
    assert (det < 0).any() and (det > 0).any()
    assert (g1.matrix[:, 0, 1].abs() > 0).any() and (g1.matrix[:, 0, 0].abs() > 0).any()

    # Bilinear reads within half a pixel of the source edge are clamped (border padding), so the
    # ramp is extended by `pad` pixels: every read then interpolates the linear ramp exactly.
    ramp = coordinate_ramp(SRC, pad).expand(n, -1, -1, -1)
    to_padded = pad_geometry(n, SRC, pad)
    view1 = apply_geometry(ramp, to_padded.compose(g1))
    view2 = apply_geometry(ramp, to_padded.compose(g2))

    pts1, pts2, valid = sample_correspondences(g1, g2, 64, generator=g)
    assert pts1.shape == pts2.shape == (n, 64, 2) and valid.shape == (n, 64)
    assert valid.float().mean() > 0.5  # most pairs of large crops of one image overlap

    src1 = g1.to_source(pts1)
    src2 = g2.to_source(pts2)
    torch.testing.assert_close(src1[valid], src2[valid], atol=1e-4, rtol=0)
    read1 = sample_at(view1, pts1)
    read2 = sample_at(view2, pts2)
    torch.testing.assert_close(read1[valid], src1[valid], atol=1e-4, rtol=0)
    torch.testing.assert_close(read2[valid], src1[valid], atol=1e-4, rtol=0)
    # points stay `margin` (0.5 px) inside both views, and inside the source
    for pts in (pts1, pts2):
        assert (pts[valid] >= 0.5 - 1e-3).all() and (pts[valid] <= OUT[0] - 0.5 + 1e-3).all()
    assert (src1[valid] >= 0).all()
    assert (src1[valid][:, 0] <= SRC[1]).all() and (src1[valid][:, 1] <= SRC[0]).all()
    # from_source inverts to_source
    torch.testing.assert_close(g1.from_source(src1), pts1, atol=1e-4, rtol=0)


def test_disjoint_views_have_no_valid_correspondence():
    # view 1 reads the left 8 columns, view 2 the right 8 (by hand: scale 1, translation)
    m1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    m2 = torch.tensor([[1.0, 0.0, 20.0], [0.0, 1.0, 0.0]])
    g1 = ViewGeometry(m1.expand(2, 2, 3), (8, 8), SRC)
    g2 = ViewGeometry(m2.expand(2, 2, 3), (8, 8), SRC)
    pts1, pts2, valid = sample_correspondences(g1, g2, 16, generator=gen())
    assert not valid.any()
    assert torch.isfinite(pts1).all() and torch.isfinite(pts2).all()
    # views sharing one source column: nothing is 0.5 px inside both; sharing two columns: fine
    g2_touch = ViewGeometry(torch.tensor([[1.0, 0.0, 7.0], [0.0, 1.0, 0.0]])[None], (8, 8), SRC)
    _, _, valid = sample_correspondences(_first(g1), g2_touch, 8, gen())
    assert not valid.any()
    g2_two = ViewGeometry(torch.tensor([[1.0, 0.0, 6.0], [0.0, 1.0, 0.0]])[None], (8, 8), SRC)
    p1, p2, valid = sample_correspondences(_first(g1), g2_two, 8, gen())
    assert valid.all()
    torch.testing.assert_close(p1[..., 0], p2[..., 0] + 6.0, atol=1e-5, rtol=0)


def test_rotated_view_correspondences_lie_inside_both_views():
    # a general affine view (30° rotation) needs the rejection step: the bounding box of the
    # overlap is larger than the overlap
    g1 = ViewGeometry.from_boxes(torch.tensor([[4.0, 2.0, 16.0, 14.0]]), SRC, OUT)
    angle = torch.tensor(torch.pi / 6)
    cos, sin = torch.cos(angle).item(), torch.sin(angle).item()
    centre_out, centre_src = (6.0, 6.0), (14.0, 10.0)
    shift_x = centre_src[0] - cos * centre_out[0] + sin * centre_out[1]
    shift_y = centre_src[1] - sin * centre_out[0] - cos * centre_out[1]
    matrix = torch.tensor([[[cos, -sin, shift_x], [sin, cos, shift_y]]])
    g2 = ViewGeometry(matrix, OUT, SRC)
    pts1, pts2, valid = sample_correspondences(g1, g2, 128, generator=gen(2))
    assert valid.all()
    for pts in (pts1, pts2):
        assert (pts >= 0.5 - 1e-3).all() and (pts <= OUT[0] - 0.5 + 1e-3).all()
    torch.testing.assert_close(g1.to_source(pts1), g2.to_source(pts2), atol=1e-4, rtol=0)


def _first(geom: ViewGeometry) -> ViewGeometry:
    return ViewGeometry(geom.matrix[:1], geom.out_size, geom.src_size)

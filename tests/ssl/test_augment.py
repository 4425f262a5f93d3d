"""View augmentations: exact correspondence between views, hand-checked geometry, appearance."""

from __future__ import annotations

import pytest
import torch

from s2ssl.ssl.augment import (
    ViewGeometry,
    appearance,
    apply_geometry,
    apply_geometry_labels,
    bandwise_brightness_contrast,
    gaussian_blur,
    gaussian_noise,
    normalize,
    sample_at,
    sample_correspondences,
    sample_view_geometry,
)

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


def test_whole_image_without_flip_or_rotation_is_the_identity():
    x = torch.randn(3, 4, *OUT, generator=gen(1))
    geom = sample_view_geometry(3, OUT, OUT, scale=(1, 1), ratio=(1, 1), flip=False, rot90=False)
    torch.testing.assert_close(geom.matrix, ViewGeometry.identity(3, OUT).matrix)
    torch.testing.assert_close(apply_geometry(x, geom), x, atol=1e-5, rtol=0)
    ys, xs = torch.meshgrid(torch.arange(OUT[0]), torch.arange(OUT[1]), indexing="ij")
    centres = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2).float().expand(3, -1, -1) + 0.5
    read = sample_at(x, centres)  # [N, H*W, C]
    torch.testing.assert_close(read, x.flatten(2).transpose(1, 2), atol=1e-5, rtol=0)


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


def test_nearest_labels_on_a_2x2_flip_and_fill_outside():
    labels = torch.tensor([[[1, 2], [3, 4]]], dtype=torch.int32)
    box = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    flip = ViewGeometry.from_boxes(box, (2, 2), (2, 2), flip=torch.tensor([True]))
    assert torch.equal(apply_geometry_labels(labels, flip)[0], torch.tensor([[2, 1], [4, 3]]).int())
    # a box twice as wide as the source: its right half lies outside and takes `fill`
    wide = ViewGeometry.from_boxes(torch.tensor([[0.0, 0.0, 4.0, 2.0]]), (2, 2), (2, 4))
    out = apply_geometry_labels(labels, wide, fill=-1)
    assert torch.equal(out[0], torch.tensor([[1, 2, -1, -1], [3, 4, -1, -1]]).int())


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


def test_brightness_contrast():
    x = torch.rand(4, 3, 8, 8, generator=gen(2), dtype=torch.float64)
    out = bandwise_brightness_contrast(x, generator=gen(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.allclose(out, x)
    torch.testing.assert_close(bandwise_brightness_contrast(x, 0.0, 0.0, gen(5)), x)
    # contrast only: band means are kept, band std scales by a factor within [0.8, 1.2]
    only_c = bandwise_brightness_contrast(x, 0.0, 0.2, gen(5))
    torch.testing.assert_close(only_c.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)))
    ratio = only_c.std(dim=(-2, -1)) / x.std(dim=(-2, -1))
    assert (ratio >= 0.8 - 1e-9).all() and (ratio <= 1.2 + 1e-9).all()
    with pytest.raises(ValueError, match="contrast"):
        bandwise_brightness_contrast(x, contrast=1.5)


def test_gaussian_blur():
    noise = torch.randn(4, 2, 16, 16, generator=gen(3))
    assert torch.equal(gaussian_blur(noise, p=0.0, generator=gen()), noise)
    blurred = gaussian_blur(noise, sigma=(1.0, 2.0), p=1.0, generator=gen())
    assert blurred.shape == noise.shape
    assert (blurred.var(dim=(-2, -1)) < 0.7 * noise.var(dim=(-2, -1))).all()
    constant = torch.full((2, 3, 9, 9), 0.25)
    torch.testing.assert_close(gaussian_blur(constant, p=1.0, generator=gen()), constant)
    tiny = torch.randn(2, 1, 3, 3, generator=gen())  # kernel radius capped for tiny images
    assert gaussian_blur(tiny, p=1.0, generator=gen()).shape == tiny.shape
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(noise, sigma=(0.0, 1.0))


def test_gaussian_noise_and_appearance():
    x = torch.zeros(2, 3, 64, 64)
    noisy = gaussian_noise(x, std=0.05, p=1.0, generator=gen())
    assert abs(noisy.std().item() - 0.05) < 0.005
    assert torch.equal(gaussian_noise(x, p=0.0, generator=gen()), x)
    img = torch.rand(4, 3, 12, 12, generator=gen(1))
    a = appearance(img, gen(9))
    b = appearance(img, gen(9))
    assert a.shape == img.shape and torch.equal(a, b)


def test_normalize():
    x = torch.rand(2, 3, 4, 4, generator=gen())
    mean = torch.tensor([0.1, 0.2, 0.3])
    std = torch.tensor([0.5, 1.0, 2.0])
    out = normalize(x, mean, std)
    torch.testing.assert_close(out * std[:, None, None] + mean[:, None, None], x)
    with pytest.raises(ValueError, match="mean"):
        normalize(x, torch.zeros(4), std)
    with pytest.raises(ValueError, match="std"):
        normalize(x, mean, torch.ones(2))
    with pytest.raises(ValueError, match="> 0"):
        normalize(x, mean, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"\[\.\.\., C, H, W\]"):
        normalize(torch.zeros(3, 4), mean, std)

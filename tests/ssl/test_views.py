"""Per-method view construction (s2ssl.ssl.views): dates, view/key mapping, correspondence."""

from __future__ import annotations

import pytest
import torch

from s2ssl.config import AppearanceConfig, load_params
from s2ssl.ssl.resample import sample_at
from s2ssl.ssl.views import (
    cscl_batch,
    dense_views,
    draw_dates,
    moco_views,
    seco_views,
    take_dates,
    to_reflectance,
)
from testkit import REPO_PARAMS

N, T, C, S = 256, 5, 3, 32
ZERO = [0.0] * C
ONE = [1.0] * C
SECO_APPEARANCE = load_params(REPO_PARAMS).pretrain.seco.appearance


def appearance_config(**changes: object) -> AppearanceConfig:
    """SeCo's appearance augmentation of the repo's params.yaml with ``changes``."""
    return AppearanceConfig.model_validate({**SECO_APPEARANCE.model_dump(), **changes})


def dated_constants(n: int = N, t: int = T, c: int = C, size: int = S) -> torch.Tensor:
    """[n, t, c, size, size] where every pixel of date d holds the value d."""
    values = torch.arange(t, dtype=torch.float32)[None, :, None, None, None]
    return values.expand(n, t, c, size, size).clone()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def view_dates(view: torch.Tensor) -> torch.Tensor:
    """The constant value (= date) of each image of a view [N, C, h, w]."""
    flat = view.reshape(view.shape[0], -1)
    assert torch.allclose(flat, flat[:, :1].expand_as(flat), atol=1e-5), "views must stay constant"
    return flat[:, 0].round().long()


def test_to_reflectance_scales_integer_dn_only() -> None:
    dn = torch.tensor([0, 1000, -500], dtype=torch.int16)
    assert torch.allclose(to_reflectance(dn), torch.tensor([0.0, 0.1, -0.05]))
    refl = torch.tensor([0.25])
    assert torch.equal(to_reflectance(refl), refl)


def test_draw_dates_with_and_without_replacement() -> None:
    with_repl = draw_dates(4000, 5, 3, gen())
    assert with_repl.shape == (4000, 3)
    assert int(with_repl.min()) == 0 and int(with_repl.max()) == 4
    repeats = (with_repl[:, 0] == with_repl[:, 1]).float().mean()
    assert 0.15 < float(repeats) < 0.25  # 1/5 for independent uniform draws
    distinct = draw_dates(500, 5, 3, gen(), replace=False)
    assert all(len(set(row.tolist())) == 3 for row in distinct)
    with pytest.raises(ValueError, match="distinct"):
        draw_dates(2, 2, 3, gen(), replace=False)


def test_take_dates_picks_per_sample() -> None:
    x = dated_constants(n=2, size=2)
    got = take_dates(x, torch.tensor([[4, 0], [1, 3]]))
    assert view_dates(got[0]).tolist() == [4, 1]
    assert view_dates(got[1]).tolist() == [0, 3]


def test_seco_views_map_dates_to_query_and_keys() -> None:
    """q = P(t0), k0 = P(A(t1)), k1 = P(t2), k2 = P(A(t0)), dates drawn with replacement."""
    views = seco_views(dated_constants(), gen(), crop_size=16, mean=ZERO, std=ONE, appearance=None)
    t0, t1, t2 = views.dates.T
    assert views.query.shape == (N, C, 16, 16)
    assert len(views.keys) == 3
    assert torch.equal(view_dates(views.query), t0)
    assert torch.equal(view_dates(views.keys[0]), t1)
    assert torch.equal(view_dates(views.keys[1]), t2)
    assert torch.equal(view_dates(views.keys[2]), t0)
    # with replacement: repeated dates occur, but not always; every date is drawn
    assert bool((t0 == t1).any()) and bool((t0 != t1).any())
    assert set(views.dates.flatten().tolist()) == set(range(T))


def test_seco_appearance_only_on_k0_and_k2() -> None:
    """A (here: noise with p = 1) touches the augmented keys only; P keeps constants constant."""
    appearance = appearance_config(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, noise_p=1.0)
    views = seco_views(
        dated_constants(n=16), gen(1), crop_size=16, mean=ZERO, std=ONE, appearance=appearance
    )

    def spread(v: torch.Tensor) -> float:
        return float(v.reshape(v.shape[0], -1).std(dim=1).min())

    assert spread(views.query) < 1e-6 and spread(views.keys[1]) < 1e-6
    assert spread(views.keys[0]) > 1e-3 and spread(views.keys[2]) > 1e-3


def test_seco_views_are_normalised_and_deterministic() -> None:
    x = dated_constants(n=8)
    a = seco_views(x, gen(5), crop_size=16, mean=[1.0] * C, std=[2.0] * C, appearance=None)
    b = seco_views(x, gen(5), crop_size=16, mean=[1.0] * C, std=[2.0] * C, appearance=None)
    assert torch.equal(a.query, b.query) and torch.equal(a.dates, b.dates)
    expected = (a.dates[:, 0].float() - 1.0) / 2.0
    assert torch.allclose(a.query[:, 0, 0, 0], expected)


def test_moco_views_same_date_and_temporal_positives() -> None:
    x = dated_constants()
    moco = moco_views(x, gen(), temporal=False, crop_size=16, mean=ZERO, std=ONE, appearance=None)
    assert moco.dates.shape == (N, 1)
    assert torch.equal(view_dates(moco.query), view_dates(moco.keys[0]))
    tp = moco_views(x, gen(), temporal=True, crop_size=16, mean=ZERO, std=ONE, appearance=None)
    assert tp.dates.shape == (N, 2)
    assert torch.equal(view_dates(tp.query), tp.dates[:, 0])
    assert torch.equal(view_dates(tp.keys[0]), tp.dates[:, 1])
    assert bool((tp.dates[:, 0] != tp.dates[:, 1]).any())


def ramp_series(n: int, t: int, size: int) -> torch.Tensor:
    """Channel 0 = x, channel 1 = y (pixel-centre coordinates), channel 2 = the date."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    x = coords[None, :].expand(size, size)
    y = coords[:, None].expand(size, size)
    out = torch.empty(n, t, 3, size, size)
    out[:, :, 0] = x
    out[:, :, 1] = y
    out[:, :, 2] = torch.arange(t, dtype=torch.float32)[None, :, None, None]
    return out


def test_dense_views_correspondences_point_to_the_same_ground() -> None:
    """Reading each view at its points gives the same source (x, y): same ground, any geometry."""
    flips_only = appearance_config(
        jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, noise_p=0.0, flip=True
    )
    views = dense_views(
        ramp_series(32, 5, 64),
        gen(3),
        crop_size=32,
        num_points=48,
        mean=ZERO,
        std=ONE,
        appearance=flips_only,
        crop_scale=(0.4, 1.0),
        rot90=True,
    )
    assert views.view1.shape == views.view2.shape == (32, 3, 32, 32)
    assert bool(views.valid.any())
    a = sample_at(views.view1, views.points1)[views.valid]
    b = sample_at(views.view2, views.points2)[views.valid]
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-3)
    # two different dates per location, read back from channel 2
    assert bool((views.dates[:, 0] != views.dates[:, 1]).all())
    assert torch.allclose(views.view1[:, 2, 0, 0], views.dates[:, 0].float())
    assert torch.allclose(views.view2[:, 2, 0, 0], views.dates[:, 1].float())
    # the geometries really differ (crops / flips / rotations are independent)
    assert not torch.allclose(views.geometry1.matrix, views.geometry2.matrix)


def test_cscl_batch_appends_doy_and_moves_labels_with_the_image() -> None:
    n, t, size = 4, 16, 32
    image = torch.rand(n, t, 13, size, size)
    labels = torch.randint(0, 9, (n, size, size))
    image[:, :, 0] = labels[:, None].float()  # band 0 carries the label: exact co-registration
    doy = torch.randint(1, 366, (n, t))
    x, y = cscl_batch(image, labels, gen(), doy=doy, crop_size=16, flip=True, rot90=True)
    assert x.shape == (n, t, 14, 16, 16)
    assert y.shape == (n, 16, 16)
    expected_doy = (doy.float() / 365.0)[:, :, None, None].expand(n, t, 16, 16)
    assert torch.allclose(x[:, :, 13], expected_doy)
    assert torch.equal(x[:, :, 0], y[:, None].float().expand(n, t, 16, 16))
    whole, same = cscl_batch(image, labels, gen(), doy=doy, crop_size=None, flip=False, rot90=False)
    assert whole.shape == (n, t, 14, size, size) and torch.equal(same, labels)
    assert torch.equal(whole[:, :, :13], image)


def test_cscl_batch_single_date_is_normalised() -> None:
    image = torch.full((2, 3, 32, 32), 0.5)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    x, _ = cscl_batch(image, labels, gen(), crop_size=32, mean=[0.25] * 3, std=[0.5] * 3)
    assert torch.allclose(x, torch.full_like(x, 0.5))

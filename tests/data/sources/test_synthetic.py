"""The synthetic world: determinism, physics, phenology, parcels, labels, radiometry."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest

from s2ssl.bands import (
    BAND_NAMES,
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_SHADOW,
    band_index,
    dn_to_reflectance,
    ndvi,
)
from s2ssl.config import Params, parse_params, set_dotted
from s2ssl.data.sources import spectra
from s2ssl.data.sources.synthetic import source as synthetic_source
from s2ssl.data.sources.synthetic.world import CROPLAND, FOREST, WATER
from s2ssl.data.sources.types import Chunk
from s2ssl.synthetic_vocabulary import CROP_CLASSES, LANDCOVER_CLASSES
from testkit import REPO_ROOT, read_repo_params

REAL = REPO_ROOT.parent / "shared" / "data" / "eolearn_slovenia_testpatch.npz"


def make_params(**changes: Any) -> Params:
    """The repo's params.yaml with dotted-key changes; regions can be replaced wholesale."""
    raw = read_repo_params()
    raw["holdout_region"] = None  # the tests below pick their own regions
    for key, value in changes.items():
        set_dotted(raw, key, value)
    return parse_params(raw)


def region(i: int = 0, **changes: Any) -> dict[str, Any]:
    r = copy.deepcopy(read_repo_params()["fetch"]["synthetic"]["regions"][i])
    r.update(changes)
    return r


def generate_all(params: Params, dataset: str, seed: int | None = None, **kw: Any) -> Chunk:
    """Every chunk of ``dataset`` in one; all 13 rendered bands unless ``bands`` is given."""
    kw.setdefault("bands", BAND_NAMES)
    cfg = params.fetch
    chunks = list(
        synthetic_source.generate(
            cfg.synthetic,
            dataset,
            params.seed if seed is None else seed,
            cfg.start_date,
            cfg.end_date,
            **kw,
        )
    )
    arrays = {k: np.concatenate([c.arrays[k] for c in chunks]) for k in chunks[0].arrays}
    return Chunk(arrays=arrays, rows=pd.concat([c.rows for c in chunks], ignore_index=True))


def reflectance(chunk: Chunk) -> np.ndarray:
    offsets = np.stack(chunk.rows["dn_offset"].map(np.asarray).to_list())
    return dn_to_reflectance(chunk.arrays["image"], offsets[:, :, None, None, None])


def small(**changes: Any) -> Params:
    base = {
        "fetch.synthetic.unlabelled.locations_per_region": 3,
        "fetch.synthetic.landcover.patches_per_region": 4,
        "fetch.synthetic.croptype.patches_per_region": 3,
    }
    base.update(changes)
    return make_params(**base)


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("dataset", ["unlabelled", "landcover", "croptype"])
def test_same_seed_same_bytes_other_seed_differs(dataset: str) -> None:
    params = small()
    a = generate_all(params, dataset)
    b = generate_all(params, dataset)
    c = generate_all(params, dataset, seed=params.seed + 1)
    for name in a.arrays:
        assert a.arrays[name].tobytes() == b.arrays[name].tobytes(), name
    pd.testing.assert_frame_equal(a.rows, b.rows)
    assert a.arrays["image"].tobytes() != c.arrays["image"].tobytes()


@pytest.mark.slow
def test_a_location_does_not_depend_on_chunking_or_count() -> None:
    params = small()
    whole = generate_all(params, "landcover", chunk_size=4)
    ones = generate_all(params, "landcover", chunk_size=1)
    assert np.array_equal(whole.arrays["image"], ones.arrays["image"])
    more = generate_all(small(**{"fetch.synthetic.landcover.patches_per_region": 6}), "landcover")
    first_region = more.rows["region"] == more.rows["region"].iloc[0]
    assert np.array_equal(
        more.arrays["image"][first_region.to_numpy()][:4], whole.arrays["image"][:4]
    )


# --------------------------------------------------------------------------- physics
@pytest.fixture(scope="module")
def clear_season() -> Chunk:
    """One northern and one southern region, no clouds or haze, dates every ~10 days all year."""
    regions = [
        region(
            i,
            cloudiness=0.0,
            haze_max=0.0,
            phenology_shift_days=0,
            crop_mix={c: 1 / 8 for c in CROP_CLASSES[1:]},
            parcel_size_px=120,
        )
        for i in (0, 2)  # north_west and south_pampa
    ]
    params = make_params(
        **{
            "fetch.synthetic.regions": regions,
            "fetch.synthetic.croptype.patches_per_region": 10,
            "fetch.synthetic.croptype.n_dates": 36,
            "fetch.synthetic.croptype.season_start_doy": 1,
            "fetch.synthetic.croptype.season_end_doy": 360,
            "fetch.synthetic.croptype.date_jitter_days": 0,
        }
    )
    return generate_all(params, "croptype")


def crop_ndvi(chunk: Chunk, hemisphere: str) -> tuple[np.ndarray, np.ndarray]:
    """(doy [T], mean NDVI [T, n_crops]) over clear interior parcel pixels of one hemisphere."""
    sel = (chunk.rows["hemisphere"] == hemisphere).to_numpy()
    refl = reflectance(chunk)[sel]
    index = ndvi(refl, band_axis=2)  # [n, T, H, W]
    crop = chunk.arrays["croptype"][sel]
    clear = chunk.arrays["mask"][sel] == MASK_CLEAR
    doy = np.stack(chunk.rows["doy"][sel].map(np.asarray).to_list())
    assert (np.abs(doy - doy[0]) <= 1).all()  # no jitter: same days (± a leap day)
    out = np.full((doy.shape[1], len(CROP_CLASSES)), np.nan)
    for c in range(1, len(CROP_CLASSES)):
        m = (crop == c)[:, None] & clear
        if m.sum() > 200:
            out[:, c] = np.where(m, index, 0).sum(axis=(0, 2, 3)) / m.sum(axis=(0, 2, 3))
    return doy[0], out


@pytest.mark.parametrize("hemisphere", ["north", "south"])
def test_each_crop_ndvi_peaks_near_its_configured_day(clear_season: Chunk, hemisphere: str) -> None:
    doy, curves = crop_ndvi(clear_season, hemisphere)
    shift = 182.5 if hemisphere == "south" else 0.0
    checked = 0
    for c, crop in enumerate(spectra.CROP_TABLE, start=1):
        if np.isnan(curves[:, c]).all():
            continue
        peak_day = doy[np.nanargmax(curves[:, c])]
        expected = (crop.peak + shift) % 365
        assert abs(spectra.wrap_days(peak_day - expected)) <= 22, (crop.name, peak_day, expected)
        checked += 1
    assert checked >= 6


def test_ndvi_high_at_peak_low_after_harvest(clear_season: Chunk) -> None:
    doy, curves = crop_ndvi(clear_season, "north")
    for c, crop in enumerate(spectra.CROP_TABLE, start=1):
        if np.isnan(curves[:, c]).all():
            continue
        at_peak = curves[np.argmin(np.abs(spectra.wrap_days(doy - crop.peak))), c]
        bare = np.abs(spectra.wrap_days(doy - (crop.harvest + 30))) <= 6
        assert at_peak > 0.6, crop.name
        assert np.nanmax(curves[bare, c]) < 0.35, crop.name


def test_water_nir_below_red_and_vegetation_the_reverse() -> None:
    params = small(
        **{
            "fetch.synthetic.landcover.patches_per_region": 30,
            "fetch.synthetic.regions": [region(0, haze_max=0.0)],
        }
    )
    chunk = generate_all(params, "landcover")
    refl = reflectance(chunk)[:, 0]
    lc = chunk.arrays["landcover"]
    clear = chunk.arrays["mask"][:, 0] == MASK_CLEAR
    red, nir = refl[:, band_index("B04")], refl[:, band_index("B08")]
    from scipy import ndimage

    water = ndimage.binary_erosion(lc == WATER, iterations=1, structure=np.ones((1, 3, 3))) & clear
    assert water.sum() > 50
    assert nir[water].mean() < red[water].mean()
    forest = (lc == FOREST) & clear
    assert nir[forest].mean() > 3 * red[forest].mean()


def test_clouds_are_bright_in_all_bands_and_flagged() -> None:
    params = small(
        **{
            "fetch.synthetic.regions": [region(0, cloudiness=1.0)],
            "fetch.synthetic.unlabelled.locations_per_region": 4,
        }
    )
    chunk = generate_all(params, "unlabelled")
    refl = reflectance(chunk)
    mask = chunk.arrays["mask"]
    cloud = mask == MASK_CLOUD
    assert cloud.mean() > 0.02
    pixels = refl.transpose(0, 1, 3, 4, 2)  # [n, T, H, W, C]
    cloudy, clear = pixels[cloud], pixels[mask == MASK_CLEAR]
    for b in ("B02", "B03", "B04", "B05", "B08", "B8A", "B11"):  # 10 and 20 m bands
        assert cloudy[:, band_index(b)].mean() > 0.3, b  # incl. semi-transparent edges
    for b in ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"):
        i = band_index(b)  # 60 m bands are blurred, so small clouds are diluted there
        assert cloudy[:, i].mean() > clear[:, i].mean() + 0.08, b
    assert cloudy[:, band_index("B10")].mean() > 5 * clear[:, band_index("B10")].mean()
    shadow = pixels[mask == MASK_SHADOW]
    assert shadow[:, band_index("B08")].mean() < clear[:, band_index("B08")].mean()
    recorded = np.array(chunk.rows["cloud_fraction"].to_list())
    assert np.allclose(recorded, cloud.mean(axis=(-2, -1)), atol=1e-5)
    assert (recorded <= params.fetch.synthetic.unlabelled.max_cloud_coverage + 0.03).all()


# --------------------------------------------------------------------------- labels and parcels
def test_parcels_are_separated_by_boundaries_and_single_crop() -> None:
    chunk = generate_all(small(**{"fetch.synthetic.croptype.patches_per_region": 4}), "croptype")
    parcel, crop, lc = chunk.arrays["parcel"], chunk.arrays["croptype"], chunk.arrays["landcover"]
    for a, b in ((parcel[:, :, :-1], parcel[:, :, 1:]), (parcel[:, :-1, :], parcel[:, 1:, :])):
        both = (a > 0) & (b > 0)
        assert both.any()
        assert (a[both] == b[both]).all(), "two different parcels touch"
    for i in range(len(parcel)):
        for pid in np.unique(parcel[i])[1:]:
            assert len(np.unique(crop[i][parcel[i] == pid])) == 1
    assert ((parcel > 0) == (crop > 0)).all()
    assert (lc[parcel > 0] == CROPLAND).all()
    margins = (lc == CROPLAND) & (parcel == 0)
    assert margins.any(), "cropland has no parcel margins"


def test_label_values_are_in_their_class_sets() -> None:
    params = small()
    lc = generate_all(params, "landcover").arrays["landcover"]
    ct = generate_all(params, "croptype")
    assert lc.max() < len(LANDCOVER_CLASSES)
    assert ct.arrays["croptype"].max() < len(CROP_CLASSES)
    assert set(np.unique(ct.arrays["mask"])) <= {0, 1, 2, 3}


@pytest.mark.slow
def test_class_frequencies_follow_the_region_priors() -> None:
    params = small(
        **{
            "fetch.synthetic.landcover.patches_per_region": 60,
            "fetch.synthetic.regions": [region(0)],
        }
    )
    lc = generate_all(params, "landcover").arrays["landcover"]
    freq = np.bincount(lc.ravel(), minlength=7) / lc.size
    priors = np.array(
        [params.fetch.synthetic.regions[0].class_priors[c] for c in LANDCOVER_CLASSES]
    )
    assert np.abs(freq - priors).max() < 0.06, (freq.round(3), priors)


# --------------------------------------------------------------------------- radiometry, dates, CRS
def test_dn_offset_follows_the_processing_baseline() -> None:
    chunk = generate_all(small(), "unlabelled")
    for _, row in chunk.rows.iterrows():
        for d, b, off in zip(
            row["dates"], row["processing_baseline"], row["dn_offset"], strict=True
        ):
            day = dt.date.fromisoformat(d)
            # ESA's baselines by acquisition date: 04.00 from 2022-01-25, 05.09 from 2023
            if day >= dt.date(2023, 1, 1):
                assert b == "05.09"
            elif day >= dt.date(2022, 1, 25):
                assert b == "04.00"
            else:
                assert b == "03.01"
            assert off == (-1000 if day >= dt.date(2022, 1, 25) else 0)
    offsets = np.array(chunk.rows["dn_offset"].to_list())
    assert (offsets == 0).any() and (offsets == -1000).any(), "default period spans both baselines"
    refl = reflectance(chunk)
    assert np.percentile(refl, 1) >= 0.0 and np.percentile(refl, 99) < 1.0
    assert chunk.arrays["image"].min() >= 1  # DN 0 is reserved for no data


def test_seasonal_dates_follow_seco_sampling() -> None:
    params = small()
    chunk = generate_all(params, "unlabelled")
    start, end = params.fetch.start_date, params.fetch.end_date
    for dates in chunk.rows["dates"]:
        d = [dt.date.fromisoformat(x) for x in dates]
        assert d == sorted(d) and start <= d[0] and d[-1] <= end
        gaps = np.diff([x.toordinal() for x in d])
        assert (np.abs(gaps - 84) <= 15).all(), gaps  # 12 weeks ± two 7.5-day windows


def test_croptype_dates_cover_one_season_in_order() -> None:
    chunk = generate_all(small(), "croptype")
    for _, row in chunk.rows.iterrows():
        d = [dt.date.fromisoformat(x) for x in row["dates"]]
        assert all(a < b for a, b in itertools.pairwise(d))
        assert 200 <= (d[-1] - d[0]).days <= 300


def test_georeference_is_utm_in_the_right_hemisphere() -> None:
    chunk = generate_all(small(), "landcover")
    for _, row in chunk.rows.iterrows():
        epsg = int(row["crs"].split(":")[1])
        assert (32601 <= epsg <= 32660) if row["lat"] >= 0 else (32701 <= epsg <= 32760)
        a, b, _, d, e, _ = row["transform"]
        assert (a, b, d, e) == (10.0, 0.0, 0.0, -10.0)
    from pyproj import Transformer

    row = chunk.rows.iloc[0]
    x, y = Transformer.from_crs("EPSG:4326", row["crs"], always_xy=True).transform(
        row["lon"], row["lat"]
    )
    size = chunk.arrays["landcover"].shape[-1]
    t = row["transform"]
    assert abs(t[2] + size * 5 - x) <= 10 and abs(t[5] - size * 5 - y) <= 10


# --------------------------------------------------------------------------- real Sentinel-2
@pytest.mark.skipif(not REAL.exists(), reason="../shared/data is absent (a user's fresh clone)")
def test_class_mean_spectra_resemble_the_real_eolearn_patch() -> None:
    real = np.load(REAL)
    names = [str(n) for n in real["lulc_classes"]]
    clear_scenes = real["ref_scenes_l1c"][2:]  # scenes 0 and 1 are cloudy
    lulc = real["lulc"]
    params = small(
        **{
            "fetch.synthetic.landcover.patches_per_region": 40,
            "fetch.synthetic.regions": [region(0)],
        }
    )
    chunk = generate_all(params, "landcover")
    doy = np.array([d[0] for d in chunk.rows["doy"]])
    summer = (doy > 180) & (doy < 260)  # the real scenes are July-September
    refl = reflectance(chunk)[summer, 0].transpose(0, 2, 3, 1)
    lc = chunk.arrays["landcover"][summer]
    clear = chunk.arrays["mask"][summer, 0] == MASK_CLEAR
    bands = [
        band_index(b)
        for b in ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    ]
    for ours, theirs in (("forest", "forest"), ("grassland", "grassland")):
        synthetic_mean = refl[(lc == LANDCOVER_CLASSES.index(ours)) & clear].mean(0)[bands]
        real_mean = clear_scenes[:, lulc == names.index(theirs)].mean(axis=(0, 1))[bands]
        ratio = synthetic_mean / real_mean
        assert np.corrcoef(synthetic_mean, real_mean)[0, 1] > 0.95, ours
        assert (ratio > 0.5).all() and (ratio < 2.0).all(), (ours, ratio.round(2))

"""Location sampling of the real-imagery sources: Gaussian spread around places, GeoJSON areas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2ssl.data.sources import sampling


def test_gaussian_sampler_spreads_around_places_with_sigma_50_km() -> None:
    rng = np.random.default_rng(0)
    pts = np.array([sampling.gaussian_around(rng, 10.0, 50.0, 50.0) for _ in range(4000)])
    dy_km = (pts[:, 1] - 50.0) * sampling.KM_PER_DEGREE
    dx_km = (pts[:, 0] - 10.0) * sampling.KM_PER_DEGREE * np.cos(np.radians(pts[:, 1]))
    assert np.std(dy_km) == pytest.approx(50.0, rel=0.05)
    assert np.std(dx_km) == pytest.approx(50.0, rel=0.05)


def test_geojson_areas_sample_inside_the_polygons(tmp_path: Path) -> None:
    import json

    from s2ssl.config import ShRegion

    poly = [[14.0, 45.9], [14.6, 45.9], [14.0, 46.3], [14.0, 45.9]]  # a triangle
    path = tmp_path / "area.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [poly]},
                    }
                ],
            }
        )
    )
    region = ShRegion(name="t", geojson=path, locations=50)
    for k in range(50):
        lon, lat = sampling.draw_location(region, sampling.candidate_rng(1, "landcover", "t", k), k)
        assert (lon - 14.0) / 0.6 + (lat - 45.9) / 0.4 <= 1.0 + 1e-9

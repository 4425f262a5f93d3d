"""fetch.source: sentinelhub end to end against the Sentinel Hub imitation on 127.0.0.1, through
the real sentinelhub client: sampling, retries, resume."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sh_server import CLIENT_SECRET, ShImitation, baseline_of
from shkit import BBOX, expected_pick, run, sh_params, sh_raw
from typer.testing import CliRunner, Result

from s2ssl.bands import L2A_BAND_NAMES
from s2ssl.cli import app
from s2ssl.cli.common import EX_TEMPFAIL
from s2ssl.config import ConfigError, parse_params
from s2ssl.data.sources import sampling
from s2ssl.data.sources.base import INDEX_COLUMNS
from s2ssl.data.sources.retry import RetriesExhaustedError, RetryPolicy
from s2ssl.data.store import open_dataset
from testkit import read_repo_params, write_params


def test_seasonal_windows_keep_the_most_recent_acceptable_scene(sh: ShImitation, tmp_path: Path):
    # Windows straddling baseline 04.00 (2022-01-25), so the DN offset changes; the first such
    # reference date whose five windows all hold an acceptable scene.
    spec = sh_params(tmp_path, ["unlabelled"]).fetch.sentinelhub.unlabelled
    ref = dt.date(2022, 6, 1)
    while any(
        expected_pick(sh.state, w, 50.0) is None for w in sampling.seasonal_windows(ref, spec)
    ):
        ref += dt.timedelta(days=1)
    params = sh_params(
        tmp_path,
        ["unlabelled"],
        regions=[{"name": "slovenia", "points": [[14.2, 46.0], [14.5, 46.1]]}],
        unlabelled={"patch_size": 16, "reference_date": str(ref), "max_year_shift": 0},
    )
    run(params, tmp_path)
    ds = open_dataset(tmp_path / "raw" / "unlabelled")
    assert len(ds) == 2 and ds.specs["image"].shape == (5, 12, 16, 16)  # bands: l2a
    windows = sampling.seasonal_windows(ref, params.fetch.sentinelhub.unlabelled)
    assert [w.nominal for w in windows] == [
        ref - dt.timedelta(weeks=12 * k) for k in (4, 3, 2, 1, 0)
    ]
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        dates = [dt.date.fromisoformat(d) for d in row["dates"]]
        assert dates == [expected_pick(sh.state, w, 50.0) for w in windows]
        for d, w in zip(dates, windows, strict=True):
            assert abs((d - w.nominal).days) <= 7.5
        assert list(row["processing_baseline"]) == [baseline_of(d) for d in dates]
        offsets = [-1000 if baseline_of(d) >= "04.00" else 0 for d in dates]
        assert list(row["dn_offset"]) == offsets and 0 in offsets and -1000 in offsets
        assert not row["harmonize_values"]
        image = ds.read("image", i)
        # The imitation encodes the acquisition day in B01: the right scene was downloaded,
        # with the 04.00 offset in its raw DN, which the recorded dn_offset removes again.
        doy = np.array([d.timetuple().tm_yday for d in dates])
        assert (image[:, 0, 8, 8] == 1000 + doy - np.array(offsets)).all()
        assert (image[:, 0, 8, 8].astype(int) + offsets == 1000 + doy).all()
        cloud = [sh.state.cloud_cover(d) / 100 for d in dates]
        assert np.allclose(row["cloud_fraction"], np.round(np.array(cloud) * 16) / 16)
        assert list(row["scene_cloud_cover"]) == pytest.approx([c * 100 for c in cloud])
    attrs = ds.attrs
    assert attrs["source"] == "sentinelhub" and "filled_bands" not in attrs
    assert attrs["bands"] == list(L2A_BAND_NAMES) and attrs["harmonize_values"] is False


def test_year_shift_and_random_reference_keep_every_window_in_range() -> None:
    raw = read_repo_params()["fetch"]
    spec = parse_params(
        {
            **read_repo_params(),
            "fetch": {
                **raw,
                "source": "sentinelhub",
                "sentinelhub": {
                    "regions": [{"name": "r", "bbox": BBOX}],
                    "unlabelled": {"reference_date": "2023-06-01", "max_year_shift": 3},
                },
                "datasets": ["unlabelled"],
            },
        }
    ).fetch.sentinelhub.unlabelled
    start, end = dt.date(2019, 1, 1), dt.date(2023, 12, 31)
    refs = {
        sampling.draw_reference(sampling.candidate_rng(0, "unlabelled", "r", k), spec, start, end)
        for k in range(40)
    }
    assert refs == {dt.date(y, 6, 1) for y in (2020, 2021, 2022, 2023)}  # whole-year shifts
    free = spec.model_copy(update={"reference_date": None})
    for k in range(40):
        ref = sampling.draw_reference(
            sampling.candidate_rng(0, "unlabelled", "r", k), free, start, end
        )
        windows = sampling.seasonal_windows(ref, free)
        assert windows[0].start >= start and windows[-1].end <= end


def test_an_empty_window_replaces_the_location(sh: ShImitation, tmp_path: Path):
    # The western half of the bbox has no acquisitions at all (e.g. open sea).
    sh.state.empty_areas.append((13.9, 45.8, 14.3, 46.4))
    params = sh_params(tmp_path, ["unlabelled"], max_cloud_coverage=0.9)
    result = run(params, tmp_path)
    ds = open_dataset(tmp_path / "raw" / "unlabelled")
    assert len(ds) == 3  # every wanted location delivered
    assert (ds.index["lon"] > 14.3).all()
    replaced = [s for s in result.skipped if s.reason == "empty window"]
    assert replaced, "some candidates fell into the empty half"
    # candidates are numbered: the accepted ones skip the replaced numbers
    assert sorted(ds.index["location"]) == sorted(
        set(range(len(ds) + len(replaced)))
        - {int(s.item.split()[0].rsplit("-", 1)[1]) for s in replaced}
    )
    summary = result.summary
    assert summary["unlabelled.n_skipped"] == len(result.skipped)


def test_fixed_points_are_not_replaced_and_the_shortfall_is_reported(sh: ShImitation, tmp_path):
    sh.state.empty_areas.append((14.0, 45.9, 14.3, 46.3))
    params = sh_params(
        tmp_path,
        ["landcover"],
        regions=[{"name": "slovenia", "points": [[14.1, 46.0], [14.5, 46.1], [14.55, 46.2]]}],
    )
    result = run(params, tmp_path)
    ds = open_dataset(tmp_path / "raw" / "landcover")
    assert len(ds) == 2
    reasons = sorted(s.reason for s in result.skipped)
    assert reasons == ["empty window", "region short of locations"]
    assert "landcover" not in ds.array_names  # no label raster configured: labels optional


def test_time_series_keeps_n_acquisitions_spread_over_the_period(sh: ShImitation, tmp_path):
    params = sh_params(tmp_path, ["croptype"], regions=[{"name": "s", "points": [[14.2, 46.0]]}])
    run(params, tmp_path)
    ds = open_dataset(tmp_path / "raw" / "croptype")
    dates = [dt.date.fromisoformat(d) for d in ds.index.iloc[0]["dates"]]
    acceptable = [
        d
        for d in sh.state.acquisitions(dt.date(2021, 3, 1), dt.date(2021, 10, 31))
        if sh.state.cloud_cover(d) <= 50
    ]
    assert len(dates) == 5 and dates[0] == acceptable[0] and dates[-1] == acceptable[-1]
    assert set(dates) <= set(acceptable) and dates == sorted(set(dates))
    assert ds.specs["image"].shape == (5, 12, 16, 16)


def test_catalog_paging_returns_every_page(sh: ShImitation, tmp_path: Path):
    params = sh_params(
        tmp_path,
        ["croptype"],
        regions=[{"name": "s", "points": [[14.2, 46.0]]}],
        catalog_page_size=3,
    )
    run(params, tmp_path)
    assert sh.state.counts["catalog_pages"] > 5  # ~25 acceptable scenes, 3 per page
    ds = open_dataset(tmp_path / "raw" / "croptype")
    acceptable = [
        d
        for d in sh.state.acquisitions(dt.date(2021, 3, 1), dt.date(2021, 10, 31))
        if sh.state.cloud_cover(d) <= 50
    ]
    assert ds.index.iloc[0]["dates"][-1] == acceptable[-1].isoformat()  # from the last page


def test_one_response_comes_back_as_a_tiff_through_the_real_client(sh: ShImitation):
    from sentinelhub import CRS, BBox, DataCollection, MimeType, SentinelHubRequest, SHConfig

    config = SHConfig(
        use_defaults=True,
        sh_client_id=sh.state.client_id,
        sh_client_secret=CLIENT_SECRET,
        sh_base_url=sh.base_url,
        sh_token_url=sh.token_url,
        max_download_attempts=1,
    )
    coll = DataCollection.SENTINEL2_L2A.define_from("S2SSL_TEST_TIFF", service_url=sh.base_url)
    request = SentinelHubRequest(
        evalscript='//VERSION=3\n{ input: [{ bands: ["B02", "B03"] }] }\n'
        'output: [ { id: "bands", bands: 2, sampleType: "UINT16" } ]',
        input_data=[
            SentinelHubRequest.input_data(coll, time_interval=("2021-06-01", "2021-06-30"))
        ],
        responses=[SentinelHubRequest.output_response("bands", MimeType.TIFF)],
        bbox=BBox((450000, 5100000, 450160, 5100160), crs=CRS(32633)),
        size=(16, 16),
        config=config,
    )
    image = request.get_data()[0]
    assert image.shape == (16, 16, 2) and image.dtype == np.uint16
    assert (image[:, :, 1] == 600).all()  # 500 + 100 × band position


def test_429_and_5xx_are_retried_with_backoff_to_completion(sh: ShImitation, tmp_path: Path):
    sh.state.inject("token", [503, 429])
    sh.state.inject("catalog", [500, 429])
    sh.state.inject("process", [429, 500, 502, 429, 503])
    sleeps: list[float] = []
    params = sh_params(tmp_path, ["landcover"])
    result = run(params, tmp_path, sleep=sleeps.append)
    ds = open_dataset(tmp_path / "raw" / "landcover")
    assert len(ds) == 3 and not result.skipped
    counts = sh.state.counts
    assert counts["process_failed_429"] == 2 and counts["process_failed_500"] == 1
    assert counts["process_requests"] == 3 + 5  # every scene once, plus one per failure
    assert counts["catalog_failed_500"] == 1 and counts["token_requests"] == 3
    assert len(sleeps) == 9 and all(s > 0 for s in sleeps)
    import json

    report = json.loads((tmp_path / "reports" / "acquisition.json").read_text())
    assert report["datasets"]["landcover"]["retries"] == 7  # token retry came before


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=8, backoff_s=1.0, max_backoff_s=10.0, jitter=0.5)
    delays = [policy.delay(k) for k in range(1, 8)]
    for k, d in enumerate(delays, start=1):
        base = min(2.0 ** (k - 1), 10.0)
        assert 0.5 * base <= d <= 1.5 * base
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered


def test_4xx_is_not_retried_and_skips_only_its_location(sh: ShImitation, tmp_path: Path):
    sh.state.inject("process", [400])
    sleeps: list[float] = []
    params = sh_params(tmp_path, ["landcover"], concurrency=1)
    result = run(params, tmp_path, sleep=sleeps.append)
    assert sleeps == []
    assert sh.state.counts["process_requests"] == 3
    assert [s.reason for s in result.skipped] == ["download failed"]
    assert "HTTP 400" in result.skipped[0].detail
    assert len(open_dataset(tmp_path / "raw" / "landcover")) == 2


def test_retries_exhausted_skip_the_location_and_a_rerun_fetches_it(sh: ShImitation, tmp_path):
    sh.state.inject("process", [500] * 3)
    params = sh_params(
        tmp_path, ["landcover"], concurrency=1, retry={"max_attempts": 3, "backoff_s": 0.0}
    )
    first = run(params, tmp_path)
    assert [s.reason for s in first.skipped] == ["download failed"]
    assert len(open_dataset(tmp_path / "raw" / "landcover")) == 2
    before = sh.state.counts["process_requests"]
    second = run(params, tmp_path)
    assert not second.skipped and len(open_dataset(tmp_path / "raw" / "landcover")) == 3
    assert sh.state.counts["process_requests"] - before == 1  # only the missing scene


def test_all_downloads_failing_transiently_raise_retries_exhausted(sh: ShImitation, tmp_path):
    sh.state.inject("process", [503] * 6)  # 3 scenes x 2 attempts
    params = sh_params(tmp_path, ["landcover"], retry={"max_attempts": 2, "backoff_s": 0.0})
    with pytest.raises(RetriesExhaustedError, match="every failure was transient"):
        run(params, tmp_path)


def test_all_downloads_refused_raise_a_plain_value_error(sh: ShImitation, tmp_path):
    sh.state.inject("process", [400] * 3)
    params = sh_params(tmp_path, ["landcover"])
    with pytest.raises(ValueError, match="no landcover sample") as info:
        run(params, tmp_path)
    assert not isinstance(info.value, RetriesExhaustedError)


def _cli_fetch(tmp_path: Path, **sentinelhub: Any) -> Result:
    params = write_params(tmp_path / "params.yaml", sh_raw(tmp_path, ["landcover"], **sentinelhub))
    return CliRunner().invoke(
        app,
        ["fetch", "--params", str(params), "--out", str(tmp_path / "raw"),
         "--reports", str(tmp_path / "reports")],
    )  # fmt: skip


def test_cli_fetch_exits_75_when_the_failure_is_transient(sh: ShImitation, tmp_path):
    """EX_TEMPFAIL: the token service (or the network) kept failing; retrying later may work."""
    sh.state.inject("token", [503] * 2)
    result = _cli_fetch(tmp_path, retry={"max_attempts": 2, "backoff_s": 0.0})
    assert result.exit_code == EX_TEMPFAIL == 75, result.output
    assert "transient failure" in result.output and CLIENT_SECRET not in result.output
    sh.state.inject("process", [429] * 6)
    result = _cli_fetch(tmp_path, retry={"max_attempts": 2, "backoff_s": 0.0})
    assert result.exit_code == 75, result.output


def test_cli_fetch_exits_75_when_the_service_cannot_be_reached(sh, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SH_TOKEN_URL", f"http://127.0.0.1:{port}/oauth/token")
    result = _cli_fetch(tmp_path, retry={"max_attempts": 2, "backoff_s": 0.0})
    assert result.exit_code == 75, result.output


def test_cli_fetch_exits_2_when_the_failure_is_permanent(sh: ShImitation, tmp_path, monkeypatch):
    sh.state.inject("process", [400] * 3)  # every scene refused: a retry would not help
    assert _cli_fetch(tmp_path).exit_code == 2
    monkeypatch.setenv("SH_CLIENT_SECRET", "wrong-" + CLIENT_SECRET)  # 401: not transient
    result = _cli_fetch(tmp_path)
    assert result.exit_code == 2 and "rejected the credentials" in result.output


class Killed(BaseException):
    """Stands in for Ctrl-C / a kill between two downloaded scenes."""


@contextmanager
def killing_progress(after: int, log: list[str]) -> Iterator[Any]:
    done = [0]

    @contextmanager
    def factory(description: str, total: int) -> Iterator[Any]:
        log.append(description)

        def advance(n: int) -> None:
            if description.startswith("download"):
                done[0] += n
                if done[0] >= after:
                    raise Killed

        yield advance

    yield factory


@pytest.mark.slow
def test_a_killed_fetch_resumes_without_redownloading(sh: ShImitation, tmp_path: Path):
    params = sh_params(tmp_path, ["unlabelled"], concurrency=2)  # 3 locations x 5 scenes
    log: list[str] = []
    with killing_progress(6, log) as progress, pytest.raises(Killed):
        run(params, tmp_path, progress=progress)
    assert not (tmp_path / "raw" / "unlabelled").exists()  # nothing half-written
    downloaded = sh.state.counts["process_requests"]
    catalog = sh.state.counts["catalog_requests"]
    assert 6 <= downloaded < 15
    cached = list((tmp_path / "cache" / "scenes").rglob("*.npz"))
    assert len(cached) == downloaded and not list((tmp_path / "cache").rglob("*.tmp"))

    result = run(params, tmp_path)
    assert sh.state.counts["process_requests"] - downloaded == 15 - downloaded
    assert sh.state.counts["catalog_requests"] == catalog  # searches came from the cache
    import json

    report = json.loads((tmp_path / "reports" / "acquisition.json").read_text())["datasets"]
    assert report["unlabelled"]["scenes_from_cache"] == downloaded
    assert result.summary["unlabelled.n_samples"] == 3

    # A third run downloads nothing and yields the very same dataset as an uninterrupted one.
    again = run(params, tmp_path)
    assert sh.state.counts["process_requests"] == 15
    fresh_params = sh_params(tmp_path / "fresh", ["unlabelled"])
    run(fresh_params, tmp_path / "fresh")
    a, b = (
        open_dataset(tmp_path / "raw" / "unlabelled"),
        open_dataset(tmp_path / "fresh" / "raw" / "unlabelled"),
    )
    assert (a.read_many("image", range(3)) == b.read_many("image", range(3))).all()
    assert list(a.index["dates"].map(list)) == list(b.index["dates"].map(list))
    assert again.summary == result.summary


@pytest.mark.slow
def test_a_sigkilled_fetch_process_resumes_without_redownloading(sh: ShImitation, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from testkit import write_params

    sh.state.latency_s = 0.05
    params = sh_params(tmp_path, ["unlabelled"], concurrency=2)
    params_file = write_params(
        tmp_path / "params.yaml", params.model_dump(mode="json", by_alias=True)
    )
    cmd = [
        sys.executable,
        "-c",
        "from s2ssl.cli import app; app()",
        "fetch",
        "--params",
        str(params_file),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scenes = tmp_path / "cache" / "scenes"
    deadline = time.monotonic() + 60
    while len(list(scenes.rglob("*.npz"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    done = len(list(scenes.rglob("*.npz")))
    assert 4 <= done < 15, done
    before = sh.state.counts["process_requests"]
    sh.state.latency_s = 0.0
    run(params, tmp_path)
    assert sh.state.counts["process_requests"] - before == 15 - done
    assert len(open_dataset(tmp_path / "raw" / "unlabelled")) == 3


def test_params_for_sentinelhub_are_checked() -> None:
    raw = read_repo_params()
    raw["fetch"]["source"] = "sentinelhub"
    with pytest.raises(ConfigError, match=r"needs a fetch\.sentinelhub section"):
        parse_params(raw)
    raw["fetch"]["sentinelhub"] = {"regions": [{"name": "a", "bbox": BBOX, "points": [[1, 2]]}]}
    with pytest.raises(ConfigError, match="exactly one of bbox, geojson, points or places"):
        parse_params(raw)
    raw["fetch"]["sentinelhub"] = {"regions": [{"name": "a", "bbox": BBOX}]}
    with pytest.raises(ConfigError, match=r"give fetch\.sentinelhub\.croptype"):
        parse_params(raw)
    raw["fetch"]["datasets"] = ["unlabelled", "landcover"]
    assert parse_params(raw).fetch.sentinelhub.collection == "L2A"


@pytest.mark.slow
def test_sentinelhub_datasets_pass_the_validate_stage(sh: ShImitation, tmp_path: Path):
    from s2ssl.validation.validate import validate

    params = sh_params(tmp_path, ["unlabelled", "landcover", "croptype"])
    run(params, tmp_path)
    raw = params.model_dump(mode="json", by_alias=True)
    for name in ("unlabelled", "landcover", "croptype"):  # the synthetic columns, in order
        columns = list(open_dataset(tmp_path / "raw" / name).index.columns)
        assert columns[: len(INDEX_COLUMNS)] == list(INDEX_COLUMNS)
    result = validate(parse_params(raw), tmp_path / "raw", tmp_path / "validated", tmp_path / "vr")
    for name in ("unlabelled", "landcover", "croptype"):
        assert result.summary[f"{name}.usable"] == 1
        assert result.summary[f"{name}.n_accepted"] == 3


def test_index_columns_are_the_synthetic_worlds(tiny_raw: Path) -> None:
    for name in ("unlabelled", "landcover", "croptype"):
        columns = list(open_dataset(tiny_raw / name).index.columns)
        assert columns == [*INDEX_COLUMNS, "shard", "row"]

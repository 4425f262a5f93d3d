"""Real Sentinel-2 imagery through sentinelhub-py: catalog search, then the
Process API, with the robustness of an unattended bulk download.

For each dataset:

1. **plan** — per region, candidate locations (:mod:`.sampling`) are searched in the catalog
   (scene cloud filter ``eo:cloud_cover``) and their acquisitions chosen: *seasonal* for
   ``unlabelled`` (SeCo), *single date* for ``landcover``, *time series* for ``croptype``. A
   candidate with an empty window (or too few acquisitions) is replaced by the next candidate.
2. **download** — one Process API request per (location, acquisition): all bands on the 10 m
   grid as DN (``harmonizeValues`` as configured), plus the scene classification (L2A: SCL) or
   cloud mask (L1C: CLM) and ``dataMask``; concurrent, retried on 429 / 5xx with back-off and
   jitter (never on other 4xx), each result written atomically to an on-disk cache — a killed or
   repeated fetch only downloads what is missing. Catalog answers are cached too.
3. **assemble** — the cache is read location by location into chunks with the synthetic
   world's arrays and index columns (plus provenance: product ids, scene cloud cover).

Credentials come only from the environment / ``.env`` (:mod:`s2ssl.settings`); they are checked
before any network call and never appear in logs, outputs or error messages.
"""

"""The embedded synthetic Sentinel-2 world: a physical toy, deterministic by seed.

Each location is drawn from its own random generator seeded by ``(seed, dataset, region, location)``
(so a location never depends on chunking or on how many others are generated), then rendered in
vectorised numpy over a chunk of locations and all their dates:

1. **scene** (static): land cover as the arg-max of smooth random fields biased by the region's
   class priors; cropland cut into elongated Voronoi parcels separated by 1-pixel margins, each
   parcel one crop with its own timing, vigour and soil; texture, evergreen and snow-line fields.
2. **abundances** per date from class + phenology (:mod:`.spectra`), shifted 6 months in the south.
3. **spectra**: linear mixing of endmembers, atmospheric transmission, region illumination and path
   radiance, per-date haze, clouds (bright in all bands) with displaced shadows, sensor noise, and
   point-spread blur per native resolution (10 / 20 / 60 m), so boundary pixels are mixed.
4. **DN** as uint16 with the processing-baseline offset of the acquisition date.

Datasets: ``unlabelled`` (SeCo: ``n_dates`` acquisitions ``interval_weeks`` apart), ``landcover``
(one date + land-cover mask) and ``croptype`` (a season of dates + crop-type mask + parcel ids).

Modules: :mod:`.world` (scene, weather and rendering), :mod:`.dates` (acquisition dates and
their processing baseline), :mod:`.source` (the datasets ``fetch`` builds) and :mod:`.area` (one
acquisition over an area, for ``s2ssl acquire``).
"""

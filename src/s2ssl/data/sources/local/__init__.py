"""Bring your own imagery (``fetch.source: local``): GeoTIFFs into the same store as the other
sources.

Two layouts, told apart automatically (or forced with ``layout``):

* **multiband** — every ``*.tif`` under ``path`` is one image holding several bands
  (``band_order`` names them in file order; by default 13 bands in Sentinel-2 order, or 12
  without B10 as in Level-2A products);
* **band_files** — one GeoTIFF per band (``<name>_B01.tif`` … ``<name>_B12.tif``, ``_B8A``, and
  optionally ``_SCL`` for the scene classification), one folder per image: the BigEarthNet
  layout. 20 m and 60 m bands are resampled onto the 10 m grid of the 10 m bands.

Every image is put on a 10 m grid in its own (projected) CRS and cut into ``patch_size`` tiles
(centred, the remainder dropped). Integer files are DN; float files are reflectance (converted to
DN with the processing-baseline offset). The acquisition date is read from the name
(``YYYYMMDD``) or the TIFF tags; the processing baseline from an ESA product id (``_N0400_``) or
the date. Optional label rasters lie beside the image as ``<image name><suffix>.tif`` and are
resampled with nearest neighbour. With ``n_dates > 1`` every sub-folder of ``path`` is one
sample whose dated images are stacked on the grid of the first.

The dataset holds the configured ``bands`` that the files hold (never a filled band); an image
lacking one of them is skipped ("missing bands"). Label values are mapped to the dataset's own
classes by ``label_classes`` (``ignore_values``: no label); an unmapped value fails the import.

A bad file (unreadable, wrong band count, no CRS, no date, too small, missing bands or labels) is
reported by name with the reason and skipped; it never stops the import.

Modules: :mod:`.files` (finding images, their bands and dates), :mod:`.reader` (reading an
image onto its 10 m grid) and :mod:`.source` (samples, patches and labels into dataset chunks).
"""

"""Inference: turn a segmentation model into georeferenced maps.

* :mod:`~s2ssl.inference.segmenter` — the :class:`Segmenter` protocol a model implements, its
  validation, :class:`TorchSegmenter` (adapter for a torch module), device selection;
* :mod:`~s2ssl.inference.tiling` — sliding-window prediction with overlap blending, block-wise
  so rasters larger than memory work;
* :mod:`~s2ssl.inference.bandmatch` — an input's bands by name (descriptions, a user's band list,
  an unambiguous count) and the model's bands selected from them by name;
* :mod:`~s2ssl.inference.rasters` — GeoTIFF input: band names, DN → reflectance, validity;
* :mod:`~s2ssl.inference.maps` — COG class maps with colours and names, probabilities, areas,
  quicklooks;
* :mod:`~s2ssl.inference.predict` — GeoTIFFs: :func:`predict_raster`, :func:`predict_rasters`;
* :mod:`~s2ssl.inference.predict_store` — samples of a store dataset: :func:`predict_store`;
* :mod:`~s2ssl.inference.outputs` — the output files, :class:`PredictionResult` and the helpers
  they share;
* :mod:`~s2ssl.inference.dispatch` — :func:`predict_maps`, from a model and an input (GeoTIFF,
  folder, store dataset, or an area to fetch) to maps: what ``s2ssl predict`` runs.

Import the submodules directly; this package imports nothing heavy itself.
"""

"""Inference: turn a segmentation model into georeferenced maps.

* :mod:`~s2ssl.inference.segmenter` — the :class:`Segmenter` protocol a model implements, its
  validation, :class:`TorchSegmenter` (adapter for a torch module), device selection;
* :mod:`~s2ssl.inference.tiling` — sliding-window prediction with overlap blending, block-wise
  so rasters larger than memory work;
* :mod:`~s2ssl.inference.rasters` — GeoTIFF input: band mapping, DN → reflectance, validity;
* :mod:`~s2ssl.inference.maps` — COG class maps with colours and names, probabilities, areas,
  quicklooks;
* :mod:`~s2ssl.inference.predict` — :func:`predict_raster`, :func:`predict_rasters`,
  :func:`predict_store`.

Import the submodules directly; this package imports nothing heavy itself.
"""

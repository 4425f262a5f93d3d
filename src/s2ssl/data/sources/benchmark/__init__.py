"""Published Sentinel-2 benchmarks read from their own download layouts (EuroSAT MS, PASTIS,
BigEarthNet v2 and v1).

Each reader module enumerates the samples of a download
(:class:`~s2ssl.data.sources.benchmark.common.Inventory`: the complete samples and what a
partial download lacks) and reads one sample as ``uint16`` DN in Sentinel-2 band order with its
band names, labels and split. A file that does not fit the published layout raises
``ValueError`` naming the file and what was expected. :mod:`.source` imports a download into
the store (``fetch.source: benchmark``). See ``docs/benchmarks.md``.
"""

from s2ssl.data.sources.benchmark.bigearthnet import (
    BIGEARTHNET_BANDS,
    BIGEARTHNET_CLASSES,
    BIGEARTHNET_V1_TO_19,
    BigEarthNetPatch,
    list_bigearthnet,
    multi_hot,
    read_bigearthnet,
    read_bigearthnet_reference_map,
)
from s2ssl.data.sources.benchmark.bigearthnet_v1 import list_bigearthnet_v1, split_bigearthnet_v1
from s2ssl.data.sources.benchmark.common import Incomplete, Inventory
from s2ssl.data.sources.benchmark.eurosat import (
    EUROSAT_CLASSES,
    EUROSAT_FILE_BANDS,
    EuroSATSample,
    list_eurosat,
    read_eurosat,
)
from s2ssl.data.sources.benchmark.pastis import (
    PASTIS_CLASSES,
    PASTIS_FILE_BANDS,
    PastisPatch,
    PastisSample,
    list_pastis,
    read_pastis,
)

__all__ = [
    "BIGEARTHNET_BANDS",
    "BIGEARTHNET_CLASSES",
    "BIGEARTHNET_V1_TO_19",
    "EUROSAT_CLASSES",
    "EUROSAT_FILE_BANDS",
    "PASTIS_CLASSES",
    "PASTIS_FILE_BANDS",
    "BigEarthNetPatch",
    "EuroSATSample",
    "Incomplete",
    "Inventory",
    "PastisPatch",
    "PastisSample",
    "list_bigearthnet",
    "list_bigearthnet_v1",
    "list_eurosat",
    "list_pastis",
    "multi_hot",
    "read_bigearthnet",
    "read_bigearthnet_reference_map",
    "read_eurosat",
    "read_pastis",
    "split_bigearthnet_v1",
]

"""s2ssl: contrastive pre-training of Sentinel-2 models (SeCo, Embedding Earth, CSCL) as a
reproducible DVC / MLflow / Prefect pipeline."""

__version__ = "0.1.0"

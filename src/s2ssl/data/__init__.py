"""Datasets on disk: sharded, memory-mappable array stores with a parquet index, and torch views."""

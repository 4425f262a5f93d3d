"""Data validation: a per-sample profile table (``profile.py``) checked by a great-expectations
suite (``expectations.py``, the only importer of great_expectations)."""

"""Imagery sources for the ``fetch`` stage: each turns a validated config into store datasets."""

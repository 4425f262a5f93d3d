"""``python -m s2ssl.cli``: the ``s2ssl`` command."""

from s2ssl.cli import app

app()

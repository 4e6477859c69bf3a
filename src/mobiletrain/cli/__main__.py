"""``python -m mobiletrain.cli``: the same as the ``mobiletrain`` command."""

from mobiletrain.cli.main import app

app()

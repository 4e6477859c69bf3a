"""The product's entry points: the ``mobiletrain`` command line, the demo and the device
simulator. They build on the SDK (:mod:`mobiletrain.client`), which never imports them.

``app`` is the console script (``mobiletrain = "mobiletrain.cli:app"``); ``python -m
mobiletrain.cli`` runs it too.
"""

from mobiletrain.cli.common import console
from mobiletrain.cli.main import QUICK_START, app

__all__ = ["QUICK_START", "app", "console"]

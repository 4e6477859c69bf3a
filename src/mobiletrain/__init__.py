"""mobiletrain: a self-hosted training server for mobile apps."""

__version__ = "0.1.0"

"""Core services: the plain-Python operations both transports call.

Adapters (gRPC, REST) convert wire types to the arguments below and the results back; all rules
live here, once. One module per resource: :mod:`.projects`, :mod:`.datasets`, :mod:`.training`,
:mod:`.models`; the shared paging rule in :mod:`.common`. This package's names are the public
API adapters and the composition root import.
"""

from mobiletrain.core.services.common import check_page_size, parse_page_token
from mobiletrain.core.services.datasets import (
    BoxStats,
    DatasetService,
    IncomingSample,
    damaged_sample_error,
)
from mobiletrain.core.services.models import (
    DEFAULT_RELEASES_LIMIT,
    DEFAULT_TOP_K,
    PREDICT_FORMATS,
    ModelService,
    Prediction,
)
from mobiletrain.core.services.projects import ProjectService
from mobiletrain.core.services.training import EventPage, TrainingService

__all__ = [
    "DEFAULT_RELEASES_LIMIT",
    "DEFAULT_TOP_K",
    "PREDICT_FORMATS",
    "BoxStats",
    "DatasetService",
    "EventPage",
    "IncomingSample",
    "ModelService",
    "Prediction",
    "ProjectService",
    "TrainingService",
    "check_page_size",
    "damaged_sample_error",
    "parse_page_token",
]

"""FedProx (Li et al. 2020): FedAvg on the server; devices add the proximal term
``mu/2 * |w - w_global|^2`` to their loss (the train-step model's ``mu`` and ``anchor``
inputs), which keeps heterogeneous devices from drifting far from the global model."""

from __future__ import annotations

from typing import Any

from mobiletrain.federated.config import StrategyName
from mobiletrain.federated.fedavg import FedAvg
from mobiletrain.federated.strategy import register_strategy


@register_strategy
class FedProx(FedAvg):
    """FedAvg aggregation plus ``mu`` for the devices."""

    name = StrategyName.FEDPROX

    def device_settings(self) -> dict[str, Any]:
        return {"mu": self.config.proximal_mu}

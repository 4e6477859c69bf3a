"""``Settings.executor`` picks the executor; unknown names are refused with the allowed ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobiletrain.compute.executor import LocalExecutor
from mobiletrain.config import Settings
from mobiletrain.core.events import EventHub
from mobiletrain.store.sql import SqlMetadataStore
from mobiletrain.wiring import build_executor


def test_executor_by_name(tmp_path: Path) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    hub = EventHub(store)
    assert isinstance(build_executor(Settings(data_dir=tmp_path), store, hub), LocalExecutor)
    with pytest.raises(ValueError, match="allowed: local, ray"):
        build_executor(Settings(data_dir=tmp_path, executor="kubernetes"), store, hub)
    store.close()


def test_ray_executor_settings(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray executor needs ray (requirements.lock)")
    from mobiletrain.compute.ray_executor import RayExecutor

    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    settings = Settings(
        data_dir=tmp_path,
        executor="ray",
        ray_address="127.0.0.1:6379",
        ray_gpus_per_worker=1,
        ray_memory_per_worker_mb=512,
    )
    executor = build_executor(settings, store, EventHub(store))  # connects only on start()
    assert isinstance(executor, RayExecutor)
    assert executor.address == "127.0.0.1:6379"
    assert executor._bundle() == {"CPU": 1.0, "GPU": 1.0, "memory": 512 * 2**20}
    store.close()


def test_workers_hyperparameter_is_validated() -> None:
    from mobiletrain.core.errors import MobiletrainError
    from mobiletrain.core.types import Hyperparameters

    Hyperparameters(workers=4).validate()
    with pytest.raises(MobiletrainError, match=r"workers must be in 1\.\.64"):
        Hyperparameters(workers=0).validate()

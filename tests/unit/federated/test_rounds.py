"""The round state machine and the session configuration."""

from __future__ import annotations

import numpy as np
import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.federated.config import FederatedConfig, StragglerPolicy, StrategyName
from mobiletrain.federated.rounds import RoundPhase, RoundState, sample_size, select_devices
from mobiletrain.federated.validation import RejectReason

DEVICES = [f"d{i}" for i in range(10)]


def open_round(selected: list[str] = DEVICES, deadline: float = 100.0) -> RoundState:
    return RoundState(number=3, selected=list(selected), opened_at=0.0, deadline=deadline)


def test_selection_respects_minimums_and_fraction() -> None:
    config = FederatedConfig(min_devices=2, min_available_devices=4, fraction=0.3)
    assert sample_size(3, config) == 0
    assert sample_size(4, config) == 2  # ceil(1.2) = 2 = min_devices
    assert sample_size(10, config) == 3
    rng = np.random.default_rng(0)
    picked = select_devices(DEVICES, config, rng)
    assert len(picked) == 3 and set(picked) <= set(DEVICES)
    assert select_devices(DEVICES[:3], config, rng) == []
    everyone = select_devices(DEVICES, FederatedConfig(min_available_devices=10), rng)
    assert everyone == sorted(DEVICES)


def test_admission_checks() -> None:
    rnd = open_round(DEVICES[:5])
    assert rnd.admit("d0", 3) is None
    stale = rnd.admit("d0", 2)
    assert stale is not None and stale.reason is RejectReason.STALE_ROUND
    outsider = rnd.admit("d9", 3)
    assert outsider is not None and outsider.reason is RejectReason.NOT_SELECTED
    rnd.accepted["d0"] = 10
    again = rnd.admit("d0", 3)
    assert again is not None and again.reason is RejectReason.DUPLICATE
    rnd.phase = RoundPhase.AGGREGATED
    closed = rnd.admit("d1", 3)
    assert closed is not None and closed.reason is RejectReason.STALE_ROUND


def test_closes_when_everyone_answered_or_at_the_deadline() -> None:
    config = FederatedConfig()
    rnd = open_round(DEVICES[:3])
    assert rnd.should_close(1.0, config) == ""
    rnd.accepted.update({"d0": 5, "d1": 5})
    rnd.failed["d2"] = "out of memory"
    assert rnd.should_close(1.0, config) == "all selected devices answered"
    late = open_round(DEVICES[:3])
    late.accepted["d0"] = 5
    assert late.should_close(99.0, config) == ""
    assert late.should_close(100.0, config) == "deadline passed"


def test_quorum_policy_does_not_wait_for_stragglers() -> None:
    config = FederatedConfig(straggler_policy=StragglerPolicy.QUORUM, min_completion_rate=0.6)
    rnd = open_round()
    rnd.accepted.update({d: 1 for d in DEVICES[:5]})
    assert rnd.should_close(1.0, config) == ""
    rnd.accepted["d5"] = 1
    assert rnd.should_close(1.0, config) == "quorum reached"


def test_decision_uses_the_completion_rate() -> None:
    rnd = open_round()
    rnd.accepted.update({d: 1 for d in DEVICES[:6]})  # 4 of 10 were killed
    phase, reason = rnd.decide(FederatedConfig(min_completion_rate=0.5))
    assert phase is RoundPhase.AGGREGATED and "6/10" in reason
    phase, reason = rnd.decide(FederatedConfig(min_completion_rate=0.8))
    assert phase is RoundPhase.SKIPPED and "below min_completion_rate" in reason
    phase, _ = rnd.decide(FederatedConfig(min_completion_rate=0.5, accept_failures=False))
    assert phase is RoundPhase.SKIPPED
    phase, reason = rnd.decide(FederatedConfig(min_devices=7, min_available_devices=7))
    assert phase is RoundPhase.SKIPPED and "min_devices" in reason


def test_rejected_updates_of_selected_devices_count_as_answers() -> None:
    rnd = open_round(DEVICES[:2])
    rnd.accepted["d0"] = 1
    rnd.rejected["d1"] = RejectReason.NOT_FINITE.value
    rnd.rejected["d7"] = RejectReason.NOT_SELECTED.value  # not selected: not an answer
    assert rnd.answered == {"d0", "d1"}
    assert rnd.should_close(0.0, FederatedConfig()) == "all selected devices answered"
    assert rnd.completion_rate == 0.5


def test_config_validation_and_json() -> None:
    config = FederatedConfig.from_dict({"strategy": "trimmed-mean", "hidden": [32, 16]})
    assert config.strategy is StrategyName.TRIMMED_MEAN and config.hidden == [32, 16]
    config.validate()
    assert FederatedConfig.from_dict(config.to_dict()) == config
    for bad in (
        {"rounds": 0},
        {"fraction": 0},
        {"min_devices": 3, "min_available_devices": 2},
        {"noise_multiplier": 1.0},
        {"trim_fraction": 0.5},
        {"hidden": [0]},
    ):
        with pytest.raises(MobiletrainError) as info:
            FederatedConfig.from_dict(bad).validate()
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(MobiletrainError, match="allowed"):
        FederatedConfig.from_dict({"strategy": "krum"})
    with pytest.raises(MobiletrainError, match="unknown federated settings"):
        FederatedConfig.from_dict({"rounds": 2, "colour": "blue"})

"""The routing spec itself, against the shared table both engines are held to."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components import routing

CASES = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "routing_cases.yaml").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_receivers_for(example_config, case) -> None:
    assert routing.receivers_for(example_config.alerting, case["labels"]) == tuple(case["receivers"])


def test_critical_is_never_muted_by_maintenance(example_config) -> None:
    critical = [r for r in routing.routes(example_config.alerting) if ("severity", "critical") in r.matchers]
    assert critical and all(not r.mute_time_intervals for r in critical)
    warning = [r for r in routing.routes(example_config.alerting) if ("severity", "warning") in r.matchers]
    assert all(r.mute_time_intervals == ("sunday-patching",) for r in warning)

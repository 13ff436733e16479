"""The lab at test speed: the rendered configs with every alerting timing divided by SPEEDUP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.lab import Lab

# 15s scrape/eval -> 1s, TargetDown `for: 3m30s` -> 14s, critical group_wait 15s -> 1s, group_interval
# 1m -> 4s; repeat_interval stays production-sized (1h), so any second notification is a bug.
SPEEDUP = 15


@pytest.fixture
def lab(example_config) -> Iterator[Lab]:
    with Lab(example_config, speedup=SPEEDUP) as running:
        yield running

"""make bench-alerts' derived worst case is docs/alerting.md's table for the bench's own targets."""

from __future__ import annotations

from components.config import StackConfig
from tools.bench_alerts import BOUND_SECONDS, worst_case_terms


def test_the_derived_worst_case_of_a_non_node_target_is_295s_within_the_bound(example_config: StackConfig) -> None:
    terms = dict(worst_case_terms(example_config))
    assert terms["pending for `for` (TargetDown, a non-node target)"] == 240  # 3m30s + 15s + 15s
    assert sum(terms.values()) == 295 <= BOUND_SECONDS

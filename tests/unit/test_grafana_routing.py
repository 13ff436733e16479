"""Grafana's notification policy sends every label set where the routing spec (and so
alertmanager.yml, proven with amtool by the alerting tests) sends it.

The tree evaluated here is the one recorded in the plan: exactly what the provider receives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import routing
from components.grafana import policy
from tools.plan import engine

CASES = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "routing_cases.yaml").read_text())
POLICY_TYPE = "grafana:alerting/notificationPolicy:NotificationPolicy"


def from_inputs(node: dict[str, Any]) -> policy.Policy:
    """The provider's inputs (camelCase, as recorded in plan.json) back into a Policy."""
    return policy.Policy(
        contact_point=node.get("contactPoint"),
        matchers=tuple(policy.Matcher(m["label"], m["match"], m["value"]) for m in node.get("matchers", [])),
        continue_=bool(node.get("continue", False)),
        group_by=tuple(node.get("groupBies", [])),
        mute_timings=tuple(node.get("muteTimings", [])),
        policies=tuple(from_inputs(child) for child in node.get("policies", [])),
    )


@pytest.fixture(scope="module")
def planned_tree(example_plan: engine.PlanResult) -> policy.Policy:
    return from_inputs(example_plan.one(POLICY_TYPE).inputs)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_grafana_policy_matches_the_routing_table(planned_tree, example_config, case) -> None:
    got = policy.receivers(planned_tree, case["labels"])
    assert got == tuple(case["receivers"])
    assert got == routing.receivers_for(example_config.alerting, case["labels"])


LABELS = st.fixed_dictionaries(
    {},
    optional={
        "alertname": st.sampled_from(["Watchdog", "CriticalAlertUnacknowledged", "TargetDown", "BackupTooOld"]),
        "severity": st.sampled_from(["critical", "warning", "info", "page", ""]),
        "service": st.sampled_from(["media", "git", "monitoring", "backup", "dns", ""]),
        "instance": st.sampled_from(["10.0.10.110:9100", "x"]),
        "escalation": st.sampled_from(["unacknowledged", ""]),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=LABELS)
def test_grafana_policy_agrees_with_the_spec_on_any_label_set(planned_tree, example_config, labels) -> None:
    assert policy.receivers(planned_tree, labels) == routing.receivers_for(example_config.alerting, labels)


def _walk(node: policy.Policy, inherited_mutes: tuple[str, ...] = ()) -> list[tuple[policy.Policy, tuple[str, ...]]]:
    out = [(node, node.mute_timings)]
    for child in node.policies:
        out += _walk(child, node.mute_timings)
    return out


def test_critical_alerts_are_never_muted(planned_tree) -> None:
    critical = [p for p in planned_tree.policies if policy.Matcher("severity", "=", "critical") in p.matchers]
    assert critical
    for route in critical:
        assert all(not mutes for _, mutes in _walk(route)), "a maintenance window must not mute critical alerts"


def test_warnings_are_muted_by_maintenance_windows(planned_tree, example_plan) -> None:
    windows = {r.inputs["name"] for r in example_plan.find("grafana:alerting/muteTiming:MuteTiming")}
    assert windows == {"sunday-patching"}
    warning = [p for p in planned_tree.policies if policy.Matcher("severity", "=", "warning") in p.matchers]
    assert warning and all(set(p.mute_timings) == windows for p in warning)


def test_policy_names_only_existing_contact_points(planned_tree, example_plan) -> None:
    names = {r.inputs["name"] for r in example_plan.find("grafana:alerting/contactPoint:ContactPoint")}
    used = {p.contact_point for p, _ in _walk(planned_tree) if p.contact_point}
    assert used <= names


# The evaluator itself, on small trees whose answers follow from Grafana's documented semantics.
SEV = policy.Matcher("severity", "=", "critical")
CRITICAL = {"severity": "critical"}


def root(*children: policy.Policy) -> policy.Policy:
    return policy.Policy(contact_point="root", policies=children)


def to(contact_point: str | None, *matchers: policy.Matcher, **kwargs: Any) -> policy.Policy:
    return policy.Policy(contact_point=contact_point, matchers=matchers, **kwargs)


SEMANTICS = {
    "root-only": (root(), {"x": "1"}, ("root",)),
    "child": (root(to("c", SEV)), CRITICAL, ("c",)),
    "no-child-matches": (root(to("c", SEV)), {"severity": "info"}, ("root",)),
    "inherit-contact-point": (root(to(None, SEV)), CRITICAL, ("root",)),
    "fan-out": (root(to(None, SEV, policies=(to("a", continue_=True), to("b")))), CRITICAL, ("a", "b")),
    "first-match-wins": (root(to("c", SEV), to("d")), CRITICAL, ("c",)),
    "continue": (root(to("c", SEV, continue_=True), to("d")), CRITICAL, ("c", "d")),
    "regex": (root(to("c", policy.Matcher("service", "=~", "med.*"))), {"service": "media"}, ("c",)),
    "not-equal-missing-label": (root(to("c", policy.Matcher("service", "!=", "media"))), {}, ("c",)),
}


@pytest.mark.parametrize(("tree", "labels", "expected"), SEMANTICS.values(), ids=SEMANTICS.keys())
def test_grafana_matching_semantics(tree: policy.Policy, labels: dict[str, str], expected: tuple[str, ...]) -> None:
    assert policy.receivers(tree, labels) == expected

"""Grafana's notification policy tree, rendered from the routing spec (components/routing.py).

Pure: :func:`policy_tree` turns ``routes(alerting)`` into the nested structure the Grafana
component hands to ``grafana.alerting.NotificationPolicy``, and :func:`receivers` evaluates a
tree with Grafana's matching semantics (those of Alertmanager's dispatcher, which Grafana
embeds), so a test can prove the tree sends every label set where ``routing.receivers_for`` does.

Shape: one child policy per route, in order, without ``continue`` (first match wins, as in the
spec). A route with several receivers gets one leaf per receiver under it, all but the last with
``continue`` (a Grafana policy names a single contact point). A last catch-all child sends
everything else to the warning default, as the spec's fallback does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from components import routing
from components.config import AlertingSection


@dataclass(frozen=True)
class Matcher:
    label: str
    match: str
    value: str

    def holds(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.match == "=":
            return actual == self.value
        if self.match == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.match == "=~" else not found


@dataclass(frozen=True)
class Policy:
    """One node of the tree; unset timing fields and contact point are inherited from the parent."""

    contact_point: str | None = None
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    group_by: tuple[str, ...] = ()
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    mute_timings: tuple[str, ...] = ()
    policies: tuple[Policy, ...] = field(default=())

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.holds(labels) for m in self.matchers)


def _route_policy(route: routing.Route) -> Policy:
    matchers = tuple(Matcher(label, "=", value) for label, value in route.matchers)
    timings = {
        "group_by": route.group_by,
        "group_wait": route.group_wait,
        "group_interval": route.group_interval,
        "repeat_interval": route.repeat_interval,
        "mute_timings": route.mute_time_intervals,
    }
    if len(route.receivers) == 1:
        return Policy(contact_point=route.receivers[0], matchers=matchers, **timings)  # type: ignore[arg-type]
    leaves = tuple(
        Policy(
            contact_point=receiver,
            continue_=i < len(route.receivers) - 1,
            mute_timings=route.mute_time_intervals,
        )
        for i, receiver in enumerate(route.receivers)
    )
    return Policy(matchers=matchers, policies=leaves, **timings)  # type: ignore[arg-type]


def policy_tree(alerting: AlertingSection) -> Policy:
    """The root policy: routes in spec order, then the catch-all fallback."""
    default = alerting.routing.warning
    fallback = routing.Route(
        name="fallback",
        matchers=(),
        receivers=default.receivers,
        group_by=default.group_by,
        group_wait=default.group_wait,
        group_interval=default.group_interval,
        repeat_interval=default.repeat_interval,
    )
    children = tuple(_route_policy(route) for route in (*routing.routes(alerting), fallback))
    return Policy(
        contact_point=default.receivers[0],
        group_by=default.group_by,
        group_wait=default.group_wait,
        group_interval=default.group_interval,
        repeat_interval=default.repeat_interval,
        policies=children,
    )


def _matching(policy: Policy, labels: dict[str, str], inherited: str | None) -> list[str]:
    """Alertmanager's Route.Match: children in order, stop at the first match without continue;
    a node none of whose children match is itself the match."""
    if not policy.matches(labels):
        return []
    receiver = policy.contact_point or inherited
    found: list[str] = []
    for child in policy.policies:
        matched = _matching(child, labels, receiver)
        found += matched
        if matched and not child.continue_:
            break
    if not found:
        if receiver is None:
            raise ValueError("a matching policy has no contact point and none to inherit")
        found = [receiver]
    return found


def receivers(tree: Policy, labels: dict[str, str]) -> tuple[str, ...]:
    """Contact points a Grafana alert with these labels is sent to (in order, each once)."""
    return tuple(dict.fromkeys(_matching(tree, labels, None)))

"""Semantic checks: values each valid alone that cannot work together. One parametrized case per
rule; the message names the field and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alerting_timers
from tests.conftest import load_sections

Edit = Callable[[dict[str, Any]], None]


def _silence_policy(s: dict[str, Any]) -> dict[str, Any]:
    return s["alerting"].setdefault("silence_policy", {})


LOAD_CASES: list[tuple[str, Edit, str, str]] = [
    (
        "protected-alerts-empty",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", []),
        "alerting.silence_policy.protected_alerts",
        "must include Watchdog",
    ),
    (
        "protected-alerts-without-watchdog",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", ["TargetDown"]),
        "alerting.silence_policy.protected_alerts",
        "must include Watchdog",
    ),
    (
        "protected-alert-not-a-name",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", ["Watchdog", "Target Down"]),
        "alerting.silence_policy.protected_alerts",
        "is not an alert name",
    ),
    (
        "protected-alert-twice",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", ["Watchdog", "Watchdog"]),
        "alerting.silence_policy.protected_alerts",
        "list each protected alert once",
    ),
]


@pytest.mark.parametrize(("edit", "path", "fragment"), [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_refused_at_load(edit: Edit, path: str, fragment: str) -> None:
    sections = load_sections()
    edit(sections)
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.validate(sections)
    message = str(caught.value)
    assert path in message and fragment in message, message


def test_a_misspelt_protected_alert_is_refused_with_the_rule_it_meant() -> None:
    """Only the rendered rules know the alert names: the policy document refuses an unknown one."""
    sections = load_sections()
    _silence_policy(sections)["protected_alerts"] = ["Watchdog", "SilencePolicyViolaton"]
    config = stack_config.validate(sections)
    with pytest.raises(stack_config.ConfigError) as caught:
        alerting_timers.policy_document(config, stack_inventory.build(config))
    message = str(caught.value)
    assert "obsstack:alerting.silence_policy.protected_alerts[1]" in message
    assert "did you mean 'SilencePolicyViolation'?" in message


@pytest.mark.parametrize(
    "value",
    ["https://hooks.slack.com/services/T000/B000/tok3nSECRETvalue123", "xoxb-1234-tok3n-SECRET"],
    ids=["slack-webhook-url", "slack-token"],
)
def test_a_rejected_url_secret_value_is_never_echoed(value: str) -> None:
    sections = load_sections()
    receiver = sections["alerting"]["receivers"][0]
    sections["alerting"]["receivers"][0] = {"name": receiver["name"], "type": "slack", "url_secret": value}
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.validate(sections)
    message = str(caught.value)
    assert "receivers[0].url_secret: is not a config key name" in message
    assert "tok3n" not in message and "hooks.slack.com" not in message

"""The silence policy of a stack, from its config (off the host; the host reads the rendered JSON)."""

from __future__ import annotations

import yaml

from components.config import StackConfig, duration_seconds
from components.monitoring.render.rules import rule_files
from tools.silences.policy import Policy


def protected_label_sets(config: StackConfig) -> tuple[dict[str, str], ...]:
    """alertname plus the static labels its rule gives it, for every protected alert."""
    static: dict[str, dict[str, str]] = {}
    for text in rule_files(config).values():
        for group in (yaml.safe_load(text) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    static.setdefault(rule["alert"], {str(k): str(v) for k, v in (rule.get("labels") or {}).items()})
    return tuple(
        {**static.get(name, {}), "alertname": name} for name in config.alerting.silence_policy.protected_alerts
    )


def policy(config: StackConfig) -> Policy:
    spec = config.alerting.silence_policy
    return Policy(
        max_duration=duration_seconds(spec.max_duration),
        maintenance_max_duration=duration_seconds(spec.maintenance_max_duration),
        maintenance_windows=tuple(w.name for w in config.alerting.maintenance_windows),
        protected=protected_label_sets(config),
    )

"""alertmanager.yml for every monitoring host, rendered from the routing spec (components/routing.py).

Each spec route with several receivers becomes sibling routes with ``continue: true`` on all but
the last, so `amtool config routes test` reports exactly the receivers :func:`receivers_for`
promises. Secrets are only referenced through ``*_file`` fields; :func:`secret_files` lists the
0600 files the host component writes from secret config. Field names are those Alertmanager 0.25
(Debian 12) accepts: slack ``api_url_file``, pagerduty ``routing_key_file``, global
``smtp_auth_password_file``, ``http_config.authorization.credentials_file``; webhook ``url_file``
only when a newer Alertmanager is pinned (see ``alertmanager_reads_webhook_url_file``).
"""

from __future__ import annotations

from typing import Any

import yaml

from components import routing
from components.config import (
    AlertingSection,
    MaintenanceWindow,
    Receiver,
    StackConfig,
    alertmanager_reads_webhook_url_file,
)
from components.inventory import Inventory, Upstream, build
from components.render import HostFile, SecretFile

CONFIG_PATH = "/etc/prometheus/alertmanager.yml"
SECRETS_DIR = "/etc/prometheus/alertmanager-secrets"
SERVICE_USER = "prometheus"  # Debian's alertmanager runs as prometheus and must read its secrets

# Labels that identify "the same problem" across severities (a missing label equals a missing one).
TWIN_LABELS = ("alertname", "service", "instance", "asset", "vmid", "mountpoint", "datastore")
# TargetDown explains every other alert of its instance, except the ones that must always get out.
NEVER_INHIBITED = (routing.WATCHDOG, routing.ESCALATION_ALERT, "TargetDown")
UPSTREAM_ALERT = "UpstreamDown"
# A host whose node exporter is down is down (powered off, crashed, unplugged): its node job's
# TargetDown is the one page, and every other alert of the same asset (its probes, its other
# exporters' TargetDown) is explained by it. Matching on `instance` alone missed them: a probe's
# instance is its target (`10.0.10.53:53`, a URL), not the node exporter's address. Found by a
# twin of the example homelab booted as systemd hosts (a guest powered off, a replica killed).
# The node job's own alert is never a target (`job!="node"`), so it cannot inhibit itself; nor is
# UpstreamDown, which inhibits the upstream's own TargetDown (dependency_inhibitions): muting each
# other, a dead PVE node would page nobody (found by the corpus, 02-pve1-power-loss-at-night).
HOST_DOWN_INHIBITION = {
    "source_matchers": ['alertname="TargetDown"', 'job="node"'],
    "target_matchers": [
        f'alertname!~"{routing.WATCHDOG}|{routing.ESCALATION_ALERT}|{UPSTREAM_ALERT}"',
        'job!="node"',
    ],
    "equal": ["asset"],
}

SLACK_TITLE = '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.service }})'  # noqa: E501
SLACK_TEXT = (
    "{{ range .Alerts }}*{{ .Labels.severity }}* {{ .Annotations.summary }}\n"
    "{{ .Annotations.description }}\n<{{ .Annotations.runbook_url }}|runbook>\n{{ end }}"
)


def secret_path(receiver: str, kind: str) -> str:
    return f"{SECRETS_DIR}/{receiver}.{kind}"


SMTP_PASSWORD_PATH = f"{SECRETS_DIR}/smtp.password"


def _secret_refs(alerting: AlertingSection, webhook_url_file: bool) -> list[tuple[str, str]]:
    """(path, secret config key) of every secret file the rendered config references."""
    refs: list[tuple[str, str]] = []
    for r in alerting.receivers:
        if r.url_secret is not None and (r.type == "slack" or webhook_url_file):
            refs.append((secret_path(r.name, "url"), r.url_secret))
        if r.credentials_secret is not None:
            refs.append((secret_path(r.name, "credentials"), r.credentials_secret))
        if r.routing_key_secret is not None:
            refs.append((secret_path(r.name, "routing_key"), r.routing_key_secret))
    if alerting.smtp_password_secret is not None:
        refs.append((SMTP_PASSWORD_PATH, alerting.smtp_password_secret))
    return refs


def _receiver(r: Receiver, webhook_url_file: bool) -> dict[str, Any]:
    if r.type == "slack":
        slack = {
            "api_url_file": secret_path(r.name, "url"),
            "channel": r.channel,
            "send_resolved": True,
            "title": SLACK_TITLE,
            "text": SLACK_TEXT,
        }
        return {"name": r.name, "slack_configs": [slack]}
    if r.type == "email":
        email = {"to": ", ".join(r.to), "send_resolved": False, "require_tls": True}
        return {"name": r.name, "email_configs": [email]}
    if r.type == "pagerduty":
        pagerduty = {
            "routing_key_file": secret_path(r.name, "routing_key"),
            "send_resolved": True,
            "severity": '{{ if eq .CommonLabels.severity "critical" }}critical{{ else }}warning{{ end }}',
        }
        return {"name": r.name, "pagerduty_configs": [pagerduty]}
    # webhook and ntfy: ntfy takes Alertmanager's JSON body as the message of a topic URL.
    webhook: dict[str, Any] = {"send_resolved": True, "max_alerts": 0}
    if r.url is not None:
        webhook["url"] = r.url
    elif webhook_url_file:
        webhook["url_file"] = secret_path(r.name, "url")
    if r.credentials_secret is not None:
        webhook["http_config"] = {
            "authorization": {"type": "Bearer", "credentials_file": secret_path(r.name, "credentials")}
        }
    return {"name": r.name, "webhook_configs": [webhook]}


def _route(route: routing.Route, receiver: str, last: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "receiver": receiver,
        "matchers": [f'{label}="{value}"' for label, value in route.matchers],
        "group_by": list(route.group_by),
        "group_wait": route.group_wait,
        "group_interval": route.group_interval,
        "repeat_interval": route.repeat_interval,
    }
    if route.mute_time_intervals:
        out["mute_time_intervals"] = list(route.mute_time_intervals)
    if not last:
        out["continue"] = True
    return out


def _time_interval(window: MaintenanceWindow) -> dict[str, Any]:
    spec: dict[str, Any] = {"location": window.location}
    if window.weekdays:
        spec["weekdays"] = list(window.weekdays)
    if window.times:
        spec["times"] = [{"start_time": t.start_time, "end_time": t.end_time} for t in window.times]
    return {"name": window.name, "time_intervals": [spec]}


def dependency_inhibitions(upstreams: tuple[Upstream, ...]) -> list[dict[str, Any]]:
    """While UpstreamDown fires for an upstream, its dependents' alerts (and their escalations,
    which carry the same asset/job) are inhibited, and so are the upstream's own per-target alerts:
    the outage pages once. Inhibited alerts still fire in Prometheus and show on the dashboards.
    Asset and job names are config ``Name``s ([a-z0-9-]) and job names: no regex metacharacters."""
    rules: list[dict[str, Any]] = []
    for upstream in upstreams:
        source = [f'alertname="{UPSTREAM_ALERT}"', f'upstream="{upstream.name}"']
        if upstream.dependent_assets:
            dependents = f'asset=~"{"|".join(upstream.dependent_assets)}"'
            rules.append({"source_matchers": list(source), "target_matchers": [dependents]})
        if upstream.dependent_jobs:
            dependents = f'job=~"{"|".join(upstream.dependent_jobs)}"'
            rules.append({"source_matchers": list(source), "target_matchers": [dependents]})
        rules.append({"source_matchers": list(source), "target_matchers": _own_alerts(upstream)})
    return rules


def prober_host_down_inhibitions(upstreams: tuple[Upstream, ...]) -> list[dict[str, Any]]:
    """A prober (a monitoring host's blackbox exporter) whose whole host is down is explained by
    that host's node TargetDown: its UpstreamDown is muted with the rest of the asset. Unlike a PVE
    node's or a DNS server's UpstreamDown, it cannot mute the node's TargetDown in return (a
    prober's own alerts are exactly its blackbox target, :func:`_own_alerts`), so this cannot
    leave the outage unpaged. A killed replica paged twice per receiver without it (found by the
    twin, tests/twin: UpstreamDown{upstream="blackbox-mon-2"} beside the node's TargetDown)."""
    probers = [u.name for u in upstreams if u.dependent_jobs]
    if not probers:
        return []
    return [
        {
            "source_matchers": list(HOST_DOWN_INHIBITION["source_matchers"]),
            "target_matchers": [f'alertname="{UPSTREAM_ALERT}"', f'upstream=~"{"|".join(probers)}"'],
            "equal": ["asset"],
        }
    ]


def _own_alerts(upstream: Upstream) -> list[str]:
    """Matchers of the upstream's own per-target alerts: its asset's, or for a prober (on a
    monitoring host, whose other jobs must still page) exactly the prober's target, but not its
    page. An any-of group's page carries the group's name as asset, so matching its members also
    mutes their pages (one page when both resolvers are down), never its own."""
    not_itself = [f'alertname!="{UPSTREAM_ALERT}"', f'unacknowledged_alert!="{UPSTREAM_ALERT}"']
    if upstream.dependent_jobs:
        (job, instance), *_ = upstream.targets
        return [f'job="{job}"', f'instance="{instance}"', *not_itself]
    if upstream.members != (upstream.asset,):
        return [f'asset=~"{"|".join(upstream.members)}"']
    return [f'asset="{upstream.asset}"', *not_itself]


def document(config: StackConfig, inventory: Inventory | None = None) -> dict[str, Any]:
    """alertmanager.yml as a mapping (the lab and tests adjust timings on it)."""
    inventory = inventory or build(config)
    alerting = config.alerting
    webhook_url_file = alertmanager_reads_webhook_url_file(config.monitoring.versions.alertmanager)
    fallback = alerting.routing.warning
    children: list[dict[str, Any]] = []
    for route in routing.routes(alerting):
        for i, receiver in enumerate(route.receivers):
            children.append(_route(route, receiver, last=i == len(route.receivers) - 1))
    # An alert no route matched goes to the warning default (receivers_for's fallback).
    for i, receiver in enumerate(fallback.receivers):
        fallback_route: dict[str, Any] = {"receiver": receiver}
        if i < len(fallback.receivers) - 1:
            fallback_route["continue"] = True
        children.append(fallback_route)

    global_section: dict[str, Any] = {"resolve_timeout": "5m"}
    if alerting.smtp_smarthost:
        global_section.update(smtp_smarthost=alerting.smtp_smarthost, smtp_from=alerting.smtp_from)
        if alerting.smtp_username:
            global_section["smtp_auth_username"] = alerting.smtp_username
        if alerting.smtp_password_secret:
            global_section["smtp_auth_password_file"] = SMTP_PASSWORD_PATH
    doc: dict[str, Any] = {
        "global": global_section,
        "route": {
            "receiver": fallback.receivers[0],
            "group_by": list(fallback.group_by),
            "group_wait": fallback.group_wait,
            "group_interval": fallback.group_interval,
            "repeat_interval": fallback.repeat_interval,
            "routes": children,
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": list(TWIN_LABELS),
            },
            {
                "source_matchers": ['alertname="TargetDown"'],
                "target_matchers": [
                    f'alertname!~"{"|".join(NEVER_INHIBITED)}"',
                    f'{routing.ESCALATION_LABEL[0]}!="{routing.ESCALATION_LABEL[1]}"',
                ],
                "equal": ["instance"],
            },
            *dependency_inhibitions(inventory.upstreams),
            dict(HOST_DOWN_INHIBITION),
            *prober_host_down_inhibitions(inventory.upstreams),
        ],
        "receivers": [_receiver(r, webhook_url_file) for r in alerting.receivers],
    }
    if alerting.maintenance_windows:
        doc["time_intervals"] = [_time_interval(w) for w in alerting.maintenance_windows]
    return doc


def dump(doc: dict[str, Any]) -> str:
    header = "# Rendered by obsstack from the stack's alerting section: edit the config, not this file.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=200)


def render(config: StackConfig, inventory: Inventory) -> str:
    return dump(document(config, inventory))


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    content = render(config, inventory)
    return [HostFile(m.name, CONFIG_PATH, content, mode="0640", group=SERVICE_USER) for m in inventory.monitoring]


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    webhook_url_file = alertmanager_reads_webhook_url_file(config.monitoring.versions.alertmanager)
    refs = _secret_refs(config.alerting, webhook_url_file)
    return [
        SecretFile(m.name, path, key, owner=SERVICE_USER, group=SERVICE_USER)
        for m in inventory.monitoring
        for path, key in refs
    ]

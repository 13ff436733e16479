"""prometheus.yml for each monitoring host, derived from the inventory's scrape jobs.

Targets are ``static_configs`` in the one file, not ``file_sd``: the whole configuration is then
validated by ``promtool check config`` as a unit before it goes live, and a target change is one
content-hash-triggered reload. file_sd would skip validation of the target files and buys
nothing here (Pulumi ships every change anyway).

Every path in the file is relative to it (rules/, tls/, secrets/): Prometheus resolves them
against the config file's directory, so the same text validates in the staging tree, under
build/plan/hosts/<host>/ and in place.
"""

from __future__ import annotations

from typing import Any

from components import routing
from components.config import StackConfig
from components.inventory import Inventory, MonitoringNode, ScrapeJob, Target
from components.render import HostFile, acme, layout, yamlout
from components.render.alerting_timers import ACK_METRIC_RELABEL_CONFIGS
from components.render.rules import rule_files

CA = f"{layout.TLS_SUBDIR}/{layout.CA_FILE}"
API_AUTH = {"username": layout.API_USER, "password_file": f"{layout.SECRETS_SUBDIR}/{layout.API_PASSWORD_FILE}"}
SCRAPE_AUTH = {
    "username": layout.SCRAPE_USER,
    "password_file": f"{layout.SECRETS_SUBDIR}/{layout.SCRAPE_PASSWORD_FILE}",
}

MUTUAL_TLS: dict[str, Any] = {
    "tls_config": {
        "ca_file": CA,
        "cert_file": f"{layout.TLS_SUBDIR}/{layout.CERT_FILE}",
        "key_file": f"{layout.TLS_SUBDIR}/{layout.KEY_FILE}",
    }
}

# Jobs served over TLS and how Prometheus authenticates to them.
TLS_JOBS: dict[str, dict[str, Any]] = {
    "node": {"basic_auth": SCRAPE_AUTH, "tls_config": {"ca_file": CA}},
    "prometheus": {"basic_auth": API_AUTH, "tls_config": {"ca_file": CA}},
    "alertmanager": {"basic_auth": API_AUTH, "tls_config": {"ca_file": CA}},
    # Loki and the monitoring hosts' Alloy require a client certificate (mutual TLS): the host's
    # own certificate serves.
    "loki": MUTUAL_TLS,
    "alloy": MUTUAL_TLS,
    "grafana": {"basic_auth": SCRAPE_AUTH, "tls_config": {"ca_file": CA}},
    "blackbox": {"basic_auth": SCRAPE_AUTH, "tls_config": {"ca_file": CA}},
    "pushgateway": {"basic_auth": SCRAPE_AUTH, "tls_config": {"ca_file": CA}},
}

# What reaches Prometheus from the Pushgateway: each writer's own families, under the job label it
# pushes with (honor_labels keeps it), plus the Pushgateway's own process metrics (no pushed job:
# the target's job=pushgateway). Everything else a writer (or a thief of its password) pushes is
# dropped at scrape time, above all obs_backup_*: a pushed obs_backup_last_success_timestamp_seconds
# would feed BackupTooOld's `max by (vmid)` and hide a failing backup. The drill pushes group
# job="obs_restore_drill" (tools/restore_drill/metrics.py, JOB); push_time_seconds and
# push_failure_time_seconds are the Pushgateway's per-group timestamps (prometheus/pushgateway
# README, "About timestamps"). A `keep` drops every series the anchored regex does not match
# (prometheus docs/configuration/configuration.md, <relabel_config>).
PUSHGATEWAY_WRITER_FAMILIES: dict[str, str] = {"obs_restore_drill": "obs_restore_drill_[a-z_]+"}
PUSHGATEWAY_METRIC_RELABEL_CONFIGS: tuple[dict[str, Any], ...] = (
    {
        "source_labels": ["job", "__name__"],
        "regex": "|".join(
            [
                *(f"{job};({families}|push_time_seconds|push_failure_time_seconds)"
                  for job, families in PUSHGATEWAY_WRITER_FAMILIES.items()),
                "pushgateway;(go|process|pushgateway)_.+",
            ]
        ),
        "action": "keep",
    },
)  # fmt: skip


# Alerts leave every replica without its `replica` external label, so the replicas of a pair send
# identical alerts and the Alertmanager cluster deduplicates them into one notification (with the
# label, each replica's copy is a different alert: two pages). Prometheus applies
# alert_relabel_configs to alerts only, after the external labels, "ensuring a HA pair of
# Prometheus servers with different external labels send identical alerts"
# (prometheus/prometheus docs/configuration/configuration.md, <alert_relabel_configs>; the notifier's
# relabelAlerts adds external labels, then runs these). Series keep `replica`: remote_write and
# federation still get every external label. `labeldrop` removes each label whose *name* matches the
# regex, and relabel regexes are anchored, so exactly `replica` goes (same doc, <relabel_config>).
# Alertmanager identifies an alert by its whole label set (prometheus/alertmanager notify/notify.go,
# hashAlert) and expects every Prometheus to send to every Alertmanager (its README, High
# Availability), which the `alertmanagers` list below does.
#
# The escalation (CriticalAlertUnacknowledged, label escalation="unacknowledged") leaves Prometheus
# named as the alert it escalates: it then carries every label of that alert plus `escalation`, so
# any silence matching the alert (planned work scoped by alertname and instance, an ack) matches
# its escalation too and the secondary is not paged for silenced work (issue 13, defect 3).
# `replace` joins source_labels with ';' and writes the anchored regex's $1 (same doc).
ALERT_RELABEL_CONFIGS: tuple[dict[str, str | list[str]], ...] = (
    {"action": "labeldrop", "regex": "replica"},
    {
        "source_labels": [routing.ESCALATION_LABEL[0], "unacknowledged_alert"],
        "regex": f"{routing.ESCALATION_LABEL[1]};(.+)",
        "target_label": "alertname",
        "replacement": "$1",
    },
)


# With tls.mode acme these listeners serve each monitoring host's ACME certificate for its dns_name
# (components/render/acme.py): Prometheus connects by address still and verifies that name
# (tls_config server_name) against the system store, which on a monitoring host holds the ACME CA's
# roots and the stack CA (the pair served until the first ACME certificate). server_name is per
# scrape config, so each host's target gets a scrape config of its own; the target's `job` label
# keeps the job's name (a target label wins over job_name: prometheus/prometheus
# scrape/target.go, PopulateLabels, "if they are not set already").
ACME_SERVED_JOBS = ("prometheus", "alertmanager", "grafana")


def _by_name(scrape: dict[str, Any], names: dict[str, str | None]) -> list[dict[str, Any]]:
    """One scrape config per target of ``scrape``, each verifying its host's dns_name."""
    groups = scrape["static_configs"]
    split = []
    for group in groups:
        asset = group["labels"]["asset"]
        own = dict(scrape)
        if len(groups) > 1:
            own["job_name"] = f"{scrape['job_name']}-{asset}"
        own["tls_config"] = {"server_name": names[asset]}
        own["static_configs"] = [{**group, "labels": {**group["labels"], "job": scrape["job_name"]}}]
        split.append(own)
    return split


def _scrape_configs(config: StackConfig, inventory: Inventory, node: MonitoringNode) -> list[dict[str, Any]]:
    names = {m.name: m.dns_name for m in inventory.monitoring}
    rendered = []
    for job in inventory.scrape_jobs:
        scrape = _job(job, node, config.monitoring.ports.blackbox)
        if acme.enabled(config) and job.name in ACME_SERVED_JOBS:
            rendered += _by_name(scrape, names)
        else:
            rendered.append(scrape)
    return rendered


def _alertmanagers(config: StackConfig, inventory: Inventory) -> list[dict[str, Any]]:
    """Every Alertmanager of the cluster: Prometheus sends each alert to all of them and their
    gossip deduplicates the notification. With acme, one entry per Alertmanager, verifying its
    host's dns_name."""
    port = config.monitoring.ports.alertmanager
    base: dict[str, Any] = {"scheme": "https", **TLS_JOBS["alertmanager"]}
    if not acme.enabled(config):
        return [{**base, "static_configs": [{"targets": [f"{m.ip}:{port}" for m in inventory.monitoring]}]}]
    return [
        {**base, "tls_config": {"server_name": m.dns_name}, "static_configs": [{"targets": [f"{m.ip}:{port}"]}]}
        for m in inventory.monitoring
    ]


def remote_write_password_file(index: int) -> str:
    return f"{layout.SECRETS_SUBDIR}/remote_write_{index}_password"


def _static(targets: tuple[Target, ...]) -> list[dict[str, Any]]:
    """One group per target: every target carries its own asset/service/tier labels."""
    return [{"targets": [t.address], "labels": dict(sorted(t.labels.items()))} for t in targets]


def _job(job: ScrapeJob, node: MonitoringNode, blackbox_port: int) -> dict[str, Any]:
    scrape: dict[str, Any] = {"job_name": job.name}
    if job.metrics_path != "/metrics":
        scrape["metrics_path"] = job.metrics_path
    # Probe jobs talk to the blackbox exporter (the probed URL is a parameter): its TLS and auth.
    served_by = "blackbox" if job.probe_module else job.name
    scrape["scheme"] = "https" if served_by in TLS_JOBS or job.scheme == "https" else "http"
    scrape.update(TLS_JOBS.get(served_by, {}))
    if job.name == "pushgateway":
        scrape["honor_labels"] = True
        scrape["metric_relabel_configs"] = [dict(c) for c in PUSHGATEWAY_METRIC_RELABEL_CONFIGS]
    if job.name == "node":
        # Acknowledgement series from the monitoring hosts' textfiles carry the alert's own labels.
        scrape["metric_relabel_configs"] = list(ACK_METRIC_RELABEL_CONFIGS)
    params: dict[str, list[str]] = {k: [v] for k, v in job.params}
    if job.probe_module:
        params["module"] = [job.probe_module]
    if params:
        scrape["params"] = params
    scrape["static_configs"] = _static(job.targets)
    # Multi-target exporters (blackbox, pve): the target becomes ?target=, the exporter the address.
    exporter = job.exporter
    if job.probe_module:
        exporter = f"{node.ip}:{blackbox_port}"
    if exporter:
        scrape["relabel_configs"] = [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": exporter},
        ]
    return scrape


def render(
    config: StackConfig,
    inventory: Inventory,
    node: MonitoringNode | None = None,
    *,
    rules: dict[str, str] | None = None,
) -> str:
    """prometheus.yml for ``node`` (default: the first monitoring host); ``rules`` are the stack's
    rule files (file name -> content) when the caller has rendered them already."""
    mon = config.monitoring
    rules = rule_files(config, inventory) if rules is None else rules
    node = node or inventory.monitoring[0]
    document: dict[str, Any] = {
        "global": {
            "scrape_interval": mon.scrape_interval,
            "scrape_timeout": mon.scrape_timeout,
            "evaluation_interval": mon.evaluation_interval,
            # Each replica of a pair scrapes everything; `replica` tells their series apart
            # (dedup in Grafana/Thanos/Mimir), `cluster` tells stacks apart in a shared store.
            "external_labels": {"cluster": config.cluster, "replica": node.replica},
        },
        "alerting": {
            "alert_relabel_configs": [dict(c) for c in ALERT_RELABEL_CONFIGS],
            "alertmanagers": _alertmanagers(config, inventory),
        },
        "rule_files": [f"{layout.RULES_SUBDIR}/{name}" for name in rules],
        "scrape_configs": _scrape_configs(config, inventory, node),
    }
    if mon.remote_write:
        document["remote_write"] = [
            {
                "url": rw.url,
                **(
                    {"basic_auth": {"username": rw.username, "password_file": remote_write_password_file(i)}}
                    if rw.username and rw.password_secret
                    else {}
                ),
                # Replicas write the same series; the store deduplicates on `replica`.
                "queue_config": {"max_samples_per_send": 2000, "capacity": 10000, "max_shards": 20},
            }
            for i, rw in enumerate(mon.remote_write)
        ]
    return yamlout.dump(document)


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    rules = rule_files(config, inventory)
    shipped: list[HostFile] = []
    for node in inventory.monitoring:
        config_text = render(config, inventory, node, rules=rules)
        shipped.append(HostFile(node.name, layout.PROMETHEUS_CONFIG, config_text, mode="0640", group="prometheus"))
        for name, content in rules.items():
            shipped.append(HostFile(node.name, f"{layout.RULES_DIR}/{name}", content, group="prometheus"))
    return shipped

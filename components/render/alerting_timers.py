"""The silence policy check on every monitoring host, the on-call drill on the primary one.

The tools ship as their own source (standard library + python3-requests, no project imports),
run from /usr/local/lib/obsstack, and write textfiles node_exporter serves:
- obs-silence-check.timer: every ``silence_policy.check_every`` -> obs_alerts.prom (every host)
- obs-oncall-drill.timer: monthly (first Tuesday, 10:00 local) -> obs_oncall_drill.prom (the
  primary monitoring host, ``inventory.monitoring[0]``, only: see SINGLETONS)
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
import yaml

from components.config import StackConfig, duration_seconds
from components.inventory import Inventory, build
from components.render import HostFile, layout, sources
from components.render.rules import rule_files

# libyaml's safe loader where PyYAML was built with it (~10x faster; same documents).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
LIB_DIR = "/usr/local/lib/obsstack"
POLICY_PATH = "/etc/obsstack/silence-policy.json"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
UNIT_DIR = "/etc/systemd/system"
DRILL_SCHEDULE = "Tue *-*-01..07 10:00:00"  # first Tuesday of the month, office hours

# The acknowledgement series carry the *alert's* job, instance and service (docs/metrics.md).
# Scraped from node_exporter's textfile without honor_labels, each label that the target also has
# (job, instance, and the inventory's service="monitoring" of the monitoring host) comes out as
# exported_<label>; these relabelings, on the job scraping the monitoring hosts' node exporters,
# put the alert's back (an alert without instance gets none, as the rule's `on(...)` match
# expects). tests/e2e reproduces it with real Prometheus and node_exporter.
ACK_SERIES = "obs_alert_(?:acknowledged|ack_seconds)"
ACK_TARGET_LABELS = ("job", "instance", "service")
ACK_METRIC_RELABEL_CONFIGS: tuple[dict[str, Any], ...] = (
    *(
        {"source_labels": ["__name__", f"exported_{label}"], "regex": f"{ACK_SERIES};(.*)", "target_label": label}
        for label in ACK_TARGET_LABELS
    ),
    {"regex": "exported_(job|instance)", "action": "labeldrop"},
    # Only the ack series lose exported_service: other textfile series keep theirs.
    {"source_labels": ["__name__"], "regex": ACK_SERIES, "target_label": "exported_service", "replacement": ""},
)

_env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)  # noqa: S701

# How the tools reach the host's Alertmanager: TLS with the stack's CA and the API user's basic auth.
ALERTMANAGER_CA_FILE = f"{layout.TLS_DIR}/{layout.CA_FILE}"
ALERTMANAGER_USER = layout.API_USER
ALERTMANAGER_PASSWORD_FILE = f"{layout.SECRETS_DIR}/{layout.API_PASSWORD_FILE}"

WRAPPER = _env.from_string(
    """#!/bin/sh
# {{ name }}: obsstack's {{ module }} (rendered by the Pulumi program; see docs/routing-and-silences.md)
{% for key, value in env.items() %}export {{ key }}="${ {{- key }}:-{{ value }}}"
{% endfor %}export PYTHONPATH={{ lib }}
exec /usr/bin/python3 -m {{ module }} "$@"
"""
)

SERVICE = _env.from_string(
    """[Unit]
Description={{ description }}
Wants=network-online.target
After=network-online.target prometheus-alertmanager.service

[Service]
Type=oneshot
User=prometheus
Group=prometheus
ExecStart={{ exec_start }}
TimeoutStartSec={{ timeout }}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
ReadWritePaths={{ textfile_dir }}
"""
)

TIMER = _env.from_string(
    """[Unit]
Description={{ description }}

[Timer]
{% for line in schedule %}{{ line }}
{% endfor %}Persistent=true

[Install]
WantedBy=timers.target
"""
)


# With two replicas, which tools run on every monitoring host and which once per stack (on the
# primary, ``inventory.monitoring[0]``, like the restore drill in components/render/drill.py):
# - obs-silence-check, per host: read-only (it only GETs alerts and silences from the host's own
#   Alertmanager, and silences are gossiped, so both hosts see the same state) and it feeds local
#   metrics. Each host's run is what keeps obs_alert_acknowledged alive when the other host is
#   down (without it CriticalAlertUnacknowledged would escalate acknowledged alerts), and
#   obs_silence_policy_check_up == 0 on a host tells that host's Alertmanager is unreachable.
# - obs-oncall-drill, singleton: it posts a synthetic critical alert that pages whoever is on call
#   and waits for them to acknowledge it; on every host it would page twice, with two drill ids
#   to acknowledge. Its wrapper, service and timer ship to the primary only, so no host keeps a
#   stale obs_oncall_drill.prom of its own; the shared sources still ship everywhere.
# Names are both the wrapper in /usr/local/bin and the stem of its .service/.timer.
SINGLETONS = frozenset({"obs-oncall-drill"})


def is_primary(inventory: Inventory, host: str) -> bool:
    """The one monitoring host that runs the stack's singletons: the first one."""
    return host == inventory.monitoring[0].name


def shipped_to(inventory: Inventory, host: str, name: str) -> bool:
    """Whether the wrapper or unit ``name`` (``obs-oncall-drill.timer``, ...) ships to ``host``."""
    return name.rsplit(".", 1)[0] not in SINGLETONS or is_primary(inventory, host)


def protected_label_sets(config: StackConfig, inventory: Inventory) -> list[dict[str, str]]:
    """alertname plus the static labels its rule gives it, for every protected alert (Watchdog)."""
    static: dict[str, dict[str, str]] = {}
    for text in rule_files(config, inventory).values():
        for group in (yaml.load(text, Loader=SAFE_LOADER) or {}).get("groups", []):  # noqa: S506 (a safe loader)
            for rule in group.get("rules", []):
                if "alert" in rule:
                    static.setdefault(rule["alert"], {str(k): str(v) for k, v in (rule.get("labels") or {}).items()})
    return [{**static.get(name, {}), "alertname": name} for name in config.alerting.silence_policy.protected_alerts]


def policy_document(config: StackConfig, inventory: Inventory | None = None) -> dict[str, Any]:
    """The silence policy tools/silences enforces (silence-policy.json on the host); the inventory
    is built from config unless the caller has it."""
    spec = config.alerting.silence_policy
    inventory = build(config) if inventory is None else inventory
    return {
        "max_duration_seconds": duration_seconds(spec.max_duration),
        "maintenance_max_duration_seconds": duration_seconds(spec.maintenance_max_duration),
        "maintenance_windows": [w.name for w in config.alerting.maintenance_windows],
        "protected": protected_label_sets(config, inventory),
    }


def _seconds(duration: str) -> str:
    return f"{duration_seconds(duration)}s"


def units(config: StackConfig) -> dict[str, str]:
    """Unit file name -> content."""
    check_every = _seconds(config.alerting.silence_policy.check_every)
    ack_timeout = config.alerting.escalation.ack_timeout
    return {
        "obs-silence-check.service": SERVICE.render(
            description="obsstack silence policy check (obs_alerts.prom)",
            exec_start=f"/usr/local/bin/obs-silences --policy {POLICY_PATH} check --textfile-dir {TEXTFILE_DIR}",
            timeout="60s",
            textfile_dir=TEXTFILE_DIR,
        ),
        "obs-silence-check.timer": TIMER.render(
            description="Run the silence policy check every " + check_every,
            schedule=["OnBootSec=30s", f"OnUnitActiveSec={check_every}", "AccuracySec=1s"],
        ),
        "obs-oncall-drill.service": SERVICE.render(
            description="obsstack on-call drill (obs_oncall_drill.prom)",
            exec_start=f"/usr/local/bin/obs-oncall-drill --textfile-dir {TEXTFILE_DIR} --ack-timeout {ack_timeout}",
            timeout=f"{int(_seconds(ack_timeout)[:-1]) + 120}s",
            textfile_dir=TEXTFILE_DIR,
        ),
        "obs-oncall-drill.timer": TIMER.render(
            description="Monthly on-call drill", schedule=[f"OnCalendar={DRILL_SCHEDULE}"]
        ),
    }


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    policy = json.dumps(policy_document(config, inventory), indent=2, sort_keys=True) + "\n"
    out: list[HostFile] = []
    for mon in inventory.monitoring:
        env = {
            "OBS_ALERTMANAGER_URL": f"https://{mon.ip}:{config.monitoring.ports.alertmanager}",
            "OBS_ALERTMANAGER_CA_FILE": ALERTMANAGER_CA_FILE,
            "OBS_ALERTMANAGER_USER": ALERTMANAGER_USER,
            "OBS_ALERTMANAGER_PASSWORD_FILE": ALERTMANAGER_PASSWORD_FILE,
        }
        out.append(HostFile(mon.name, POLICY_PATH, policy))
        out += [HostFile(mon.name, f"{LIB_DIR}/{src}", text) for src, text in sources.ALERTING_TOOLS.items()]
        for name, module in (("obs-silences", "tools.silences"), ("obs-oncall-drill", "tools.oncall_drill")):
            if shipped_to(inventory, mon.name, name):
                script = WRAPPER.render(name=name, module=module, env=env, lib=LIB_DIR)
                out.append(HostFile(mon.name, f"/usr/local/bin/{name}", script, mode="0755"))
        out += [
            HostFile(mon.name, f"{UNIT_DIR}/{name}", text)
            for name, text in units(config).items()
            if shipped_to(inventory, mon.name, name)
        ]
    return out

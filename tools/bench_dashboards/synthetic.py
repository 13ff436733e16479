"""24 hours of synthetic metrics for N hosts, written as OpenMetrics for promtool to backfill.

The series have the names and labels the real exporters and the project's own writers produce
(node_exporter with asset/service/tier target labels, blackbox probes, pve- and PBS-exporter,
obs_* textfile metrics, Alertmanager, ALERTS), so every dashboard query touches realistic data.
Fast-moving series are sampled at the scrape interval, slow ones every minute.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

SERVICES = ("git", "nextcloud", "database", "dns", "home-automation", "media", "storage", "network", "dev", "proxmox")
CPUS = 2
SLOW_STEP = 60
_RNG = random.Random(7)  # noqa: S311 (reproducible synthetic data, not security-relevant)


@dataclass(frozen=True)
class Series:
    name: str
    labels: str
    kind: str  # counter | gauge | constant | outage (base value, 0 for an hour in the afternoon)
    base: float
    rate: float  # counter: increase per second; gauge: amplitude of the daily wave


@dataclass
class Written:
    series: int = 0
    samples: int = 0


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def _host_series(i: int) -> Iterator[tuple[Series, int]]:
    service = SERVICES[i % len(SERVICES)]
    target = {"job": "node", "instance": f"10.0.1.{i}:9100", "asset": f"host-{i:02d}", "service": service}
    target["tier"] = ("critical", "important", "best-effort")[i % 3]
    lab = _labels(**target)
    busy = 0.05 + 0.5 * _RNG.random()
    for cpu in range(CPUS):
        yield Series("node_cpu_seconds_total", f'{lab},cpu="{cpu}",mode="idle"', "counter", 1e6, 1 - busy), 0
        yield Series("node_cpu_seconds_total", f'{lab},cpu="{cpu}",mode="user"', "counter", 1e5, busy), 0
    yield Series("node_memory_MemTotal_bytes", lab, "constant", 16e9, 0), SLOW_STEP
    yield Series("node_memory_MemAvailable_bytes", lab, "gauge", 8e9, 3e9), 0
    yield Series("node_load1", lab, "gauge", 1.0, 0.8), 0
    yield Series("node_boot_time_seconds", lab, "constant", 1.7e9, 0), SLOW_STEP
    yield Series("node_textfile_scrape_error", lab, "constant", 0, 0), SLOW_STEP
    yield Series("up", lab, "constant", 1, 0), 0
    for mount in ("/", "/var"):
        fs = f'{lab},device="/dev/vda1",fstype="ext4",mountpoint="{mount}"'
        yield Series("node_filesystem_size_bytes", fs, "constant", 64e9, 0), SLOW_STEP
        yield Series("node_filesystem_avail_bytes", fs, "gauge", 30e9, 2e9), 0
    for device in ("eth0", "lo"):
        yield Series("node_network_receive_bytes_total", f'{lab},device="{device}"', "counter", 1e9, 2e5), 0
        yield Series("node_network_transmit_bytes_total", f'{lab},device="{device}"', "counter", 1e9, 1e5), 0
    yield Series("node_disk_read_bytes_total", f'{lab},device="vda"', "counter", 1e9, 5e5), 0
    yield Series("node_disk_written_bytes_total", f'{lab},device="vda"', "counter", 1e9, 8e5), 0


def _probe_series() -> Iterator[tuple[Series, int]]:
    for i, service in enumerate(SERVICES):
        for module in ("http_2xx", "tcp_connect"):
            lab = _labels(job=f"blackbox_{module}", instance=f"svc-{i}-{module}", asset=f"svc-{i}", service=service)
            yield Series("probe_success", lab, "outage" if service == "media" else "constant", 1, 0), 0
            yield Series("probe_duration_seconds", lab, "gauge", 0.2, 0.1), 0
            yield Series("up", lab, "constant", 1, 0), 0


def _pve_series(hosts: int) -> Iterator[tuple[Series, int]]:
    job = 'job="pve",instance="pve1"'
    for n in range(1, 4):
        node = f'{job},id="node/pve{n}"'
        yield Series("pve_node_info", f'{node},level="",name="pve{n}",nodeid="{n}"', "constant", 1, 0), SLOW_STEP
        yield Series("pve_up", node, "constant", 1, 0), 0
        yield Series("pve_cpu_usage_ratio", node, "gauge", 0.3, 0.2), 0
        yield Series("pve_memory_size_bytes", node, "constant", 128e9, 0), SLOW_STEP
        yield Series("pve_memory_usage_bytes", node, "gauge", 64e9, 8e9), 0
        for storage in ("local", "local-lvm"):
            sid = f'{job},id="storage/pve{n}/{storage}"'
            yield Series("pve_disk_size_bytes", sid, "constant", 1e12, 0), SLOW_STEP
            yield Series("pve_disk_usage_bytes", sid, "gauge", 5e11, 1e10), 0
    for g in range(hosts):
        vmid = 100 + g
        gid = f'{job},id="qemu/{vmid}"'
        info = f'{gid},name="host-{g:02d}",node="pve{g % 3 + 1}",type="qemu",tags=""'
        yield Series("pve_guest_info", info, "constant", 1, 0), SLOW_STEP
        yield Series("pve_up", gid, "constant", 1, 0), 0
        yield Series("pve_cpu_usage_ratio", gid, "gauge", 0.2, 0.15), 0
        yield Series("pve_memory_usage_bytes", gid, "gauge", 4e9, 1e9), 0
        yield Series("pve_uptime_seconds", gid, "counter", 1e6, 1), 0
        yield Series("pve_network_receive_bytes_total", gid, "counter", 1e9, 1e5), 0
        yield Series("pve_network_transmit_bytes_total", gid, "counter", 1e9, 5e4), 0
        yield Series("pve_disk_read_bytes_total", gid, "counter", 1e9, 2e5), 0
        yield Series("pve_disk_written_bytes_total", gid, "counter", 1e9, 4e5), 0


# PBS series come through the PBS host's node_exporter textfile (components/render/pbs_collector.py).
PBS_TARGET = 'job="node",instance="10.0.10.20:9100"'


def _backup_series(hosts: int, end: int) -> Iterator[tuple[Series, int]]:
    for datastore in ("main", "offsite-copy"):
        ds = f'{PBS_TARGET},datastore="{datastore}"'
        yield Series("pbs_size", ds, "constant", 4e12, 0), SLOW_STEP
        yield Series("pbs_used", ds, "counter", 1.8e12, 1e4), SLOW_STEP
        for job_type in ("gc", "prune", "verify"):
            lab = f'{ds},job_type="{job_type}"'
            yield Series("obs_pbs_job_last_success_timestamp_seconds", lab, "constant", end - 30000, 0), SLOW_STEP
            yield Series("obs_pbs_job_last_status", lab, "constant", 1, 0), SLOW_STEP
    for g in range(hosts):
        vmid, node = 100 + g, f"pve{g % 3 + 1}"
        lab = f'job="node",instance="{node}:9100",vmid="{vmid}",node="{node}",storage="pbs-main"'
        yield Series("obs_backup_last_success_timestamp_seconds", lab, "constant", end - 40000, 0), SLOW_STEP
        yield Series("obs_backup_last_status", lab, "constant", 1, 0), SLOW_STEP
        yield Series("obs_backup_last_duration_seconds", lab, "gauge", 300, 60), SLOW_STEP
        snap = f'{PBS_TARGET},datastore="main",namespace="",vm_id="{vmid}",vm_name="host-{g:02d}"'
        yield Series("pbs_snapshot_vm_last_timestamp", snap, "constant", end - 39000, 0), SLOW_STEP
        yield Series("pbs_snapshot_vm_last_verify", snap, "constant", 1, 0), SLOW_STEP
    for n in range(1, 4):
        yield Series("obs_backup_job_last_status", f'job="node",node="pve{n}"', "constant", 1, 0), SLOW_STEP
    for target in ("gitea", "nextcloud", "postgres"):
        lab = f'job="pushgateway",target="{target}"'
        yield Series("obs_restore_drill_last_success_timestamp_seconds", lab, "constant", end - 5 * 86400, 0), SLOW_STEP
        yield Series("obs_restore_drill_last_status", lab, "constant", 1, 0), SLOW_STEP
        yield Series("obs_restore_drill_rto_seconds", lab, "constant", 2400, 0), SLOW_STEP
        yield Series("obs_restore_drill_rpo_seconds", lab, "constant", 50000, 0), SLOW_STEP
        yield Series("obs_restore_drill_rto_budget_seconds", lab, "constant", 7200, 0), SLOW_STEP
        yield Series("obs_restore_drill_rpo_budget_seconds", lab, "constant", 86400, 0), SLOW_STEP


def _alerting_series(end: int) -> Iterator[tuple[Series, int]]:
    am = 'job="alertmanager",instance="mon-1:9093"'
    for integration in ("email", "slack", "webhook", "pagerduty", "telegram"):
        lab = f'{am},integration="{integration}"'
        yield Series("alertmanager_notifications_total", lab, "counter", 100, 0.01), 0
        yield Series("alertmanager_notifications_failed_total", lab, "counter", 1, 0.0001), 0
    for state in ("active", "pending", "expired"):
        yield Series("alertmanager_silences", f'{am},state="{state}"', "constant", 2, 0), 0
    yield Series("alertmanager_cluster_members", am, "constant", 1, 0), 0
    prom = 'job="prometheus",instance="mon-1:9090"'
    yield Series("prometheus_notifications_errors_total", f'{prom},alertmanager="mon-1"', "counter", 0, 0), 0
    yield Series("prometheus_rule_evaluation_failures_total", f'{prom},rule_group="x"', "counter", 0, 0), 0
    yield Series("ALERTS", 'alertname="Watchdog",alertstate="firing",severity="info"', "constant", 1, 0), 0
    for i, severity in enumerate(("critical", "warning", "warning", "info")):
        lab = f'alertname="Synthetic{i}",alertstate="firing",severity="{severity}",service="{SERVICES[i]}"'
        yield Series("ALERTS", lab, "constant", 1, 0), 0
    checker = 'job="node",instance="mon-1:9100"'
    yield Series("obs_silence_policy_violations", checker, "constant", 0, 0), SLOW_STEP
    yield Series("obs_alert_ack_seconds", checker, "gauge", 240, 120), SLOW_STEP
    yield Series("obs_oncall_drill_last_success_timestamp_seconds", checker, "constant", end - 86400 * 9, 0), SLOW_STEP


def _value(series: Series, t: int, start: int, phase: float) -> float:
    elapsed = t - start
    if series.kind == "counter":
        return series.base + series.rate * elapsed
    if series.kind == "gauge":
        return series.base + series.rate * math.sin(2 * math.pi * elapsed / 86400 + phase)
    if series.kind == "outage" and 14 * 3600 <= elapsed % 86400 < 15 * 3600:
        return 0.0
    return series.base


def _write(out: TextIO, series: Series, start: int, end: int, step: int) -> int:
    phase = _RNG.random() * math.tau
    prefix = f"{series.name}{{{series.labels}}} "
    lines = [f"{prefix}{_value(series, t, start, phase):.10g} {t}\n" for t in range(start, end + 1, step)]
    out.writelines(lines)
    return len(lines)


def write(path: Path, *, hosts: int, start: int, end: int, scrape_step: int) -> Written:
    """Write the OpenMetrics file, grouped by metric name as the format requires."""
    _RNG.seed(7)
    everything: list[tuple[Series, int]] = []
    for i in range(hosts):
        everything += _host_series(i)
    everything += _probe_series()
    everything += _pve_series(hosts)
    everything += _backup_series(hosts, end)
    everything += _alerting_series(end)
    by_name: dict[str, list[tuple[Series, int]]] = {}
    for series, step in everything:
        by_name.setdefault(series.name, []).append((series, step or scrape_step))
    written = Written()
    with path.open("w") as out:
        for name in sorted(by_name):
            for series, step in by_name[name]:
                written.samples += _write(out, series, start, end, step)
                written.series += 1
        out.write("# EOF\n")
    return written

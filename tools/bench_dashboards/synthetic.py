"""24 hours of synthetic metrics for a stack's inventory, written as OpenMetrics for promtool.

The series are what the stack's scrape jobs (components/inventory.py) would collect, with the
labels the real exporters and the project's own writers produce:

- every registered target reports ``up`` with its job, instance and asset/service/tier labels
  (so the coverage rules compiled from the inventory line up with the data);
- node_exporter on every managed and monitoring host; the vzdump hook's obs_backup_* textfile on
  the PVE nodes, the PBS collector's textfile on the PBS host (obs_pbs_job_* and
  natrontech/pbs-exporter's names: pbs_up, pbs_size, pbs_used, pbs_snapshot_vm_*{vm_id}), the drill, silence and
  on-call textfiles on the monitoring host (docs/metrics.md);
- blackbox probes per probe target;
- pve-exporter as the project scrapes it: once per PVE node with ``cluster=1``, each scrape
  reporting the whole cluster (pve_guest_info{id,node,name,type,template,tags}, pve_up, ...;
  prometheus-pve/prometheus-pve-exporter, src/pve_exporter/collector/cluster.py), so every guest
  series exists once per node;
- Alertmanager, Prometheus and ALERTS.

A few things go wrong on purpose, so the panels that count failures have something to show: one
host's exporter and one service's probes are down for an hour, one guest is stopped, one guest's
last backup failed, one snapshot is unverified. Fast-moving series are sampled at the scrape interval, slow ones
every minute.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from components.config import StackConfig
from components.inventory import MONITORING_SERVICE, Inventory, ScrapeJob, Target

CPUS = 2
SLOW_STEP = 60
OUTAGE = (14 * 3600, 15 * 3600)  # seconds into the day


@dataclass(frozen=True)
class Series:
    name: str
    labels: str
    # counter | gauge | constant | outage (base value, 0 during OUTAGE) | episode (only during OUTAGE)
    kind: str
    base: float
    rate: float  # counter: increase per second; gauge: amplitude of the daily wave


@dataclass
class Written:
    series: int = 0
    samples: int = 0


Emitted = Iterator[tuple[Series, int]]


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def _target_labels(job: ScrapeJob, target: Target) -> str:
    return _labels(job=job.name, instance=target.address, **dict(sorted(target.labels.items())))


def _node_exporter(lab: str, busy: float) -> Emitted:
    for cpu in range(CPUS):
        yield Series("node_cpu_seconds_total", f'{lab},cpu="{cpu}",mode="idle"', "counter", 1e6, 1 - busy), 0
        yield Series("node_cpu_seconds_total", f'{lab},cpu="{cpu}",mode="user"', "counter", 1e5, busy), 0
    yield Series("node_memory_MemTotal_bytes", lab, "constant", 16e9, 0), SLOW_STEP
    yield Series("node_memory_MemAvailable_bytes", lab, "gauge", 8e9, 3e9), 0
    yield Series("node_load1", lab, "gauge", 1.0, 0.8), 0
    yield Series("node_boot_time_seconds", lab, "constant", 1.7e9, 0), SLOW_STEP
    yield Series("node_textfile_scrape_error", lab, "constant", 0, 0), SLOW_STEP
    for mount in ("/", "/var"):
        fs = f'{lab},device="/dev/vda1",fstype="ext4",mountpoint="{mount}"'
        yield Series("node_filesystem_size_bytes", fs, "constant", 64e9, 0), SLOW_STEP
        yield Series("node_filesystem_avail_bytes", fs, "gauge", 30e9, 2e9), 0
    for device in ("eth0", "lo"):
        yield Series("node_network_receive_bytes_total", f'{lab},device="{device}"', "counter", 1e9, 2e5), 0
        yield Series("node_network_transmit_bytes_total", f'{lab},device="{device}"', "counter", 1e9, 1e5), 0
    yield Series("node_disk_read_bytes_total", f'{lab},device="vda"', "counter", 1e9, 5e5), 0
    yield Series("node_disk_written_bytes_total", f'{lab},device="vda"', "counter", 1e9, 8e5), 0


def _vzdump_textfile(lab: str, config: StackConfig, inventory: Inventory, node: str, end: int) -> Emitted:
    """The vzdump hook's metrics on a PVE node: one set per guest the node backs up; on the first
    node the first guest's last backup failed (so its job did too)."""
    failing = node == config.pve_nodes()[0].name
    for i, g in enumerate(g for g in inventory.protected if g.node == node):
        guest = f'{lab},vmid="{g.vmid}",node="{node}",storage="{config.pbs.storage_id}"'
        status = 0 if failing and i == 0 else 1
        yield Series("obs_backup_last_success_timestamp_seconds", guest, "constant", end - 40000, 0), SLOW_STEP
        yield Series("obs_backup_last_status", guest, "constant", status, 0), SLOW_STEP
        yield Series("obs_backup_last_duration_seconds", guest, "constant", 120 + 30 * (g.vmid % 9), 0), SLOW_STEP
    yield Series("obs_backup_job_last_status", f'{lab},node="{node}"', "constant", 0 if failing else 1, 0), SLOW_STEP


def _pbs_textfile(lab: str, config: StackConfig, inventory: Inventory, end: int) -> Emitted:
    """components/render/pbs_collector.py: job outcomes, datastore usage and snapshot freshness."""
    yield Series("pbs_up", lab, "constant", 1, 0), SLOW_STEP
    for store in config.pbs.datastores:
        for job_type in ("gc", "prune", "verify"):
            job = f'{lab},datastore="{store.name}",job_type="{job_type}"'
            yield Series("obs_pbs_job_last_success_timestamp_seconds", job, "constant", end - 30000, 0), SLOW_STEP
            yield Series("obs_pbs_job_last_status", job, "constant", 1, 0), SLOW_STEP
        ds = f'{lab},datastore="{store.name}"'
        yield Series("pbs_size", ds, "constant", 4e12, 0), SLOW_STEP
        yield Series("pbs_used", ds, "counter", 1.8e12, 1e4), SLOW_STEP
    for i, g in enumerate(inventory.protected):
        snap = f'{lab},datastore="{config.pbs.datastore}",namespace="",vm_id="{g.vmid}",vm_name="{g.name}"'
        yield Series("pbs_snapshot_vm_last_timestamp", snap, "constant", end - 39000, 0), SLOW_STEP
        yield Series("pbs_snapshot_vm_last_verify", snap, "constant", 0 if i == 1 else 1, 0), SLOW_STEP


def _monitoring_textfile(lab: str, inventory: Inventory, end: int) -> Emitted:
    for drill in inventory.drill_targets:
        target = f'{lab},target="{drill.name}"'
        yield (
            Series("obs_restore_drill_last_success_timestamp_seconds", target, "constant", end - 5 * 86400, 0),
            SLOW_STEP,
        )
        yield Series("obs_restore_drill_last_status", target, "constant", 1, 0), SLOW_STEP
        yield Series("obs_restore_drill_rto_seconds", target, "constant", drill.rto_seconds / 3, 0), SLOW_STEP
        yield Series("obs_restore_drill_rpo_seconds", target, "constant", drill.rpo_seconds / 2, 0), SLOW_STEP
        yield Series("obs_restore_drill_rto_budget_seconds", target, "constant", drill.rto_seconds, 0), SLOW_STEP
        yield Series("obs_restore_drill_rpo_budget_seconds", target, "constant", drill.rpo_seconds, 0), SLOW_STEP
    for reason in ("no_reason", "too_long", "protected_alert", "all_critical"):
        yield Series("obs_silence_policy_violations", f'{lab},reason="{reason}"', "constant", 0, 0), SLOW_STEP
    # The acknowledged alert's own labels replace the target's (ACK_METRIC_RELABEL_CONFIGS).
    ack = lab.replace(f'service="{MONITORING_SERVICE}"', 'service="git"') + ',alertname="TargetDown"'
    yield Series("obs_alert_ack_seconds", ack, "gauge", 240, 120), SLOW_STEP
    yield Series("obs_oncall_drill_last_success_timestamp_seconds", lab, "constant", end - 86400 * 9, 0), SLOW_STEP


def _node_job(config: StackConfig, inventory: Inventory, end: int) -> Emitted:
    job = inventory.job("node")
    pve = {n.name for n in config.pve_nodes()}
    pbs = config.pbs_host().name
    monitoring = {m.name for m in inventory.monitoring}
    for i, target in enumerate(job.targets):
        lab = _target_labels(job, target)
        yield from _node_exporter(lab, busy=0.05 + 0.5 * ((i * 37) % 100) / 100)
        if target.asset in pve:
            yield from _vzdump_textfile(lab, config, inventory, target.asset, end)
        if target.asset == pbs:
            yield from _pbs_textfile(lab, config, inventory, end)
        if target.asset in monitoring:
            yield from _monitoring_textfile(lab, inventory, end)


def _probes(inventory: Inventory) -> Emitted:
    down = sorted({t.service for j in inventory.scrape_jobs if j.probe_module for t in j.targets})[:1]
    for job in inventory.scrape_jobs:
        if job.probe_module:
            for target in job.targets:
                lab = _target_labels(job, target)
                yield Series("probe_success", lab, "outage" if target.service in down else "constant", 1, 0), 0
                yield Series("probe_duration_seconds", lab, "gauge", 0.2, 0.1), 0


def _guests(config: StackConfig, inventory: Inventory) -> list[tuple[str, str, str, str]]:
    """(id, name, node, type) of every guest pve-exporter reports: the inventory's and the
    monitoring VMs."""
    guests = [
        (f"{'qemu' if a.kind == 'vm' else 'lxc'}/{a.vmid}", a.name, a.node or "", "qemu" if a.kind == "vm" else "lxc")
        for a in config.assets
        if a.is_guest and a.vmid
    ]
    guests += [(f"qemu/{m.vmid}", m.name, m.node, "qemu") for m in inventory.monitoring]
    return sorted(guests)


def _pve_cluster_view(lab: str, config: StackConfig, inventory: Inventory) -> Emitted:
    """What one scrape of pve-exporter with cluster=1 reports: every node, storage and guest."""
    for number, node in enumerate(config.pve_nodes(), start=1):
        nid = f'{lab},id="node/{node.name}"'
        node_info = f'{nid},level="",name="{node.name}",nodeid="{number}"'
        yield Series("pve_node_info", node_info, "constant", 1, 0), SLOW_STEP
        yield Series("pve_up", nid, "constant", 1, 0), 0
        yield Series("pve_cpu_usage_ratio", nid, "gauge", 0.3, 0.2), 0
        yield Series("pve_memory_size_bytes", nid, "constant", 128e9, 0), SLOW_STEP
        yield Series("pve_memory_usage_bytes", nid, "gauge", 64e9, 8e9), 0
        for storage, plugin in (("local", "dir"), ("local-lvm", "lvmthin")):
            sid = f'{lab},id="storage/{node.name}/{storage}"'
            info = f'{sid},node="{node.name}",storage="{storage}",plugintype="{plugin}",content="images"'
            yield Series("pve_storage_info", info, "constant", 1, 0), SLOW_STEP
            yield Series("pve_up", sid, "constant", 1, 0), 0
            yield Series("pve_disk_size_bytes", sid, "constant", 1e12, 0), SLOW_STEP
            yield Series("pve_disk_usage_bytes", sid, "gauge", 5e11, 1e10), 0
    protected = {g.vmid for g in inventory.protected}
    guests = _guests(config, inventory)
    for gid, name, node_name, kind in guests:
        guest = f'{lab},id="{gid}"'
        info = f'{guest},node="{node_name}",name="{name}",type="{kind}",template="0",tags=""'
        yield Series("pve_guest_info", info, "constant", 1, 0), SLOW_STEP
        yield Series("pve_up", guest, "constant", 0 if gid == guests[-1][0] else 1, 0), 0  # one stopped
        yield Series("pve_cpu_usage_ratio", guest, "gauge", 0.2, 0.15), 0
        yield Series("pve_memory_size_bytes", guest, "constant", 8e9, 0), SLOW_STEP
        yield Series("pve_memory_usage_bytes", guest, "gauge", 4e9, 1e9), 0
        yield Series("pve_uptime_seconds", guest, "counter", 1e6, 1), 0
        yield Series("pve_network_receive_bytes_total", guest, "counter", 1e9, 1e5), 0
        yield Series("pve_network_transmit_bytes_total", guest, "counter", 1e9, 5e4), 0
        yield Series("pve_disk_read_bytes_total", guest, "counter", 1e9, 2e5), 0
        yield Series("pve_disk_written_bytes_total", guest, "counter", 1e9, 4e5), 0
        if int(gid.split("/")[1]) not in protected:
            yield Series("pve_not_backed_up_info", guest, "constant", 1, 0), SLOW_STEP


def _pve(config: StackConfig, inventory: Inventory) -> Emitted:
    job = inventory.job("pve")
    for target in job.targets:
        yield from _pve_cluster_view(_target_labels(job, target), config, inventory)


def _alerting(inventory: Inventory) -> Emitted:
    am_job, prom_job = inventory.job("alertmanager"), inventory.job("prometheus")
    for target in am_job.targets:
        am = _target_labels(am_job, target)
        for integration in ("email", "slack", "webhook"):
            lab = f'{am},integration="{integration}"'
            yield Series("alertmanager_notifications_total", lab, "counter", 100, 0.01), 0
            yield Series("alertmanager_notifications_failed_total", lab, "counter", 1, 0.0001), 0
        for state in ("active", "pending", "expired"):
            yield Series("alertmanager_silences", f'{am},state="{state}"', "constant", 2, 0), 0
        yield Series("alertmanager_cluster_members", am, "constant", len(am_job.targets), 0), 0
    for target in prom_job.targets:
        prom = _target_labels(prom_job, target)
        yield Series("prometheus_notifications_errors_total", f'{prom},alertmanager="am"', "counter", 0, 0), 0
        yield Series("prometheus_rule_evaluation_failures_total", f'{prom},rule_group="x"', "counter", 0, 0), 0
    yield Series("ALERTS", 'alertname="Watchdog",alertstate="firing",severity="info"', "constant", 1, 0), 0
    services = sorted({e.service for e in inventory.coverage})
    for i, severity in enumerate(("critical", "warning", "warning", "info")):
        lab = f'alertname="Synthetic{i}",alertstate="firing",severity="{severity}",service="{services[i]}"'
        yield Series("ALERTS", lab, "constant", 1, 0), 0
    escalated = 'alertname="CriticalAlertUnacknowledged",alertstate="firing",severity="critical",service="git"'
    yield Series("ALERTS", escalated, "episode", 1, 0), 0


def _up(inventory: Inventory) -> Emitted:
    """Every registered target is scraped; the first guest's node_exporter is down for an hour."""
    node_job = inventory.job("node")
    down = node_job.targets[-1].address if node_job.targets else ""
    for job in inventory.scrape_jobs:
        for target in job.targets:
            kind = "outage" if (job.name, target.address) == ("node", down) else "constant"
            yield Series("up", _target_labels(job, target), kind, 1, 0), 0


def stack_series(config: StackConfig, inventory: Inventory, end: int) -> Emitted:
    yield from _up(inventory)
    yield from _node_job(config, inventory, end)
    yield from _probes(inventory)
    yield from _pve(config, inventory)
    yield from _alerting(inventory)


def _in_outage(elapsed: int) -> bool:
    return OUTAGE[0] <= elapsed % 86400 < OUTAGE[1]


def _value(series: Series, elapsed: int, phase: float) -> float:
    if series.kind == "counter":
        return series.base + series.rate * elapsed
    if series.kind == "gauge":
        return series.base + series.rate * math.sin(2 * math.pi * elapsed / 86400 + phase)
    if series.kind == "outage" and _in_outage(elapsed):
        return 0.0
    return series.base


def _phase(series: Series) -> float:
    """The same wave for every copy of a series (pve-exporter's per-node copies differ only in
    instance), a different one for each series."""
    shared = ",".join(p for p in series.labels.split(",") if not p.startswith(("instance=", "asset=", "tier=")))
    return zlib.crc32(f"{series.name}{{{shared}}}".encode()) / 2**32 * math.tau


def _write(out: TextIO, series: Series, start: int, end: int, step: int) -> int:
    phase = _phase(series)
    prefix = f"{series.name}{{{series.labels}}} "
    times = range(start, end + 1, step)
    if series.kind == "episode":
        times = range(start + OUTAGE[0], start + OUTAGE[1], step)
    lines = [f"{prefix}{_value(series, t - start, phase):.10g} {t}\n" for t in times]
    out.writelines(lines)
    return len(lines)


def write(path: Path, config: StackConfig, inventory: Inventory, *, start: int, end: int, scrape_step: int) -> Written:
    """Write the OpenMetrics file, grouped by metric name as the format requires."""
    by_name: dict[str, list[tuple[Series, int]]] = {}
    for series, step in stack_series(config, inventory, end):
        by_name.setdefault(series.name, []).append((series, step or scrape_step))
    written = Written()
    with path.open("w") as out:
        for name in sorted(by_name):
            for series, step in by_name[name]:
                written.samples += _write(out, series, start, end, step)
                written.series += 1
        out.write("# EOF\n")
    return written

"""rules/dashboards.yml: the recording rules the dashboards (dashboards/*.py) read.

They keep 24h dashboard ranges cheap: a panel reads one pre-aggregated series per host, service,
node or datastore instead of every CPU core, NIC and guest (`make bench-dashboards` measures each
panel with and without them; docs/dashboards.md has the figures). No thresholds in them.

pve-exporter is scraped once per PVE node with ``cluster=1``, and its cluster collector reports
every guest of the cluster from /cluster/resources (prometheus-pve/prometheus-pve-exporter,
src/pve_exporter/collector/cluster.py): each guest series arrives once per node, with that node
as ``instance``. The Proxmox rules keep one copy per guest (``max by (id)``) before they join
``pve_guest_info``, or the join would match several info series and fail.
"""

from __future__ import annotations

from components.config import StackConfig
from components.inventory import Inventory
from components.render.rules.builders import Rule, dump_groups, record

# Interfaces that are not a host's own traffic (loopback, guest taps and bridges, containers).
VIRTUAL_NICS = 'device!~"lo|veth.*|tap.*|fwbr.*|fwpr.*|fwln.*|docker.*|br-.*"'
# pve-exporter counter -> the name part of its per-node guest total.
GUEST_COUNTERS = {
    "pve_network_receive_bytes_total": "pve_guest_network_receive_bytes",
    "pve_network_transmit_bytes_total": "pve_guest_network_transmit_bytes",
    "pve_disk_read_bytes_total": "pve_guest_disk_read_bytes",
    "pve_disk_written_bytes_total": "pve_guest_disk_written_bytes",
}


def _hosts() -> list[Rule]:
    """Per host (all target labels kept: asset, service, tier, job, instance)."""
    return [
        record(
            "instance:node_cpu_utilisation:rate5m",
            '1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{job="node", mode="idle"}[5m]))',
        ),
        record(
            "instance:node_load1_per_cpu:ratio",
            'node_load1{job="node"} / on (instance) group_left '
            'count by (instance) (node_cpu_seconds_total{job="node", mode="idle"})',
        ),
        record(
            "instance:node_memory_utilisation:ratio",
            '1 - node_memory_MemAvailable_bytes{job="node"} / node_memory_MemTotal_bytes{job="node"}',
        ),
        record(
            "instance:node_network_transmit_receive_bytes:rate5m",
            f"""
            sum without (device) (rate(node_network_receive_bytes_total{{job="node", {VIRTUAL_NICS}}}[5m]))
            + sum without (device) (rate(node_network_transmit_bytes_total{{job="node", {VIRTUAL_NICS}}}[5m]))
            """,
        ),
    ]


def _services() -> list[Rule]:
    """Golden signals per service (Overview): saturation and traffic from the service's hosts,
    errors and latency from its blackbox probes."""
    return [
        record("service:node_cpu_utilisation:max", "max by (service) (instance:node_cpu_utilisation:rate5m)"),
        record("service:node_memory_utilisation:max", "max by (service) (instance:node_memory_utilisation:ratio)"),
        record(
            "service:node_network_transmit_receive_bytes:rate5m",
            "sum by (service) (instance:node_network_transmit_receive_bytes:rate5m)",
        ),
        record("service:probe_success:ratio_avg5m", "avg by (service) (avg_over_time(probe_success[5m]))"),
        record("service:probe_duration_seconds:max5m", "max by (service) (max_over_time(probe_duration_seconds[5m]))"),
    ]


def _proxmox() -> list[Rule]:
    """One info series per guest, node usage with the node's name, and each node's guests'
    traffic summed (Proxmox dashboard)."""
    names = "* on (id) group_left (name) max by (id, name) (pve_node_info)"
    rules = [
        record("id:pve_guest_info:max", "max by (id, node, name, type) (pve_guest_info)"),
        record("node:pve_cpu_usage:ratio", f'max by (id) (pve_cpu_usage_ratio{{id=~"node/.+"}}) {names}'),
        record(
            "node:pve_memory_usage:ratio",
            f"""
            max by (id) (pve_memory_usage_bytes{{id=~"node/.+"}})
            / max by (id) (pve_memory_size_bytes{{id=~"node/.+"}})
            {names}
            """,
        ),
    ]
    for counter, name in GUEST_COUNTERS.items():
        rules.append(
            record(
                f"node:{name}:rate5m",
                f"""
                sum by (node) (
                  max by (id) (rate({counter}[5m]))
                  * on (id) group_left (node) id:pve_guest_info:max
                )
                """,
            )
        )
    return rules


def _backups() -> list[Rule]:
    """Newest good backup per guest from either source: the vzdump hook's metric and the PBS
    exporter's newest snapshot (vm_id renamed to vmid so both line up)."""
    return [
        record(
            "vmid:backup_last_success_timestamp_seconds:max",
            """
            max by (vmid) (
              obs_backup_last_success_timestamp_seconds
              or label_replace(pbs_snapshot_vm_last_timestamp, "vmid", "$1", "vm_id", "(.+)")
            )
            """,
        ),
        record("datastore:pbs_usage:ratio", "max by (datastore) (pbs_used) / max by (datastore) (pbs_size)"),
    ]


def _forecasts() -> list[Rule]:
    return [
        record(
            "datastore:pbs_used_bytes:predict_linear30d",
            "max by (datastore) (predict_linear(pbs_used[7d], 30 * 86400))",
        )
    ]


def render(config: StackConfig, inventory: Inventory) -> str:
    del config, inventory  # the same rules for every stack; the signature is every area's
    return dump_groups(
        "dashboards",
        [
            {"name": "dashboards-hosts", "rules": _hosts()},
            {"name": "dashboards-services", "rules": _services()},
            {"name": "dashboards-proxmox", "rules": _proxmox()},
            {"name": "dashboards-backups", "rules": _backups()},
            # A linear fit over 7 days reads ~40k samples per datastore: evaluate it every 5
            # minutes, not on every dashboard refresh.
            {"name": "dashboards-forecasts", "interval": "5m", "rules": _forecasts()},
        ],
    )

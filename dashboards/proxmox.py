"""Proxmox cluster (prometheus-pve-exporter): nodes, guests and storage, filtered by node.

Every PVE node's scrape reports the whole cluster (rules/dashboards.yml explains why), so each
series arrives once per node: panels keep one copy (``max by (id)``) before joining or counting.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards import Settings
from dashboards.panels import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    Panel,
    bargauge_panel,
    higher_is_worse,
    new_dashboard,
    prom,
    query_variable,
    stat_panel,
    status_map,
    table_panel,
    thresholds,
    timeseries_panel,
)

UID = "obs-proxmox"
FOLDER = "Infrastructure"
NODE_IDS = 'id=~"node/(${node:regex})"'
STORAGE_IDS = 'id=~"storage/(${node:regex})/.+"'
GUESTS = 'id:pve_guest_info:max{node=~"${node:regex}"}'
NODE_NAMES = "max by (id, name) (pve_node_info)"


def one_copy(expr: str) -> str:
    """One series per PVE id out of the copies every node's scrape reports."""
    return f"max by (id) ({expr})"


def guest(expr: str) -> str:
    """Attach the guest's name and node (pve_guest_info) to a per-guest series, filtered by node."""
    return f"{one_copy(expr)} * on (id) group_left (name, node) {GUESTS}"


def node(expr: str) -> str:
    """Attach the node's name (pve_node_info) to a per-node series."""
    return f"{one_copy(expr)} * on (id) group_left (name) {NODE_NAMES}"


def per_node(name: str) -> str:
    """A per-node guest total recorded in rules/dashboards.yml, filtered by node."""
    return f'node:{name}:rate5m{{node=~"${{node:regex}}"}}'


def nodes_up() -> Panel:
    return stat_panel(
        "Nodes",
        "Whether each PVE node is online in the cluster.",
        "short",
        [prom(node(f"pve_up{{{NODE_IDS}}}"), "{{name}}", instant=True)],
        limits=thresholds((None, RED), (1, GREEN)),
        mappings=status_map("ONLINE", "OFFLINE"),
        width=8,
    )


def guests_running() -> Panel:
    return stat_panel(
        "Guests running",
        "VMs and containers running on the selected nodes.",
        "short",
        [prom(f"count({guest('pve_up')} == 1)", "running", instant=True)],
        limits=thresholds((None, GREEN)),
        width=4,
        no_value="0",
    )


def guests_stopped() -> Panel:
    return stat_panel(
        "Guests stopped",
        "VMs and containers that exist but are not running.",
        "short",
        [prom(f"count({guest('pve_up')} == 0)", "stopped", instant=True)],
        limits=thresholds((None, GREEN), (1, ORANGE)),
        width=4,
        no_value="0",
    )


def not_backed_up() -> Panel:
    return stat_panel(
        "Guests without a backup job",
        "Guests no backup job covers (pve_not_backed_up_info); GuestNotBackedUp fires for them.",
        "short",
        [prom(f"count({one_copy('pve_not_backed_up_info')} == 1)", "not backed up", instant=True)],
        limits=thresholds((None, GREEN), (1, RED)),
        width=8,
        no_value="0",
    )


def node_cpu(s: Settings) -> Panel:
    return timeseries_panel(
        "Node CPU",
        "CPU usage of each node as PVE reports it.",
        "percentunit",
        [prom(f"node:pve_cpu_usage:ratio{{{NODE_IDS}}}", "{{name}}")],
        limits=higher_is_worse(s.cpu_saturation_ratio * 0.8, s.cpu_saturation_ratio),
        minimum=0,
        maximum=1,
    )


def node_memory(s: Settings) -> Panel:
    used_limit = 1 - s.memory_available_min_ratio
    return timeseries_panel(
        "Node memory",
        "Memory in use on each node.",
        "percentunit",
        [prom(f"node:pve_memory_usage:ratio{{{NODE_IDS}}}", "{{name}}")],
        limits=higher_is_worse(used_limit - 0.1, used_limit),
        minimum=0,
        maximum=1,
    )


def storage_usage(s: Settings) -> Panel:
    return bargauge_panel(
        "Storage usage",
        "Space used on every storage of the selected nodes.",
        "percentunit",
        [
            prom(
                f"{one_copy(f'pve_disk_usage_bytes{{{STORAGE_IDS}}}')} "
                f"/ {one_copy(f'pve_disk_size_bytes{{{STORAGE_IDS}}}')}",
                "{{id}}",
                instant=True,
            )
        ],
        limits=higher_is_worse(s.filesystem_full_ratio - 0.1, s.filesystem_full_ratio),
        width=24,
        minimum=0,
        maximum=1,
    )


def guest_cpu() -> Panel:
    return bargauge_panel(
        "Busiest guests (CPU)",
        "The 10 guests using the largest share of their allocated cores right now.",
        "percentunit",
        [prom(f"topk(10, {guest('pve_cpu_usage_ratio')})", "{{name}} ({{node}})", instant=True)],
        limits=higher_is_worse(0.8, 0.95),
        minimum=0,
        maximum=1,
    )


def guest_memory() -> Panel:
    return bargauge_panel(
        "Largest guests (memory)",
        "The 10 guests using the most memory right now.",
        "bytes",
        [prom(f"topk(10, {guest('pve_memory_usage_bytes')})", "{{name}} ({{node}})", instant=True)],
        limits=thresholds((None, BLUE)),
        minimum=0,
    )


def guest_network() -> Panel:
    return timeseries_panel(
        "Guest network per node",
        "Bytes all guests of each node receive (positive) and send (negative).",
        "Bps",
        [
            prom(per_node("pve_guest_network_receive_bytes"), "in {{node}}"),
            prom(f"-{per_node('pve_guest_network_transmit_bytes')}", "out {{node}}"),
        ],
    )


def guest_disk() -> Panel:
    return timeseries_panel(
        "Guest disk throughput per node",
        "Bytes all guests of each node read (positive) and write (negative).",
        "Bps",
        [
            prom(per_node("pve_guest_disk_read_bytes"), "read {{node}}"),
            prom(f"-{per_node('pve_guest_disk_written_bytes')}", "write {{node}}"),
        ],
    )


def guest_table() -> Panel:
    return table_panel(
        "Guests",
        "Every guest on the selected nodes with its state and uptime.",
        [prom(guest("pve_uptime_seconds"), "{{name}}", instant=True).format(PromQueryFormat.TABLE)],
        width=24,
        unit="s",
    )


def build(s: Settings) -> dashboard_builder.Dashboard:
    return (
        new_dashboard("Proxmox cluster", UID, "prometheus-pve-exporter: nodes, guests and storage.")
        .with_variable(query_variable("node", "Node", "label_values(pve_node_info, name)"))
        .with_row(dashboard_builder.Row("Cluster"))
        .with_panel(nodes_up())
        .with_panel(guests_running())
        .with_panel(guests_stopped())
        .with_panel(not_backed_up())
        .with_panel(node_cpu(s))
        .with_panel(node_memory(s))
        .with_panel(storage_usage(s))
        .with_row(dashboard_builder.Row("Guests"))
        .with_panel(guest_cpu())
        .with_panel(guest_memory())
        .with_panel(guest_network())
        .with_panel(guest_disk())
        .with_panel(guest_table())
    )

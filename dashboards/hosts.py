"""Hosts: node_exporter on every managed host, one host (or several) picked with the selector."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder

from dashboards import Settings
from dashboards.panels import (
    GREEN,
    ORANGE,
    RED,
    Panel,
    higher_is_worse,
    new_dashboard,
    prom,
    query_variable,
    stat_panel,
    status_map,
    thresholds,
    timeseries_panel,
)

UID = "obs-hosts"
FOLDER = "Infrastructure"
HOST = 'job="node", service=~"$service", asset=~"$asset"'
NICS = 'device!~"lo|veth.*|tap.*|fwbr.*|fwpr.*|fwln.*|docker.*|br-.*"'
FILESYSTEMS = 'fstype!~"tmpfs|ramfs|overlay|squashfs|nsfs|fuse.*"'


def host_up() -> Panel:
    return stat_panel(
        "Scrape status",
        "Whether Prometheus reaches node_exporter on each selected host.",
        "short",
        [prom(f"up{{{HOST}}}", "{{asset}}", instant=True)],
        limits=thresholds((None, RED), (1, GREEN)),
        mappings=status_map("UP", "DOWN"),
        width=12,
    )


def uptime() -> Panel:
    return stat_panel(
        "Uptime",
        "Time since boot; a recent reboot stands out.",
        "s",
        [prom(f"time() - node_boot_time_seconds{{{HOST}}}", "{{asset}}", instant=True)],
        limits=thresholds((None, ORANGE), (3600, GREEN)),
        width=12,
    )


def cpu(s: Settings) -> Panel:
    return timeseries_panel(
        "CPU utilisation",
        f"Share of CPU time not idle (recorded 5m rate); HostHighCpuSaturation above {s.cpu_saturation_ratio:.0%}.",
        "percentunit",
        [prom(f"instance:node_cpu_utilisation:rate5m{{{HOST}}}", "{{asset}}")],
        limits=higher_is_worse(s.cpu_saturation_ratio * 0.8, s.cpu_saturation_ratio),
        minimum=0,
        maximum=1,
    )


def load_per_core() -> Panel:
    return timeseries_panel(
        "Load per core",
        "1-minute load average divided by the number of CPUs (recorded); above 1 means work is queueing.",
        "short",
        [prom(f"instance:node_load1_per_cpu:ratio{{{HOST}}}", "{{asset}}")],
        limits=higher_is_worse(1, 2),
        minimum=0,
    )


def memory(s: Settings) -> Panel:
    used_limit = 1 - s.memory_available_min_ratio
    return timeseries_panel(
        "Memory in use",
        f"1 - MemAvailable/MemTotal (recorded); HostMemoryPressure when less than "
        f"{s.memory_available_min_ratio:.0%} is available.",
        "percentunit",
        [prom(f"instance:node_memory_utilisation:ratio{{{HOST}}}", "{{asset}}")],
        limits=higher_is_worse(used_limit - 0.1, used_limit),
        minimum=0,
        maximum=1,
    )


def filesystems(s: Settings) -> Panel:
    return timeseries_panel(
        "Filesystem space used",
        f"Per mount point; HostFilesystemAlmostFull above {s.filesystem_full_ratio:.0%}.",
        "percentunit",
        [
            prom(
                f"1 - node_filesystem_avail_bytes{{{HOST}, {FILESYSTEMS}}} "
                f"/ node_filesystem_size_bytes{{{HOST}, {FILESYSTEMS}}}",
                "{{asset}} {{mountpoint}}",
            )
        ],
        limits=higher_is_worse(s.filesystem_full_ratio - 0.1, s.filesystem_full_ratio),
        minimum=0,
        maximum=1,
    )


def disk_io() -> Panel:
    return timeseries_panel(
        "Disk throughput",
        "Bytes read (positive) and written (negative) per device.",
        "Bps",
        [
            prom(f"rate(node_disk_read_bytes_total{{{HOST}}}[$__rate_interval])", "read {{asset}} {{device}}"),
            prom(f"-rate(node_disk_written_bytes_total{{{HOST}}}[$__rate_interval])", "write {{asset}} {{device}}"),
        ],
    )


def network() -> Panel:
    return timeseries_panel(
        "Network throughput",
        "Bytes received (positive) and sent (negative) per physical interface.",
        "Bps",
        [
            prom(
                f"rate(node_network_receive_bytes_total{{{HOST}, {NICS}}}[$__rate_interval])",
                "in {{asset}} {{device}}",
            ),
            prom(
                f"-rate(node_network_transmit_bytes_total{{{HOST}, {NICS}}}[$__rate_interval])",
                "out {{asset}} {{device}}",
            ),
        ],
    )


def textfile_errors() -> Panel:
    return stat_panel(
        "Textfile collector",
        "1 when node_exporter failed to read a textfile (backup and drill metrics come from there).",
        "short",
        [prom(f"max by (asset) (node_textfile_scrape_error{{{HOST}}})", "{{asset}}", instant=True)],
        limits=thresholds((None, GREEN), (1, RED)),
        mappings=status_map("OK", "ERROR", ok_value=0),
        width=24,
    )


def build(s: Settings) -> dashboard_builder.Dashboard:
    return (
        new_dashboard("Hosts", UID, "node_exporter on every managed host: CPU, memory, disks, network.")
        .with_variable(query_variable("service", "Service", 'label_values(up{job="node"}, service)'))
        .with_variable(
            query_variable(
                "asset", "Host", 'label_values(up{job="node", service=~"$service"}, asset)', all_by_default=False
            )
        )
        .with_row(dashboard_builder.Row("Status"))
        .with_panel(host_up())
        .with_panel(uptime())
        .with_row(dashboard_builder.Row("CPU and memory"))
        .with_panel(cpu(s))
        .with_panel(load_per_core())
        .with_panel(memory(s))
        .with_panel(filesystems(s))
        .with_row(dashboard_builder.Row("Disks and network"))
        .with_panel(disk_io())
        .with_panel(network())
        .with_panel(textfile_errors())
    )

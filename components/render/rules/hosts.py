"""rules/hosts.yml: node_exporter's view of every host (disks, memory, CPU, textfile metrics)."""

from __future__ import annotations

from components.config import StackConfig
from components.inventory import Inventory
from components.render.rules.builders import (
    CPU_FOR,
    FILESYSTEM_FILLING_FOR,
    HOST_FOR,
    PSEUDO_FS,
    TEXTFILE_FOR,
    Rule,
    alert,
    dump,
    ratio,
    record,
    seconds,
)

# Prediction from the last window AND from the window before it: a one-off jump lies in at
# most one of two disjoint windows, steady growth shows in both.
FILL_WINDOW = "6h"


def _utilisation_records() -> list[Rule]:
    return [
        record(
            "instance:node_cpu_utilisation:ratio",
            '1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
        ),
        record(
            "instance:node_memory_available:ratio",
            "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
        ),
        record(
            "instance:node_filesystem_avail:ratio",
            f"node_filesystem_avail_bytes{{{PSEUDO_FS}}} / node_filesystem_size_bytes{{{PSEUDO_FS}}}",
        ),
    ]


def _filesystem_filling_up(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    window = FILL_WINDOW
    horizon = seconds(th.filesystem_fill_horizon)
    earlier_horizon = horizon + seconds(window)  # the earlier window ends 6h ago: predict to the same instant
    return alert(
        config,
        "HostFilesystemFillingUp",
        f"""
        predict_linear(node_filesystem_avail_bytes{{{PSEUDO_FS}}}[{window}], {horizon}) < 0
        and
        predict_linear(node_filesystem_avail_bytes{{{PSEUDO_FS}}}[{window}] offset {window}, {earlier_horizon}) < 0
        and
        node_filesystem_readonly{{{PSEUDO_FS}}} == 0
        """,
        hold=FILESYSTEM_FILLING_FOR,
        severity="warning",
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: {{ $labels.mountpoint }} will be full within " + th.filesystem_fill_horizon,
        description=(
            "{{ $labels.mountpoint }} ({{ $labels.device }}) on {{ $labels.instance }} has been filling steadily "
            f"for over 12h; at that rate it is full within {th.filesystem_fill_horizon}."
        ),
    )


def _datastore_mounts(config: StackConfig) -> list[Rule]:
    """The PBS host's datastore filesystems: PbsDatastoreAlmostFull speaks for them."""
    pbs = config.pbs_host().name
    mounts = sorted({ds.mounted_at or ds.path for ds in config.pbs.datastores})
    return [record("obs:pbs_datastore_mount:info", "vector(1)", {"asset": pbs, "mountpoint": m}) for m in mounts]


def _filesystem_almost_full(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    return alert(
        config,
        "HostFilesystemAlmostFull",
        f"""
        instance:node_filesystem_avail:ratio < {ratio(1 - th.filesystem_almost_full_ratio)}
        unless on(asset, mountpoint) obs:pbs_datastore_mount:info
        """,
        hold=HOST_FOR,
        severity="warning",
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: {{ $labels.mountpoint }} is over "
        f"{th.filesystem_almost_full_ratio:.0%} full",
        description=(
            "Only {{ $value | humanizePercentage }} of {{ $labels.mountpoint }} on {{ $labels.instance }} is "
            "free: writes start failing when it reaches zero."
        ),
    )


def _memory_pressure(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    return alert(
        config,
        "HostMemoryPressure",
        f"instance:node_memory_available:ratio < {ratio(th.memory_available_min_ratio)}",
        hold=HOST_FOR,
        severity="warning",
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: only {{ $value | humanizePercentage }} of memory available",
        description=(
            f"MemAvailable on {{{{ $labels.instance }}}} has stayed under {th.memory_available_min_ratio:.0%} "
            f"of RAM for {HOST_FOR}: the OOM killer is next."
        ),
    )


def _cpu_saturation(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    # Busy means running code: iowait is an idle CPU waiting for a disk (the monthly PBS verify
    # reads every chunk), not contention for the CPU.
    return alert(
        config,
        "HostHighCpuSaturation",
        f"""
        1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{{mode=~"idle|iowait"}}[5m])))
        > {ratio(th.cpu_saturation_ratio)}
        """,
        hold=CPU_FOR,
        severity="warning",
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: CPU {{ $value | humanizePercentage }} busy for " + CPU_FOR,
        description=(
            f"All CPUs of {{{{ $labels.instance }}}} have been over {th.cpu_saturation_ratio:.0%} busy for "
            f"{CPU_FOR}: latency of everything on it suffers."
        ),
    )


def _textfile_collector_error(config: StackConfig) -> Rule:
    return alert(
        config,
        "NodeTextfileCollectorError",
        "node_textfile_scrape_error == 1",
        hold=TEXTFILE_FOR,
        severity="warning",
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: node_exporter cannot read its textfile metrics",
        description=(
            "node_exporter on {{ $labels.instance }} failed to parse a *.prom file in its textfile directory "
            f"for {TEXTFILE_FOR}: the obs_* metrics written there (backups, drills, silences) are stale."
        ),
    )


def render(config: StackConfig, inventory: Inventory) -> str:
    alerts = [
        _filesystem_filling_up(config),
        _filesystem_almost_full(config),
        _memory_pressure(config),
        _cpu_saturation(config),
        _textfile_collector_error(config),
    ]
    return dump("hosts", _utilisation_records() + _datastore_mounts(config) + alerts)

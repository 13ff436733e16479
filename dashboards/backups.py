"""Backups & PBS: backup age against the RPO, job failures, datastores, maintenance, drills."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder

from dashboards import Settings
from dashboards.panels import (
    GREEN,
    RED,
    Panel,
    bargauge_panel,
    higher_is_worse,
    new_dashboard,
    prom,
    query_variable,
    stat_panel,
    status_map,
    thresholds,
    timeseries_panel,
)

UID = "obs-backups"
FOLDER = "Backups"
DATASTORE = 'datastore=~"$datastore"'
DAY = 86400
# The step of panels over metrics that change once per backup run.
BACKUP_RUN_STEP = "15m"


def backup_age(s: Settings) -> Panel:
    return bargauge_panel(
        "Last good backup age",
        f"Newest good backup per guest (vzdump hook or PBS snapshot, whichever is newer); "
        f"orange past the {s.rpo_seconds // 3600}h RPO, red past RPO + grace.",
        "s",
        [prom("time() - vmid:backup_last_success_timestamp_seconds:max", "vmid {{vmid}}", instant=True)],
        limits=higher_is_worse(s.rpo_seconds, s.rpo_seconds + s.rpo_grace_seconds),
        minimum=0,
        height=10,
    )


def job_status() -> Panel:
    return stat_panel(
        "Nightly backup job",
        "Result of the last vzdump job on each PVE node.",
        "short",
        [prom("obs_backup_job_last_status", "{{node}}", instant=True)],
        limits=thresholds((None, RED), (1, GREEN)),
        mappings=status_map(),
        width=6,
        height=5,
    )


def failed_guests() -> Panel:
    return stat_panel(
        "Guests whose last backup failed",
        "Protected guests whose most recent backup attempt failed or was aborted.",
        "short",
        [prom("count(obs_backup_last_status == 0)", "failed", instant=True)],
        limits=thresholds((None, GREEN), (1, RED)),
        width=6,
        height=5,
        no_value="0",
    )


def backup_duration() -> Panel:
    # One series per guest that changes once per backup run (docs/metrics.md): a point every
    # 15 minutes shows every change and reads a quarter of the points a 1-minute step would.
    return timeseries_panel(
        "Backup duration",
        "How long each guest's last backup took; a jump means more changed data or a slow target.",
        "s",
        [prom("obs_backup_last_duration_seconds", "vmid {{vmid}}")],
        width=12,
        height=5,
        minimum=0,
    ).interval(BACKUP_RUN_STEP)


def datastore_usage(s: Settings) -> Panel:
    return bargauge_panel(
        "Datastore usage",
        f"Space used per PBS datastore; PbsDatastoreAlmostFull above {s.datastore_full_ratio:.0%}.",
        "percentunit",
        [prom(f"datastore:pbs_usage:ratio{{{DATASTORE}}}", "{{datastore}}", instant=True)],
        limits=higher_is_worse(s.datastore_full_ratio - 0.1, s.datastore_full_ratio),
        minimum=0,
        maximum=1,
    )


def datastore_forecast() -> Panel:
    return timeseries_panel(
        "Datastore usage and 30-day forecast",
        "Used bytes, size, and where a linear fit over the last 7 days says usage will be in 30 days (recorded).",
        "bytes",
        [
            prom(f"pbs_used{{{DATASTORE}}}", "used {{datastore}}"),
            prom(f"pbs_size{{{DATASTORE}}}", "size {{datastore}}"),
            prom(f"datastore:pbs_used_bytes:predict_linear30d{{{DATASTORE}}}", "in 30 days {{datastore}}"),
        ],
        minimum=0,
    )


def maintenance_freshness() -> Panel:
    return bargauge_panel(
        "GC, prune and verify: time since last success",
        "Per datastore and job type; PbsMaintenanceStale fires when one misses its window.",
        "s",
        [
            prom(
                f"time() - obs_pbs_job_last_success_timestamp_seconds{{{DATASTORE}}}",
                "{{datastore}} {{job_type}}",
                instant=True,
            )
        ],
        limits=higher_is_worse(2 * DAY, 8 * DAY),
        minimum=0,
    )


def maintenance_status() -> Panel:
    return stat_panel(
        "GC, prune and verify: last result",
        "Result of the last run of each maintenance job.",
        "short",
        [prom(f"obs_pbs_job_last_status{{{DATASTORE}}}", "{{datastore}} {{job_type}}", instant=True)],
        limits=thresholds((None, RED), (1, GREEN)),
        mappings=status_map(),
        width=12,
    )


def unverified_snapshots() -> Panel:
    return stat_panel(
        "Guests whose last snapshot is not verified",
        "Newest snapshot per guest whose verify state is not ok (BackupNotVerified).",
        "short",
        [prom(f"count(pbs_snapshot_vm_last_verify{{{DATASTORE}}} == 0)", "unverified", instant=True)],
        limits=thresholds((None, GREEN), (1, RED)),
        width=12,
        no_value="0",
    )


def drill_rto(s: Settings) -> Panel:
    return timeseries_panel(
        "Restore drill RTO",
        f"Measured time to restore and verify each target, and each target's own budget; "
        f"the default budget is {s.rto_seconds // 60} minutes.",
        "s",
        [
            prom("obs_restore_drill_rto_seconds", "{{target}}"),
            prom("obs_restore_drill_rto_budget_seconds", "budget {{target}}"),
        ],
        limits=higher_is_worse(s.rto_seconds * 0.75, s.rto_seconds),
        minimum=0,
    )


def drill_rpo(s: Settings) -> Panel:
    return timeseries_panel(
        "Restore drill RPO",
        f"Age of the data the drill restored (data that would be lost), and each target's own budget; "
        f"the default promise is {s.rpo_seconds // 3600}h.",
        "s",
        [
            prom("obs_restore_drill_rpo_seconds", "{{target}}"),
            prom("obs_restore_drill_rpo_budget_seconds", "budget {{target}}"),
        ],
        limits=higher_is_worse(s.rpo_seconds, s.rpo_seconds + s.rpo_grace_seconds),
        minimum=0,
    )


def build(s: Settings) -> dashboard_builder.Dashboard:
    return (
        new_dashboard("Backups & PBS", UID, "Backup age against the RPO, PBS datastores and maintenance, drills.")
        .with_variable(query_variable("datastore", "Datastore", "label_values(pbs_size, datastore)"))
        .with_row(dashboard_builder.Row("Backups"))
        .with_panel(backup_age(s))
        .with_panel(job_status())
        .with_panel(failed_guests())
        .with_panel(backup_duration())
        .with_row(dashboard_builder.Row("PBS datastores"))
        .with_panel(datastore_usage(s))
        .with_panel(datastore_forecast())
        .with_panel(maintenance_freshness())
        .with_panel(maintenance_status())
        .with_panel(unverified_snapshots())
        .with_row(dashboard_builder.Row("Restore drills"))
        .with_panel(drill_rto(s))
        .with_panel(drill_rpo(s))
    )

"""rules/backups.yml: every protected guest has a recent, verified backup; PBS and restore drills are healthy.

The inventory's protected guests and drill targets are compiled into constant recording rules
(``obs:protected_guest:info``, ``obs:drill_target_rto_budget:seconds``): a protected guest
without any backup alerts, not just one whose backup got old.
"""

from __future__ import annotations

from collections.abc import Iterator

from components.config import StackConfig
from components.inventory import Inventory
from components.render.rules.builders import (
    BACKUP_FOR,
    DATASTORE_FILLING_FOR,
    DRILL_FOR,
    HOST_FOR,
    Rule,
    alert,
    dump,
    guest_id,
    ratio,
    record,
    seconds,
    tiered,
)

# Two disjoint windows, both predicting full: steady growth (nightly backups are a staircase,
# two steps per 2d window keep the slope stable) fires; a one-off jump is in one window only.
FILL_WINDOW = "2d"


def _protected_guests(inventory: Inventory) -> Iterator[Rule]:
    for g in sorted(inventory.protected, key=lambda g: g.vmid):
        yield record(
            "obs:protected_guest:info",
            "vector(1)",
            {"vmid": str(g.vmid), "id": guest_id(g.kind, g.vmid), "asset": g.name, "node": g.node}
            | {"service": g.service, "tier": g.tier},
        )


def _drill_budgets(inventory: Inventory) -> Iterator[Rule]:
    for d in sorted(inventory.drill_targets, key=lambda d: d.name):
        yield record("obs:drill_target_rto_budget:seconds", f"vector({d.rto_seconds})", {"target": d.name})


def _backup_age_records(config: StackConfig) -> list[Rule]:
    datastore = config.pbs.datastore
    # Only backups to the PBS storage keep the RPO: an ad-hoc vzdump to `local` is on the node
    # that fails with the guest, and would hide a failing nightly PBS backup.
    return [
        record(
            "vmid:backup_last_success:timestamp_seconds",
            f"""
            max by (vmid) (
              obs_backup_last_success_timestamp_seconds{{storage="{config.backups.storage}"}}
              or
              label_replace(pbs_snapshot_vm_last_timestamp{{datastore="{datastore}"}}, "vmid", "$1", "vm_id", "(.+)")
            )
            """,
        ),
        record("vmid:backup_age:seconds", "time() - vmid:backup_last_success:timestamp_seconds"),
        record("datastore:pbs_used:ratio", "pbs_used / pbs_size"),
        # Where each guest runs now (pve-exporter's cluster view, the same from every node).
        record(
            "vmid:guest_node:info",
            'label_replace(max by (id, node) (pve_guest_info), "vmid", "$1", "id", "(?:qemu|lxc)/(.+)")',
        ),
    ]


def _backup_too_old(config: StackConfig) -> list[Rule]:
    backups = config.backups
    rpo_limit = seconds(backups.rpo) + seconds(backups.rpo_grace)

    def query(tier: str) -> str:
        return f"""
            (
              vmid:backup_age:seconds > {rpo_limit}
              or on(vmid)
              (obs:protected_guest:info unless on(vmid) vmid:backup_last_success:timestamp_seconds)
            )
            * on(vmid) group_left(asset, node, tier) obs:protected_guest:info{{tier="{tier}"}}
            """

    return tiered(
        config,
        "BackupTooOld",
        query,
        hold=BACKUP_FOR,
        service="backup",
        summary="{{ $labels.asset }} (VMID {{ $labels.vmid }}): no good backup within the RPO",
        description=(
            "The newest successful backup of protected guest {{ $labels.asset }} (VMID {{ $labels.vmid }}, "
            f"node {{{{ $labels.node }}}}) is older than the RPO {backups.rpo} plus "
            f"{backups.rpo_grace} grace, or none exists (vzdump hook and PBS '{config.pbs.datastore}' agree)."
        ),
    )


def _backup_job_failed(config: StackConfig) -> Rule:
    return alert(
        config,
        "BackupJobFailed",
        # A guest's failure counts on the node it runs on now: after a migration the old node's
        # state file keeps its last failure forever (docs/metrics.md), the new node's is the truth.
        """
        obs_backup_job_last_status == 0
        or
        (obs_backup_last_status == 0 and on(vmid, node) vmid:guest_node:info)
        or
        (obs_backup_last_status == 0 unless on(vmid) vmid:guest_node:info)
        """,
        hold="0s",
        severity="warning",
        service="backup",
        summary="Backup failed on {{ $labels.node }}{{ with $labels.vmid }} for VMID {{ . }}{{ end }}",
        description=(
            "The last vzdump run on {{ $labels.node }} reported failure"
            "{{ with $labels.vmid }} for guest {{ . }}{{ end }}. The next nightly run retries; "
            f"BackupTooOld follows if no good backup lands within {config.backups.rpo} + "
            f"{config.backups.rpo_grace}."
        ),
    )


def _guest_not_backed_up(config: StackConfig) -> Rule:
    # pve-exporter reports pve_not_backed_up_info from every scraped PVE node: one alert per guest.
    return alert(
        config,
        "GuestNotBackedUp",
        "max by (id) (pve_not_backed_up_info) * on(id) group_left(asset, vmid) obs:protected_guest:info",
        hold="30m",
        severity="warning",
        service="backup",
        summary="Protected guest {{ $labels.asset }} ({{ $labels.id }}) is in no backup job",
        description=(
            "Proxmox reports {{ $labels.id }} is not covered by any backup job although the inventory protects "
            "it: the backup job's selection drifted from the inventory (re-run `pulumi up`)."
        ),
    )


def _backup_not_verified(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    datastore = config.pbs.datastore
    return alert(
        config,
        "BackupNotVerified",
        f"""
        pbs_snapshot_vm_last_verify{{datastore="{datastore}"}} == 0
        and
        time() - pbs_snapshot_vm_last_timestamp{{datastore="{datastore}"}} > {seconds(th.backup_verify_within)}
        """,
        hold=BACKUP_FOR,
        severity="warning",
        service="backup",
        summary="Newest backup of VMID {{ $labels.vm_id }} is not verified",
        description=(
            "The newest snapshot of {{ $labels.vm_name }} (VMID {{ $labels.vm_id }}) on datastore "
            f"{{{{ $labels.datastore }}}} is over {th.backup_verify_within} old and has not passed verification: "
            "either the verify job is not running or it found the snapshot corrupt."
        ),
    )


def _datastore_filling_up(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    window = FILL_WINDOW
    fill_horizon = seconds(th.datastore_fill_horizon)
    return alert(
        config,
        "PbsDatastoreFillingUp",
        f"""
        predict_linear(pbs_available[{window}], {fill_horizon}) < 0
        and
        predict_linear(pbs_available[{window}] offset {window}, {fill_horizon + seconds(window)}) < 0
        """,
        hold=DATASTORE_FILLING_FOR,
        severity="warning",
        service="backup",
        summary=f"PBS datastore {{{{ $labels.datastore }}}} will be full within {th.datastore_fill_horizon}",
        description=(
            "Datastore {{ $labels.datastore }} has grown steadily for 4 days; at that rate it is full within "
            f"{th.datastore_fill_horizon} and backups then fail. Check prune and GC, or add space."
        ),
    )


def _datastore_almost_full(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    return alert(
        config,
        "PbsDatastoreAlmostFull",
        f"datastore:pbs_used:ratio > {ratio(th.datastore_almost_full_ratio)}",
        hold=HOST_FOR,
        severity="warning",
        service="backup",
        summary="PBS datastore {{ $labels.datastore }} is {{ $value | humanizePercentage }} full",
        description=(
            f"Datastore {{{{ $labels.datastore }}}} is over {th.datastore_almost_full_ratio:.0%} full. GC only "
            "frees chunks 24h after prune releases them: act before backups start failing."
        ),
    )


def _pbs_jobs_expected(config: StackConfig) -> Iterator[Rule]:
    """Every fixed datastore has gc, prune and verify jobs (components/pbs): a job that never ran
    writes no series, so the expectation is compiled in. Datastores on a removable disk
    (``mounted_at``) come and go with it and are not expected."""
    for ds in config.pbs.datastores:
        if ds.mounted_at is None:
            for job_type in ("gc", "prune", "verify"):
                yield record("obs:pbs_job_expected:info", "vector(1)", {"datastore": ds.name, "job_type": job_type})


def _maintenance_stale(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    maintenance = {"gc": th.pbs_gc_within, "prune": th.pbs_prune_within, "verify": th.pbs_verify_within}
    stale = "\nor\n".join(
        [
            f'time() - obs_pbs_job_last_success_timestamp_seconds{{job_type="{job}"}} > {seconds(within)}'
            for job, within in maintenance.items()
        ]
        # Never ran, while the PBS host's node_exporter (which serves these series) is up.
        + [
            "(obs:pbs_job_expected:info unless on(datastore, job_type) obs_pbs_job_last_success_timestamp_seconds)"
            f'\nand on() (up{{job="node", asset="{config.pbs.host}"}} == 1)'
        ]
    )
    return alert(
        config,
        "PbsMaintenanceStale",
        stale,
        hold=BACKUP_FOR,
        severity="warning",
        service="backup",
        summary="PBS {{ $labels.job_type }} on {{ $labels.datastore }} has not succeeded in time",
        description=(
            "The last successful {{ $labels.job_type }} job on datastore {{ $labels.datastore }} was "
            "{{ $value | humanizeDuration }} ago (windows: "
            + ", ".join(f"{job} {within}" for job, within in maintenance.items())
            + "), or it never succeeded. Without prune and GC the datastore fills; without verify corruption "
            "goes unnoticed."
        ),
    )


def drill_slack_seconds(config: StackConfig) -> int:
    """How late a drill on schedule can finish: the daily due-check runs once a day (``check_at``),
    and a drill takes up to agent + restore + verify timeouts."""
    drill = config.backups.drill
    return 86400 + sum(seconds(t) for t in (drill.agent_timeout, drill.restore_timeout, drill.verify_timeout))


def _restore_drill_overdue(config: StackConfig) -> Rule:
    every = config.backups.drill.every
    return alert(
        config,
        "RestoreDrillOverdue",
        f"""
        time() - obs_restore_drill_last_success_timestamp_seconds > {seconds(every) + drill_slack_seconds(config)}
        or
        (obs:drill_target_rto_budget:seconds unless on(target) obs_restore_drill_last_success_timestamp_seconds)
        """,
        hold=DRILL_FOR,
        severity="warning",
        service="backup",
        summary="No successful restore drill of {{ $labels.target }} within " + every,
        description=(
            "Restore drill target {{ $labels.target }} has not had a successful drill within "
            f"{every} (one per sprint) plus a day's slack for the daily due-check and the drill's own "
            "duration: its backups are unproven. Run tools/restore_drill."
        ),
    )


def _restore_drill_failed(config: StackConfig) -> Rule:
    return alert(
        config,
        "RestoreDrillFailed",
        "obs_restore_drill_last_status == 0",
        hold="0s",
        severity="warning",
        service="backup",
        summary="Restore drill of {{ $labels.target }} failed",
        description=(
            "The last restore drill of {{ $labels.target }} failed: a real restore of it may fail the same way. "
            "Read the drill report before the next backup rotates the evidence away."
        ),
    )


def _restore_rto_budget_exceeded(config: StackConfig) -> Rule:
    return alert(
        config,
        "RestoreRtoBudgetExceeded",
        f"""
        obs_restore_drill_rto_seconds > on(target) obs:drill_target_rto_budget:seconds
        or
        (
          obs_restore_drill_rto_seconds > {seconds(config.backups.rto)}
          unless on(target) obs:drill_target_rto_budget:seconds
        )
        """,
        hold="0s",
        severity="warning",
        service="backup",
        summary="Restore drill of {{ $labels.target }} took {{ $value | humanizeDuration }}, over its RTO",
        description=(
            "The last drill restored {{ $labels.target }} in {{ $value | humanizeDuration }}, longer than its RTO "
            f"budget (drill.rto per target, {config.backups.rto} by default): a real outage would overrun."
        ),
    )


def _pbs_job_failed(config: StackConfig) -> Rule:
    return alert(
        config,
        "PbsJobFailed",
        "obs_pbs_job_last_status == 0",
        hold="0s",
        severity="warning",
        service="backup",
        summary="PBS {{ $labels.job_type }} on {{ $labels.datastore }} ended with warnings or errors",
        description=(
            "The most recent {{ $labels.job_type }} task on datastore {{ $labels.datastore }} did not end OK. "
            "A verify failing means a snapshot is corrupt (the newest may be unrestorable); a prune or GC "
            "failing lets the datastore fill. Read the task log in the PBS UI."
        ),
    )


def _pbs_api_down(config: StackConfig) -> Rule:
    return alert(
        config,
        "PbsApiDown",
        "pbs_up == 0",
        hold=HOST_FOR,
        severity="warning",
        service="backup",
        summary="The PBS collector on {{ $labels.instance }} cannot read the Proxmox Backup Server API",
        description=(
            "The PBS collector reports pbs_up 0: the PBS API refused its snapshot listing (down, or the "
            f"collector's read-only token revoked) for {HOST_FOR}, so snapshot and verify state are missing."
        ),
    )


def _backup_nodes_expected(config: StackConfig, inventory: Inventory) -> Iterator[Rule]:
    for node in sorted({g.node for g in inventory.protected}):
        yield record("obs:backup_node_expected:info", "vector(1)", {"node": node, "asset": node})


def _backup_hook_silent(config: StackConfig) -> Rule:
    backups = config.backups
    limit = seconds(backups.rpo) + seconds(backups.rpo_grace)
    return alert(
        config,
        "BackupHookSilent",
        f"""
        time() - obs_backup_job_last_end_timestamp_seconds > {limit}
        or
        (
          obs:backup_node_expected:info
          unless on(node) obs_backup_job_last_end_timestamp_seconds
        ) and on(asset) (up{{job="node"}} == 1)
        """,
        hold=BACKUP_FOR,
        severity="warning",
        service="backup",
        summary="No vzdump job has ended on {{ $labels.node }} within the RPO",
        description=(
            "The vzdump hook on {{ $labels.node }} has not recorded a job end within "
            f"{backups.rpo} + {backups.rpo_grace}, or never (its node_exporter is up): the node was rebuilt "
            "without the hook, or the backup job no longer runs there. Backup alerts of its guests are blind."
        ),
    )


def _restore_drill_scratch_leftover(config: StackConfig) -> Rule:
    return alert(
        config,
        "RestoreDrillScratchLeftover",
        "obs_restore_drill_scratch_leftover == 1",
        hold="0s",
        severity="warning",
        service="backup",
        summary="The restore drill of {{ $labels.target }} left its scratch VM behind",
        description=(
            "The latest drill of {{ $labels.target }} could not destroy its scratch VM (VMID in the drill "
            "report): it holds disk space and a copy of production data. Destroy it by hand."
        ),
    )


def _restore_rpo_budget_exceeded(config: StackConfig) -> Rule:
    return alert(
        config,
        "RestoreRpoBudgetExceeded",
        "obs_restore_drill_rpo_seconds > on(target) obs_restore_drill_rpo_budget_seconds",
        hold="0s",
        severity="warning",
        service="backup",
        summary="The restored data of {{ $labels.target }} was older than its RPO",
        description=(
            "The latest drill of {{ $labels.target }} restored a backup whose canary was older than the "
            "target's RPO budget (drill.rpo): a real restore would lose more data than promised."
        ),
    )


def render(config: StackConfig, inventory: Inventory) -> str:
    recording = [
        *_protected_guests(inventory),
        *_drill_budgets(inventory),
        *_backup_age_records(config),
        *_pbs_jobs_expected(config),
        *_backup_nodes_expected(config, inventory),
    ]
    alerts = [
        *_backup_too_old(config),
        _backup_job_failed(config),
        _guest_not_backed_up(config),
        _backup_not_verified(config),
        _datastore_filling_up(config),
        _datastore_almost_full(config),
        _maintenance_stale(config),
        _restore_drill_overdue(config),
        _restore_drill_failed(config),
        _restore_rto_budget_exceeded(config),
        _pbs_job_failed(config),
        _pbs_api_down(config),
        _backup_hook_silent(config),
        _restore_drill_scratch_leftover(config),
        _restore_rpo_budget_exceeded(config),
    ]
    return dump("backups", recording + alerts)

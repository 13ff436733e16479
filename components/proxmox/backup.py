"""BackupPlan: the nightly PVE backup job of the protected guests, and its outcome metrics.

One ``backup.Job`` (cluster-wide: each node backs up its own guests) at the configured schedule
(default 02:00), snapshot mode, to the PBS storage entry, stating the configured retention
(``keep-daily=30`` by default) with ``remove=0``: PBS's prune job enforces it, because the PVE
token may only write backups (docs/proxmox-privileges.md). With ``selection: protected`` it lists exactly the protected
guests' VMIDs; with ``selection: all_except`` it backs up every guest on the cluster except the
excluded ones (so a guest created outside the inventory is covered too).

The vzdump hook (components/render/vzdump_hook.py) is installed on every PVE node over
SSH and wired in through /etc/vzdump.conf (``script:``): PVE lets only root@pam set a job's own
``script`` option, and this program runs with a least-privilege API token.

The job is ``protect=True``: it is what keeps the backups coming, so neither ``pulumi destroy``
(``--exclude-protected`` skips it, its parent and what it depends on, the hooks) nor a change that
would replace it removes it silently; its settings update in place (Pulumi docs, resource option
``protect``). To remove it on purpose: ``pulumi state unprotect <urn of backups-nightly>``, then
``pulumi destroy`` or ``pulumi up`` without it. Deleting the job deletes no backup: they live on PBS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
from pulumi_command import remote

from components import ssh
from components.config import Asset, BackupsSection, Retention, StackConfig
from components.inventory import Inventory, ProtectedGuest
from components.monitoring import install
from components.render import files_for, vzdump_hook


@dataclass(frozen=True)
class BackupPlanArgs:
    backups: BackupsSection
    protected: tuple[ProtectedGuest, ...]
    nodes: tuple[Asset, ...]
    ssh_user: str
    ssh_private_key: pulumi.Input[str]
    storage_id: pulumi.Input[str]
    config: StackConfig
    inventory: Inventory
    excluded_vmids: tuple[int, ...] = ()

    @classmethod
    def from_config(
        cls,
        config: StackConfig,
        inventory: Inventory,
        ssh_private_key: pulumi.Input[str],
        storage_id: pulumi.Input[str],
    ) -> BackupPlanArgs:
        assets = config.inventory.by_name()
        return cls(
            backups=config.backups,
            protected=inventory.protected,
            nodes=tuple(config.pve_nodes()),
            ssh_user=config.proxmox.ssh_user,
            ssh_private_key=ssh_private_key,
            storage_id=storage_id,
            config=config,
            inventory=inventory,
            excluded_vmids=tuple(v for name in config.backups.exclude if (v := assets[name].vmid) is not None),
        )


def prune_backups(retention: Retention) -> dict[str, str]:
    """``{"keep-daily": "30", ...}`` as the provider's prune_backups map wants it."""
    return {
        field.replace("_", "-"): str(value)
        for field in type(retention).model_fields
        if (value := getattr(retention, field))
    }


def job_selection(args: BackupPlanArgs) -> dict[str, Any]:
    """Job arguments choosing the guests: explicit VMIDs, or all guests minus the excluded ones."""
    if args.backups.selection == "all_except":
        return {"all": True, "excludes": [str(v) for v in sorted(args.excluded_vmids)]}
    return {"vmids": [str(v) for v in sorted(g.vmid for g in args.protected)]}


class BackupPlan(pulumi.ComponentResource):
    vmids: pulumi.Output[list[int]]
    job_id: pulumi.Output[str]

    def __init__(self, name: str, args: BackupPlanArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:proxmox:BackupPlan", name, None, opts)
        hooks = [self._hook(name, args, node) for node in args.nodes]
        backups = args.backups
        self.job = proxmoxve.backup.Job(
            f"{name}-nightly",
            proxmoxve.backup.JobArgs(
                resource_id=args.config.stack_names.backup_job,  # stack-scoped (components/names.py)
                schedule=backups.schedule,
                storage=args.storage_id,
                mode=backups.mode,
                compress=backups.compress,
                enabled=True,
                repeat_missed=True,
                prune_backups=prune_backups(backups.retention),
                # PVE must not prune: its PBS token is DatastoreBackup ("backup and restore, but no
                # prune") and vzdump fails a guest's backup when its prune is refused. PBS's prune
                # job applies the retention (config validation keeps it at least as long).
                remove=False,
                notes_template="{{guestname}} (obsstack nightly)",
                **job_selection(args),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=hooks, protect=True),  # see module docstring
        )
        self.vmids = pulumi.Output.from_input(sorted(g.vmid for g in args.protected))
        self.job_id = self.job.resource_id
        self.register_outputs({"vmids": self.vmids, "jobId": self.job_id})

    def _hook(self, name: str, args: BackupPlanArgs, node: Asset) -> remote.Command:
        """The dispatcher and this stack's hook through the install path, then wired into /etc/vzdump.conf."""
        assert node.address is not None  # config validation: PVE nodes have addresses
        user = node.ssh_user or args.ssh_user
        connection = ssh.connection(node.address, user, args.ssh_private_key)
        files, _ = files_for(args.config, args.inventory, node.name)
        where = vzdump_hook.placement(args.config)
        target = install.InstallTarget(
            f"{name}-hook-{node.name}-files",
            node.address,
            user,
            connection,
            tuple(f for f in files if f.path in (vzdump_hook.HOOK_PATH, where.hook_file)),
        )
        installed = install.install_files(self, args.config, target)
        wire = vzdump_hook.wire_script(node.name, where)
        return remote.Command(
            f"{name}-hook-{node.name}",
            # In place, no triggers: a replacement's delete would unhook it.
            ssh.command_args(
                connection, create=wire, update=wire, delete=vzdump_hook.uninstall_script(node.name, where)
            ),
            ssh.job_options(pulumi.ResourceOptions(parent=self, depends_on=[installed])),
        )

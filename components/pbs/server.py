"""PbsServer: datastores, prune/GC/verify/sync jobs, the PVE token and the collector on PBS.

Everything goes over SSH with ``proxmox-backup-manager`` (scripts in components/pbs/scripts.py).
Datastore commands hold backups: they are ``protect=True`` and ``retain_on_delete=True``. No
command has ``triggers``: pulumi-command's schema marks them ``replaceOnChanges`` (see
components/ssh.py), and a replacement runs the old ``delete`` after the new ``create``, removing
the job it just wrote. A changed script changes ``create``/``update``, which the engine applies
as an in-place update that runs the new script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_command import remote

from components import aliases, ssh
from components.config import Asset, PbsDatastore, StackConfig
from components.inventory import Inventory
from components.monitoring import install
from components.monitoring.host import acme_env
from components.pbs import scripts
from components.render import SecretFile, acme, files_for, pbs_collector


@dataclass(frozen=True)
class PbsServerArgs:
    config: StackConfig
    inventory: Inventory
    host: Asset
    ssh_private_key: pulumi.Input[str]
    # Secret config values by key: the ACME DNS provider's credentials (tls.mode acme).
    secrets: Mapping[str, Any] = field(default_factory=dict)


COLLECTOR_FILES = (pbs_collector.SCRIPT_PATH, pbs_collector.SERVICE_PATH, pbs_collector.TIMER_PATH)
INSTALLED_FILES = COLLECTOR_FILES + acme.INSTALLED


def acme_env_resolver(config: StackConfig, secrets: Mapping[str, Any]) -> install.Resolver:
    """The ACME credentials file: each provider variable with its secret value, kept secret."""

    def resolve(item: SecretFile) -> pulumi.Output[str]:
        if item.source != acme.ENV_SOURCE:
            raise ValueError(f"{item.path}: PBS receives no secret from {item.source!r}")
        return acme_env(config, secrets)

    return resolve


class PbsServer(pulumi.ComponentResource):
    datastores: pulumi.Output[list[str]]
    token_id: pulumi.Output[str]

    def __init__(self, name: str, args: PbsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:pbs:PbsServer", name, None, aliases.renamed_from("obsstack:pbs:PbsServer", opts))
        pbs = args.config.pbs
        assert args.host.address is not None  # config validation: hosts have addresses
        self._name = name
        user = args.host.ssh_user or args.config.proxmox.ssh_user
        self._connection = ssh.connection(args.host.address, user, args.ssh_private_key)

        stores = {ds.name: self._datastore(ds) for ds in pbs.datastores}
        scoped = args.config.stack_names  # job ids of this stack only (components/names.py)
        for ds in pbs.datastores:
            store = [stores[ds.name]]
            self._command(f"gc-{ds.name}", scripts.gc_schedule(ds), scripts.gc_schedule_delete(ds), store)
            self._command(
                f"prune-{ds.name}",
                scripts.prune_job(ds, scoped),
                scripts.job_delete("prune-job", pbs_collector.prune_job_id(ds.name, scoped)),
                store,
            )
            self._command(
                f"verify-{ds.name}",
                scripts.verify_jobs(ds, scoped),
                scripts.job_delete("verify-job", *pbs_collector.verify_job_ids(ds.name, scoped)),
                store,
            )
            if ds.sync is not None:
                targets = [stores[ds.sync.remote_store]] if ds.sync.remote is None else []
                self._command(
                    f"sync-{ds.name}",
                    scripts.sync_job(ds, scoped),
                    scripts.job_delete("sync-job", scripts.sync_job_id(ds, scoped)),
                    store + targets,
                )
        self.token = self._command(
            "pve-token",
            scripts.api_token(pbs),
            scripts.api_token_delete(pbs),
            [stores[pbs.datastore]],
            secret_output=True,
        )
        metrics_token = self._command(
            "metrics-token",
            scripts.metrics_token(pbs),
            scripts.metrics_token_delete(pbs),
            list(stores.values()),
            secret_output=True,
        )
        self.collector = self._command(
            "collector", pbs_collector.prerequisites_script(), pbs_collector.uninstall_script(), [metrics_token]
        )
        shipped, shipped_secrets = files_for(args.config, args.inventory, args.host.name)
        collector_files = install.InstallTarget(
            name=f"{name}-collector",
            ip=args.host.address,
            user=user,
            connection=self._connection,
            files=tuple(f for f in shipped if f.path in INSTALLED_FILES),
            secrets=tuple(s for s in shipped_secrets if s.path == acme.ENV_FILE),
            only=("files",),
        )
        # The collector, and the ACME renewer with its credentials file where tls.mode is acme.
        (self.collector_applied,) = install.install(
            self, args.config, collector_files, acme_env_resolver(args.config, args.secrets), [self.collector]
        )

        self.datastores = pulumi.Output.from_input(sorted(stores))
        self.token_id = pulumi.Output.from_input(f"{pbs.token_user}!{pbs.token_name}")
        self.register_outputs({"datastores": self.datastores, "tokenId": self.token_id})

    def _datastore(self, ds: PbsDatastore) -> remote.Command:
        script = scripts.datastore_create(ds)
        return remote.Command(
            f"{self._name}-datastore-{ds.name}",
            ssh.command_args(self._connection, create=script, update=script, delete=scripts.datastore_delete(ds)),
            pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )

    def _command(
        self, role: str, create: str, delete: str, after: list[Any], *, secret_output: bool = False
    ) -> remote.Command:
        secret = ["stdout", "stderr"] if secret_output else []
        return remote.Command(
            f"{self._name}-{role}",
            # A changed script re-runs in place (update): never a replacement, see the module doc.
            ssh.command_args(self._connection, create=create, update=create, delete=delete),
            ssh.job_options(pulumi.ResourceOptions(parent=self, depends_on=after, additional_secret_outputs=secret)),
        )

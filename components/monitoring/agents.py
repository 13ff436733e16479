"""HostAgents: node_exporter (TLS + basic auth, textfile directory) and Alloy on a managed asset.

Every command also triggers on the host's identity (its SSH host keys, read at every
preview/up): a rebuilt guest gets new host keys, so the exporter it lost in the rebuild comes
back on the next `pulumi up` without anyone remembering to reinstall it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_command import local

from components import aliases, ssh
from components.config import Asset, StackConfig
from components.inventory import Inventory
from components.monitoring import install, services
from components.monitoring.credentials import WebCredentials
from components.monitoring.host import secret_resolver
from components.monitoring.pki import InternalCa
from components.render import files_for


@dataclass(frozen=True)
class HostAgentsArgs:
    config: StackConfig
    inventory: Inventory
    asset: Asset
    secrets: Mapping[str, Any]
    pki: InternalCa
    credentials: WebCredentials


def identity_command(address: str, port: int = 22) -> str:
    """A fingerprint of the host's SSH host keys (empty output if unreachable)."""
    host = shlex.quote(address)
    return f"ssh-keyscan -T 10 -p {port} {host} 2>/dev/null | awk '{{print $2, $3}}' | sort | sha256sum | cut -c1-16"


def reach(config: StackConfig, asset: Asset) -> tuple[str, str, int | None]:
    """(SSH host, SSH user, container VMID or None) for installing agents on ``asset``.

    PVE and PBS hosts are reached like the Proxmox provider reaches them (root by default), VMs
    as the monitoring SSH user. LXC guests the way Proxmox users reach them: over their node's
    SSH, with ``pct exec <vmid>`` (PVE's container templates have no sshd and no sudo)."""
    if asset.kind == "lxc":
        node = config.inventory.by_name()[str(asset.node)]
        return str(node.address), node.ssh_user or config.proxmox.ssh_user, asset.vmid
    default_user = config.proxmox.ssh_user if asset.kind in ("pve_node", "pbs_host") else config.monitoring.ssh_user
    return str(asset.address), asset.ssh_user or default_user, None


class HostAgents(pulumi.ComponentResource):
    asset: str
    identity: pulumi.Output[str]

    def __init__(self, name: str, args: HostAgentsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:monitoring:HostAgents", name, None, aliases.renamed_from("obsstack:monitoring:HostAgents", opts)
        )
        config, asset = args.config, args.asset
        self.asset = asset.name
        address = str(asset.address)
        ssh_host, user, container = reach(config, asset)
        # An LXC guest has no sshd: its identity is its node's host keys with its VMID.
        self.identity = local.run_output(command=identity_command(ssh_host)).apply(
            lambda result: f"{asset.vmid or '-'}:{(result.stdout or '').strip()}"
        )
        files, secrets = files_for(config, args.inventory, asset.name)
        target = install.InstallTarget(
            name=name,
            ip=address,
            user=user,
            connection=ssh.connection(ssh_host, user, args.secrets[config.proxmox.ssh_private_key_secret]),
            files=tuple(files),
            secrets=tuple(secrets),
            only=services.AGENT_SERVICES,
            identity=self.identity,
            container=container,
        )
        self.applied = install.install(self, config, target, secret_resolver(args.secrets, args.pki, args.credentials))
        self.register_outputs({"asset": self.asset, "identity": self.identity})

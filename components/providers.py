"""Explicit providers: every resource says which Proxmox it talks to, never an ambient default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve

from components.config import StackConfig


@dataclass(frozen=True)
class Providers:
    proxmox: proxmoxve.Provider


def build(config: StackConfig, secrets: dict[str, Any]) -> Providers:
    pve = config.proxmox
    proxmox = proxmoxve.Provider(
        "proxmox",
        proxmoxve.ProviderArgs(
            endpoint=pve.endpoint,
            insecure=pve.insecure,
            api_token=secrets[pve.api_token_secret],
            ssh=proxmoxve.ProviderSshArgs(
                username=pve.ssh_user,
                private_key=secrets[pve.ssh_private_key_secret],
                nodes=[proxmoxve.ProviderSshNodeArgs(name=n.name, address=str(n.address)) for n in config.pve_nodes()],
            ),
        ),
        opts=pulumi.ResourceOptions(additional_secret_outputs=["apiToken"]),
    )
    return Providers(proxmox=proxmox)

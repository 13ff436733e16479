"""BackupStorage: the PVE storage entries for PBS and the durable NFS/SMB volumes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import PbsSection, ProxmoxSection


@dataclass(frozen=True)
class BackupStorageArgs:
    proxmox: ProxmoxSection
    pbs: PbsSection


class BackupStorage(pulumi.ComponentResource):
    pbs_storage_id: pulumi.Output[str]

    def __init__(self, name: str, args: BackupStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:proxmox:Storage", name, None, opts)
        self.pbs_storage_id = pulumi.Output.from_input(args.pbs.storage_id)
        self.register_outputs({"pbsStorageId": self.pbs_storage_id})

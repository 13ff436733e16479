"""BackupPlan: the nightly PVE backup job of the protected guests."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import BackupsSection
from components.inventory import ProtectedGuest


@dataclass(frozen=True)
class BackupPlanArgs:
    backups: BackupsSection
    protected: tuple[ProtectedGuest, ...]


class BackupPlan(pulumi.ComponentResource):
    vmids: pulumi.Output[list[int]]

    def __init__(self, name: str, args: BackupPlanArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:proxmox:BackupPlan", name, None, opts)
        self.vmids = pulumi.Output.from_input(sorted(g.vmid for g in args.protected))
        self.register_outputs({"vmids": self.vmids})

"""PbsServer: datastores, prune/GC/verify jobs and the PVE token on Proxmox Backup Server."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import Asset, PbsSection


@dataclass(frozen=True)
class PbsServerArgs:
    pbs: PbsSection
    host: Asset


class PbsServer(pulumi.ComponentResource):
    datastores: pulumi.Output[list[str]]

    def __init__(self, name: str, args: PbsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:pbs:Server", name, None, opts)
        self.datastores = pulumi.Output.from_input([d.name for d in args.pbs.datastores])
        self.register_outputs({"datastores": self.datastores})

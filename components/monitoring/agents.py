"""HostAgents: node_exporter (with its textfile directory) and Alloy on every managed asset."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import Asset, StackConfig


@dataclass(frozen=True)
class HostAgentsArgs:
    config: StackConfig
    asset: Asset


class HostAgents(pulumi.ComponentResource):
    asset: str

    def __init__(self, name: str, args: HostAgentsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:monitoring:Agents", name, None, opts)
        self.asset = args.asset.name
        self.register_outputs({"asset": self.asset})

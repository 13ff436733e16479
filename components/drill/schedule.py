"""RestoreDrills: canaries in the drill targets and the drill's timer on the monitoring host."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import StackConfig
from components.inventory import Inventory


@dataclass(frozen=True)
class RestoreDrillsArgs:
    config: StackConfig
    inventory: Inventory


class RestoreDrills(pulumi.ComponentResource):
    targets: list[str]

    def __init__(self, name: str, args: RestoreDrillsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:drill:RestoreDrills", name, None, opts)
        self.targets = [t.name for t in args.inventory.drill_targets]
        self.register_outputs({"targets": self.targets})

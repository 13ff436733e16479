"""Stack outputs (camelCase): the contract between `pulumi up` and the tools and runbooks."""

from __future__ import annotations

from typing import Any

from components.config import StackConfig
from components.inventory import Inventory
from components.render import drill

RESTORE_DRILL_TOKEN_OUTPUT = drill.TOKEN_OUTPUT


def inventory_output(inventory: Inventory) -> dict[str, Any]:
    return {
        "cluster": inventory.cluster,
        "registeredTargets": [
            {"asset": e.asset, "job": e.job, "instance": e.instance, "service": e.service, "tier": e.tier}
            for e in inventory.coverage
        ],
        "protectedGuests": [
            {"name": g.name, "vmid": g.vmid, "node": g.node, "kind": g.kind, "service": g.service}
            for g in inventory.protected
        ],
        "managedHosts": sorted(a.name for a in inventory.managed_hosts),
        "monitoringHosts": [m.name for m in inventory.monitoring],
    }


def restore_drill_output(config: StackConfig, inventory: Inventory) -> dict[str, Any]:
    """The `restoreDrill` output (built by the render stage, exported here)."""
    return drill.restore_drill_document(config, inventory)

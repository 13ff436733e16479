"""Stack outputs (camelCase): the contract between `pulumi up` and the tools and runbooks."""

from __future__ import annotations

from typing import Any

import pulumi

from components.config import StackConfig, duration_seconds
from components.inventory import Inventory


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


def endpoints_output(urls: dict[str, dict[str, pulumi.Output[str]]]) -> dict[str, Any]:
    """Monitoring host name -> {prometheus, alertmanager, grafana} URLs."""
    return urls


def restore_drill_output(config: StackConfig, inventory: Inventory) -> dict[str, Any]:
    drill = config.backups.drill
    low, high = drill.scratch_vmid_range
    return {
        "pveEndpoint": config.proxmox.endpoint,
        "nodes": [n.name for n in config.pve_nodes()],
        "pbsStorage": config.pbs.storage_id,
        "scratchStorage": drill.scratch_storage,
        "scratchVmidRange": [low, high],
        "isolation": drill.isolation,
        "isolatedBridge": drill.isolated_bridge,
        "everySeconds": duration_seconds(drill.every),
        "targets": [
            {
                "name": t.name,
                "vmid": t.vmid,
                "node": drill.node or t.node,
                "canaryPaths": list(t.canary_paths),
                "rpoSeconds": t.rpo_seconds,
                "rtoSeconds": t.rto_seconds,
            }
            for t in inventory.drill_targets
        ],
    }

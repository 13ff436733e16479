"""Stack outputs (camelCase): the contract between `pulumi up` and the tools and runbooks."""

from __future__ import annotations

from typing import Any

import pulumi

from components.config import StackConfig, duration_seconds
from components.inventory import Inventory
from components.monitoring.render import drill as drill_layout

# The drill's own PVE API token (`user@realm!name=secret`), a secret output of its own.
RESTORE_DRILL_TOKEN_OUTPUT = "restoreDrillPveToken"


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
    """The `restoreDrill` output: everything tools/restore_drill needs, no secret (schema:
    tools/restore_drill/schema.py, documented in docs/restore-drill.md)."""
    drill = config.backups.drill
    low, high = drill.scratch_vmid_range
    mon_ports = config.monitoring.ports
    return {
        "schemaVersion": 1,
        "cluster": config.cluster,
        "pve": {
            "endpoint": config.proxmox.endpoint,
            "verifyTls": not config.proxmox.insecure,
            "nodes": [n.name for n in config.pve_nodes()],
        },
        "pbsStorage": config.pbs.storage_id,
        "scratch": {"storage": drill.scratch_storage, "vmidRange": [low, high], "pool": drill.pool, "node": drill.node},
        "isolation": {"mode": drill.isolation, "bridge": drill.isolated_bridge},
        "timeouts": {
            "restoreSeconds": duration_seconds(drill.restore_timeout),
            "agentSeconds": duration_seconds(drill.agent_timeout),
            "verifySeconds": duration_seconds(drill.verify_timeout),
        },
        "schedule": {
            "everySeconds": duration_seconds(drill.every),
            "checkAt": drill.check_at,
            "canaryOnCalendar": config.backups.canary_on_calendar(),
        },
        "canary": {"file": drill_layout.CANARY_FILE, "manifest": drill_layout.MANIFEST_FILE},
        "credentials": {
            "tokenId": drill_layout.TOKEN_ID,
            "tokenOutput": RESTORE_DRILL_TOKEN_OUTPUT,
            "tokenFile": drill_layout.TOKEN_FILE,
        },
        "metrics": {
            "mode": drill.metrics,
            "textfileDir": drill_layout.TEXTFILE_DIR,
            "pushgatewayUrl": f"http://127.0.0.1:{mon_ports.pushgateway}",
        },
        "targets": [
            {
                "name": t.name,
                "vmid": t.vmid,
                "node": t.node,
                "service": t.service,
                "canaryPaths": list(t.canary_paths),
                "rpoSeconds": t.rpo_seconds,
                "rtoSeconds": t.rto_seconds,
            }
            for t in inventory.drill_targets
        ],
    }

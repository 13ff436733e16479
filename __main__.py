"""obsstack: observability and backups for a Proxmox homelab, in one `pulumi up`.

Reads like a table of contents: config -> inventory -> components -> outputs.
"""

import pulumi

from components import config as stack_config
from components import inventory as stack_inventory
from components import outputs, providers
from components.drill.schedule import RestoreDrills, RestoreDrillsArgs
from components.grafana.config import GrafanaConfig, GrafanaConfigArgs
from components.monitoring.agents import HostAgents, HostAgentsArgs
from components.monitoring.host import MonitoringHost, MonitoringHostArgs
from components.monitoring.pki import InternalCa, InternalCaArgs
from components.pbs.server import PbsServer, PbsServerArgs
from components.proxmox.backup import BackupPlan, BackupPlanArgs
from components.proxmox.storage import BackupStorage, BackupStorageArgs
from components.proxmox.vm import ProxmoxVm, ProxmoxVmArgs

# 1. Typed config, validated before anything is declared.
try:
    config = stack_config.load()
except stack_config.ConfigError as err:
    raise pulumi.RunError(str(err)) from None
secrets = stack_config.load_secrets(config)
inventory = stack_inventory.build(config)
prov = providers.build(config, secrets)
pve = pulumi.ResourceOptions(providers=[prov.proxmox])

# 2. Backup storage, PBS and the nightly backup regime.
ssh_key = secrets[config.proxmox.ssh_private_key_secret]
pbs = PbsServer("pbs", PbsServerArgs(config, inventory, config.pbs_host(), ssh_key))
storage = BackupStorage(
    "storage",
    BackupStorageArgs(config.proxmox, config.pbs, str(config.pbs_host().address), secrets),
    pve.merge(pulumi.ResourceOptions(depends_on=[pbs])),
)
backups = BackupPlan(
    "backups",
    BackupPlanArgs.from_config(config, inventory, ssh_key, storage.pbs_storage_id),
    pve.merge(pulumi.ResourceOptions(depends_on=[storage])),
)

# 3. The monitoring plane: its VMs, an internal CA, the services on them, agents everywhere.
pki = InternalCa("pki", InternalCaArgs(config.cluster, inventory.monitoring))
endpoints = {}
hosts = []
for node in inventory.monitoring:
    vm = ProxmoxVm(node.name, ProxmoxVmArgs.monitoring(config, node, ssh_key), pve)
    host = MonitoringHost(
        f"{node.name}-services",
        MonitoringHostArgs(config, inventory, node, vm.ip),
        pulumi.ResourceOptions(depends_on=[vm, pki]),
    )
    hosts.append(host)
    endpoints[node.name] = {
        "prometheus": host.prometheus_url,
        "alertmanager": host.alertmanager_url,
        "grafana": host.grafana_url,
    }
agents = [HostAgents(f"{asset.name}-agents", HostAgentsArgs(config, asset)) for asset in inventory.managed_hosts]

# 4. Grafana as code, pointed at the Grafana the first monitoring host runs.
grafana = GrafanaConfig(
    "grafana",
    GrafanaConfigArgs(config, hosts[0].grafana_url),
    pulumi.ResourceOptions(depends_on=hosts),
)

# 5. Restore drills that prove the backups restore.
drills = RestoreDrills("drills", RestoreDrillsArgs(config, inventory), pulumi.ResourceOptions(depends_on=[backups]))

# 6. Outputs for the tools and runbooks.
pulumi.export("inventory", outputs.inventory_output(inventory))
pulumi.export("endpoints", outputs.endpoints_output(endpoints))
pulumi.export("restoreDrill", outputs.restore_drill_output(config, inventory))

"""obsstack: observability and backups for a Proxmox homelab, in one `pulumi up`.

Reads like a table of contents: config -> inventory -> components -> outputs.
"""

import pulumi

import dashboards
from components import config as stack_config
from components import inventory as stack_inventory
from components import outputs, providers
from components.drill.schedule import RestoreDrills, RestoreDrillsArgs
from components.grafana.config import GrafanaConfig, GrafanaConfigArgs
from components.monitoring.agents import HostAgents, HostAgentsArgs
from components.monitoring.credentials import WebCredentials
from components.monitoring.host import MonitoringHost, MonitoringHostArgs
from components.monitoring.pki import InternalCa, InternalCaArgs, cert_hosts
from components.pbs.server import PbsServer, PbsServerArgs
from components.proxmox.backup import BackupPlan, BackupPlanArgs
from components.proxmox.exporter_token import PveExporterToken, PveExporterTokenArgs
from components.proxmox.storage import BackupStorage, BackupStorageArgs
from components.proxmox.vm import ProxmoxVm, ProxmoxVmArgs
from components.render import pbs_certificate, pve_exporter

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
pbs = PbsServer("pbs", PbsServerArgs(config, inventory, config.pbs_host(), ssh_key, secrets))
# The internal CA and the agents (node exporter, Alloy) on every managed host come first: with
# pbs.certificate stack_ca, PVE's storage entry verifies PBS by that CA, so it waits until the
# agents made every PVE node trust the CA and PBS serve its certificate (render/pbs_certificate.py).
pki = InternalCa("pki", InternalCaArgs(config.cluster, config.monitoring.domain, cert_hosts(inventory)))
credentials = WebCredentials("credentials")
agents = [
    HostAgents(f"{asset.name}-agents", HostAgentsArgs(config, inventory, asset, secrets, pki, credentials))
    for asset in inventory.managed_hosts
]
trusting = {config.pbs.host, *pbs_certificate.trusting_hosts(config)} if pbs_certificate.enabled(config) else set()
trust_pbs = [a for a in agents if a.asset in trusting]
storage = BackupStorage(
    "storage",
    BackupStorageArgs(
        config.proxmox,
        config.pbs,
        str(config.pbs_host().address),
        secrets,
        tuple(config.pve_nodes()),
        config.proxmox.ssh_user,
        ssh_key,
    ),
    pve.merge(pulumi.ResourceOptions(depends_on=[pbs, *trust_pbs])),
)
backups = BackupPlan(
    "backups",
    BackupPlanArgs.from_config(config, inventory, ssh_key, storage.pbs_storage_id),
    pve.merge(pulumi.ResourceOptions(depends_on=[storage])),
)

# 3. The monitoring plane: its VMs and the services on them (the CA and the agents are above).
# prometheus-pve-exporter on every monitoring host reads PVE with a read-only token of its own.
exporter_token = PveExporterToken(
    "pve-exporter",
    PveExporterTokenArgs(user_id=config.stack_names.exporter_user, role_id=config.stack_names.exporter_role),
    pve,
)
monitoring_secrets = {**secrets, pve_exporter.TOKEN_KEY: exporter_token.value}
endpoints = {}
hosts = []
for node in inventory.monitoring:
    vm_args = ProxmoxVmArgs.monitoring(config, node, ssh_key)
    # The VM's disks on a durable (NFS/SMB) storage need that storage entry to exist first.
    disk_storages = [storage.durable_by_id[s] for s in vm_args.disk_storages() if s in storage.durable_by_id]
    vm = ProxmoxVm(node.name, vm_args, pve.merge(pulumi.ResourceOptions(depends_on=disk_storages)))
    host = MonitoringHost(
        f"{node.name}-services",
        MonitoringHostArgs(config, inventory, node, vm.ip, monitoring_secrets, pki, credentials),
        pulumi.ResourceOptions(depends_on=[vm, pki]),
    )
    hosts.append(host)
    endpoints[node.name] = host.endpoints

# 4. Grafana as code on every monitoring host: the same datasources (each Grafana reads its own
# host's Prometheus, Alertmanager and Loki, so it outlives its peer) and dashboards everywhere;
# contact points and the notification policy only on the first (primary) host, so a
# Grafana-managed alert someone adds notifies once. The primary keeps the name `grafana`.
boards = dashboards.render(config)
grafanas = [
    GrafanaConfig(
        "grafana" if index == 0 else f"grafana-{node.name}",
        GrafanaConfigArgs.on_host(config, secrets, host, node, (pki, credentials), boards=boards, alerting=index == 0),
    )
    for index, (host, node) in enumerate(zip(hosts, inventory.monitoring, strict=True))
]

# 5. Restore drills that prove the backups restore.
drills = RestoreDrills(
    "drills",
    RestoreDrillsArgs(config, inventory, secrets),
    pve.merge(pulumi.ResourceOptions(depends_on=[backups, *hosts])),
)

# 6. Outputs for the tools and runbooks.
pulumi.export("inventory", outputs.inventory_output(inventory))
pulumi.export("endpoints", endpoints)  # monitoring host -> {prometheus, alertmanager, grafana} URL
pulumi.export("restoreDrill", outputs.restore_drill_output(config, inventory))
pulumi.export(outputs.RESTORE_DRILL_TOKEN_OUTPUT, drills.token)

"""The twin's stack config: the example homelab (Pulumi.prod.yaml) scaled down to the hosts the
twin boots, at addresses on the twin's LAN (tests/twin/net.py), and what the twin installs where.

Scaled down: one PVE node (pve1), the PBS host (pbs1) with its main datastore, one VM guest
(gitea, as in the example) and one LXC guest (dns1), two monitoring hosts (HA). Every receiver of
the example keeps its name and route but is a webhook to the sink (no Slack, SMTP or on-call
service on the LAN), so the sink sees which receiver the routing chose. The Grafana-repository
services (Loki, Grafana, Alloy) are not installed (that repository is unreachable here), so their
scrape jobs and registered targets are left out of what the twin's Prometheus is given (see
:func:`without_unreachable_jobs`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.monitoring import services
from components.render import HostFile, SecretFile, host_files, secret_files
from tests.twin.machines import LOGIN_USER, HostSpec
from tests.twin.net import SUBNET

SINK_ADDRESS = f"{SUBNET}.2"
SINK_PORT = 8080
DATA_MOUNT = "/srv/obsstack"

HOSTS = (
    HostSpec("mon-1", f"{SUBNET}.11", data_disk=DATA_MOUNT),
    HostSpec("mon-2", f"{SUBNET}.12", data_disk=DATA_MOUNT),
    HostSpec("pve1", f"{SUBNET}.21", user="root"),
    HostSpec("pbs1", f"{SUBNET}.31", user="root", data_disk="/mnt/datastore", data_disk_mb=64),
    HostSpec("gitea", f"{SUBNET}.110"),
    HostSpec("dns1", f"{SUBNET}.53"),
)
MONITORING = ("mon-1", "mon-2")
GUESTS = ("gitea", "dns1")

# What the twin installs on each host, in the order the program does (__main__.py: the PBS host
# with its collector, the backup plan's hook on the PVE nodes, the exporter's PVE token, then the
# monitoring hosts, then the agents on every managed host). Hosts of one phase are installed in
# parallel, each host's steps in order (tests/twin/twin.py implements each step). TWIN-ONLY steps
# stand in for the real systems: the PBS CLI, the PVE API and `pct` on the PVE node.
INSTALL_PHASES: tuple[dict[str, tuple[str, ...]], ...] = (
    {"pbs1": ("pbs-standin", "pbs-collector"), "pve1": ("fake-pve-api", "pct-standin", "vzdump-hook")},
    dict.fromkeys(MONITORING, ("data-disk", "monitoring")),
    dict.fromkeys(("pve1", "pbs1", *GUESTS), ("agents",)),
)
# Loki, Grafana and Alloy come from Grafana's APT repository, unreachable from here.
UNREACHABLE_SERVICES = ("loki", "grafana", "alloy")
MONITORING_SERVICES = tuple(s for s in services.ORDER if s not in UNREACHABLE_SERVICES)
AGENT_SERVICES = tuple(s for s in services.AGENT_SERVICES if s not in UNREACHABLE_SERVICES)
UNREACHABLE_JOBS = ("loki", "grafana", "alloy")


def address(name: str) -> str:
    return next(h.address for h in HOSTS if h.name == name)


def sections(example: dict[str, Any], scrape_interval: str = "3s") -> dict[str, Any]:
    sec = copy.deepcopy(example)
    sec["proxmox"]["endpoint"] = f"https://{address('pve1')}:8006/"
    sec["proxmox"]["durable_storages"] = []
    sec["pbs"]["datastores"] = [d for d in sec["pbs"]["datastores"] if d["name"] == "main"]
    sec["pbs"]["datastores"][0].pop("sync", None)
    tcp = "tcp_connect"
    sec["inventory"] = {
        "assets": [
            {"name": "pve1", "kind": "pve_node", "address": address("pve1"), "service": "proxmox", "tier": "critical"},
            {"name": "pbs1", "kind": "pbs_host", "address": address("pbs1"), "service": "backup", "tier": "critical"},
            # The example probes DNS on :53 and gitea's health URL; the twin's guests run sshd only.
            {"name": "dns1", "kind": "lxc", "vmid": 101, "node": "pve1", "address": address("dns1"),
             "service": "dns", "tier": "critical", "probes": [{"module": tcp, "target": f"{address('dns1')}:22"}]},
            {"name": "gitea", "kind": "vm", "vmid": 110, "node": "pve1", "address": address("gitea"),
             "service": "git", "tier": "critical", "probes": [{"module": tcp, "target": f"{address('gitea')}:22"}]},
        ]
    }  # fmt: skip
    mon = sec["monitoring"]
    mon["replicas"] = 2
    mon["hosts"] = [
        {"name": name, "vmid": 200 + i, "node": "pve1", "address": f"{address(name)}/24"}
        for i, name in enumerate(MONITORING)
    ]
    mon["vm"]["data_storage"] = None
    mon["vm"]["dns"] = []
    mon["vm"]["data_mount"] = DATA_MOUNT
    mon["scrape_interval"], mon["scrape_timeout"], mon["evaluation_interval"] = scrape_interval, "2s", scrape_interval
    mon["ssh_user"] = LOGIN_USER
    mon["apt_proxy"] = None  # set by the twin to its proxy's URL
    alerting = sec["alerting"]
    alerting["receivers"] = [
        {"name": r["name"], "type": "webhook", "url": f"http://{SINK_ADDRESS}:{SINK_PORT}/{r['name']}"}
        for r in alerting["receivers"]
    ]
    # The hosts are containers on one shared machine: the CPU they report is that machine's, busy
    # with other work. 1.0 ("above 100%") turns HostHighCpuSaturation off for the twin only.
    alerting.setdefault("thresholds", {})["cpu_saturation_ratio"] = 1.0
    for key in ("smtp_smarthost", "smtp_from", "smtp_username", "smtp_password_secret"):
        alerting.pop(key, None)
    alerting["routing"]["warning"]["by_service"] = {}  # the media guest is not in the twin
    sec["backups"]["drill"]["node"] = None
    return sec


@dataclass
class TwinStack:
    config: stack_config.StackConfig
    inventory: stack_inventory.Inventory
    files: list[HostFile]
    secrets: list[SecretFile]

    @classmethod
    def build(cls, raw: dict[str, Any]) -> TwinStack:
        config = stack_config.validate(raw)
        inventory = stack_inventory.build(config)
        files = [without_unreachable_jobs(f) for f in host_files(config, inventory)]
        return cls(config, inventory, files, secret_files(config, inventory))

    def files_of(self, host: str) -> list[HostFile]:
        return [f for f in self.files if f.host == host]

    def secrets_of(self, host: str) -> list[SecretFile]:
        return [s for s in self.secrets if s.host == host]

    def specs(self, host: str, only: tuple[str, ...]) -> list[services.ServiceSpec]:
        return services.specs(self.config, address(host), self.files_of(host), self.secrets_of(host), only=only)

    def registered(self) -> set[tuple[str, str]]:
        """(job, instance) of every registered target the twin's Prometheus must scrape."""
        return {(e.job, e.instance) for e in self.inventory.coverage if e.job not in UNREACHABLE_JOBS}


def without_unreachable_jobs(f: HostFile) -> HostFile:
    """prometheus.yml without the Loki/Grafana/Alloy jobs, the registered targets without them."""
    if f.path.endswith("/prometheus.yml"):
        doc = yaml.safe_load(f.content)
        doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] not in UNREACHABLE_JOBS]
        return HostFile(f.host, f.path, yaml.safe_dump(doc, sort_keys=False), f.mode, f.owner, f.group)
    if f.path.startswith("/etc/prometheus/rules/"):
        doc = yaml.safe_load(f.content)
        for group in doc.get("groups", []):
            group["rules"] = [r for r in group["rules"] if not _names_unreachable_job(r)]
        return HostFile(f.host, f.path, yaml.safe_dump(doc, sort_keys=False), f.mode, f.owner, f.group)
    return f


def _names_unreachable_job(rule: dict[str, Any]) -> bool:
    """A registered-target record (constant, labelled with its job) of a job the twin lacks."""
    return rule.get("record") == "obs:registered_target:info" and rule["labels"]["job"] in UNREACHABLE_JOBS

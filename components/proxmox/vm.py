"""ProxmoxVm: one cloud-init VM of the monitoring plane."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import VmShape
from components.inventory import MonitoringNode


@dataclass(frozen=True)
class ProxmoxVmArgs:
    host: MonitoringNode
    shape: VmShape
    tags: tuple[str, ...]


class ProxmoxVm(pulumi.ComponentResource):
    """A monitoring VM. Outputs: ``ip`` (its address) and ``vm_id`` (its PVE VMID)."""

    ip: pulumi.Output[str]
    vm_id: pulumi.Output[int]

    def __init__(self, name: str, args: ProxmoxVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:proxmox:Vm", name, None, opts)
        self.ip = pulumi.Output.from_input(args.host.ip)
        self.vm_id = pulumi.Output.from_input(args.host.vmid)
        self.register_outputs({"ip": self.ip, "vmId": self.vm_id})

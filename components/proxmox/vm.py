"""ProxmoxVm: one cloud-init VM of the monitoring plane.

The VM boots the Debian 12 cloud image (downloaded to the node with ``download.File``) or a full
clone of a template, gets its address, SSH key and qemu-guest-agent from cloud-init user data (a
snippet), and carries tags for its cluster, service and tier.

It uses ``proxmoxve.VmLegacy`` (``proxmox_virtual_environment_vm``): provider 8.6's new ``Vm``
resource has no disks, network devices or cloud-init yet.

Replacement policy (a VM is never replaced silently for a cosmetic change):
- tags, description, name, CPU, memory, disk size, network and IP settings update in place;
- ``ignore_changes`` covers what cloud-init only reads at first boot, so changing it later must not
  touch the VM: the user-data snippet id and the generated user account, and the boot disk's
  source image (a re-downloaded "latest" image must not re-image a running VM) and clone source;
- what does force a new VM in the provider (VMID, clone source, boot image of a new VM) comes
  only from the host entry in config: a new VMID is a new VM, on purpose.
``migrate=True`` moves the VM when its node changes instead of recreating it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
import pulumi_tls as tls

from components import aliases
from components.config import CloudImage, StackConfig, VmShape
from components.inventory import MONITORING_SERVICE, MonitoringNode
from components.render import cloud_init

# Input paths (camelCase, as the engine sees them) the VM ignores after creation; see module doc.
IGNORED_AFTER_CREATE = (
    "initialization.userDataFileId",
    "initialization.userAccount",
    "disks[0].fileId",
    "clone",
)


@dataclass(frozen=True)
class ProxmoxVmArgs:
    host: MonitoringNode
    shape: VmShape
    tags: tuple[str, ...]
    description: str
    image: CloudImage
    snippets_storage: str
    domain: str
    ssh_user: str
    ssh_private_key: pulumi.Input[str]
    gateway: str | None = None
    apt_proxy: str | None = None
    dhcp: bool = False

    def disk_storages(self) -> list[str]:
        """The storages the VM's disks live on."""
        return sorted({self.shape.storage, self.shape.data_storage or self.shape.storage})

    @classmethod
    def monitoring(cls, config: StackConfig, host: MonitoringNode, ssh_private_key: pulumi.Input[str]) -> ProxmoxVmArgs:
        """A monitoring-plane VM as the stack config describes it."""
        return cls(
            host=host,
            shape=config.monitoring.vm,
            tags=(config.cluster, f"service-{MONITORING_SERVICE}", "tier-critical"),
            description=f"obsstack monitoring host {host.name} of cluster {config.cluster} (managed by Pulumi)",
            image=config.proxmox.cloud_image,
            snippets_storage=config.proxmox.snippets_storage,
            domain=config.monitoring.domain,
            ssh_user=config.monitoring.ssh_user,
            ssh_private_key=ssh_private_key,
            gateway=next(h.gateway for h in config.monitoring.hosts if h.name == host.name),
            apt_proxy=config.monitoring.apt_proxy,
        )


def first_routable(addresses: Any) -> str:
    """The first non-loopback IPv4 the guest agent reports (``[[127.0.0.1], [10.0.20.10]]``)."""
    for interface in addresses or []:
        for address in interface or []:
            if not ipaddress.ip_address(address).is_loopback:
                return str(address)
    return ""


class ProxmoxVm(pulumi.ComponentResource):
    """A monitoring VM. Outputs: ``ip`` (its address, no prefix) and ``vm_id`` (its PVE VMID)."""

    ip: pulumi.Output[str]
    vm_id: pulumi.Output[int]

    def __init__(self, name: str, args: ProxmoxVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:proxmox:ProxmoxVm", name, None, aliases.renamed_from("obsstack:proxmox:ProxmoxVm", opts)
        )
        host, shape = args.host, args.shape
        user_data = self._user_data(name, args)
        boot_disk: dict[str, Any] = {
            "interface": "virtio0",
            "datastore_id": shape.storage,
            "size": shape.disk_gb,
            "discard": "on",
            "iothread": True,
        }
        clone = None
        depends: list[pulumi.Resource] = [user_data]
        if shape.template_vmid is not None:
            clone = proxmoxve.VmLegacyCloneArgs(vm_id=shape.template_vmid, full=True)
        else:
            image = self._image(name, args)
            boot_disk["file_id"] = image.id
            depends.append(image)

        ip_config = (
            proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address="dhcp")
            if args.dhcp
            else proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address=host.cidr, gateway=args.gateway)
        )
        self.vm = proxmoxve.VmLegacy(
            f"{name}-vm",
            proxmoxve.VmLegacyArgs(
                node_name=host.node,
                vm_id=host.vmid,
                name=host.name,
                description=args.description,
                tags=sorted(args.tags),
                on_boot=True,
                started=True,
                migrate=True,
                clone=clone,
                agent=proxmoxve.VmLegacyAgentArgs(enabled=True, trim=True, timeout="15m"),
                cpu=proxmoxve.VmLegacyCpuArgs(cores=shape.cores, type="x86-64-v2-AES"),
                memory=proxmoxve.VmLegacyMemoryArgs(dedicated=shape.memory_mb),
                operating_system=proxmoxve.VmLegacyOperatingSystemArgs(type="l26"),
                scsi_hardware="virtio-scsi-single",
                serial_devices=[proxmoxve.VmLegacySerialDeviceArgs(device="socket")],
                disks=[
                    proxmoxve.VmLegacyDiskArgs(**boot_disk),
                    proxmoxve.VmLegacyDiskArgs(
                        interface="virtio1",
                        datastore_id=shape.data_storage or shape.storage,
                        size=shape.data_disk_gb,
                        serial=cloud_init.DATA_DISK_SERIAL,  # how cloud-init finds it to format and mount
                        file_format="raw",
                        discard="on",
                        iothread=True,
                    ),
                ],
                network_devices=[
                    proxmoxve.VmLegacyNetworkDeviceArgs(bridge=shape.bridge, vlan_id=shape.vlan, model="virtio")
                ],
                initialization=proxmoxve.VmLegacyInitializationArgs(
                    datastore_id=shape.storage,
                    ip_configs=[proxmoxve.VmLegacyInitializationIpConfigArgs(ipv4=ip_config)],
                    dns=proxmoxve.VmLegacyInitializationDnsArgs(servers=list(shape.dns), domain=args.domain)
                    if shape.dns
                    else None,
                    user_data_file_id=user_data.id,
                ),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=depends, ignore_changes=list(IGNORED_AFTER_CREATE)),
        )

        self.vm_id = pulumi.Output.from_input(host.vmid)
        self.ip = self.vm.ipv4_addresses.apply(first_routable) if args.dhcp else pulumi.Output.from_input(host.ip)
        self.register_outputs({"ip": self.ip, "vmId": self.vm_id})

    def _user_data(self, name: str, args: ProxmoxVmArgs) -> proxmoxve.FileLegacy:
        """The cloud-init snippet: hostname, the SSH user with the stack's public key, apt proxy."""
        host = args.host
        public_key = tls.get_public_key_output(private_key_openssh=args.ssh_private_key).public_key_openssh
        return proxmoxve.FileLegacy(
            f"{name}-user-data",
            proxmoxve.FileLegacyArgs(
                node_name=host.node,
                datastore_id=args.snippets_storage,
                content_type="snippets",
                source_raw=proxmoxve.FileLegacySourceRawArgs(
                    file_name=f"obsstack-{host.name}-user-data.yaml",
                    data=public_key.apply(
                        lambda key: cloud_init.user_data(
                            host.name,
                            args.domain,
                            args.ssh_user,
                            key,
                            apt_proxy=args.apt_proxy,
                            data_mount=args.shape.data_mount,
                        )
                    ),
                ),
            ),
            # The file name is fixed: a replacement created first would upload over the same
            # volume, and the old one's delete would then remove it.
            pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

    def _image(self, name: str, args: ProxmoxVmArgs) -> proxmoxve.download.File:
        """The cloud image on the VM's node, verified by its checksum after the download."""
        return proxmoxve.download.File(
            f"{name}-image",
            proxmoxve.download.FileArgs(
                node_name=args.host.node,
                datastore_id=args.image.storage,
                content_type="iso",
                url=args.image.url,
                file_name=f"obsstack-{args.host.name}-{args.image.file_name}",
                checksum=args.image.checksum,
                checksum_algorithm=args.image.checksum_algorithm,
                overwrite=False,
            ),
            # As the snippet: a second download of the same name fails "already exists".
            pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

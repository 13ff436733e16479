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
  only from the host entry in config: a new VMID is a new VM, on purpose (see below).
``migrate=True`` moves the VM when its node changes instead of recreating it.

Deletion policy: the VM (its boot disk and its data disk, with every metric and log) is
``protect=True`` and ``retain_on_delete=True``. Pulumi refuses to delete a resource protected in
the state and to replace one protected in the program and the state (so from the first
``pulumi up`` that records it), also when a delete-before-replace child would drag the VM along;
``pulumi destroy --exclude-protected`` keeps it, its parent and its dependencies; a retained
resource that is deleted or replaced is only dropped from the state, never deleted in PVE
(Pulumi docs, resource options ``protect`` and ``retainOnDelete``; pulumi's step generator).
Only the VM carries them, not the component: children inherit ``protect``, and the snippet and
the image must stay replaceable (``delete_before_replace``; the VM ignores both after creation,
see ``ignore_changes``, and holds no data of theirs). To replace or remove a VM on purpose (a new
VMID, a host dropped from config): ``pulumi state unprotect <urn of <host>-vm>``, ``pulumi up``
(it creates the new VM and forgets the old one), then delete the old VM in PVE
(``qm destroy <vmid>``) once its data is saved.

Renaming a host: its resources are named after it (``<host>``, ``<host>-vm``, ...), so a new name
is a new URN for each (a URN is ``<stack>::<project>::<parent types>$<type>::<name>``: the parent's
name is not in it, the child's own is). Set ``previous_name`` on the host entry: the component and
each child get ``pulumi.Alias(name=<old name>)`` and keep their state, and the VM is updated in
place (its PVE name). The engine would also derive a child's alias from its parent's for names
prefixed with the parent's (Pulumi's rename_component alias test); the children's own aliases do
not depend on that convention and show in plan.json. tests/engine proves it on the real CLI.
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
    previous_name: str | None = None  # the host's name before a rename: its resources keep their state

    def disk_storages(self) -> list[str]:
        """The storages the VM's disks live on."""
        return sorted({self.shape.storage, self.shape.data_storage or self.shape.storage})

    @classmethod
    def monitoring(cls, config: StackConfig, host: MonitoringNode, ssh_private_key: pulumi.Input[str]) -> ProxmoxVmArgs:
        """A monitoring-plane VM as the stack config describes it."""
        entry = next(h for h in config.monitoring.hosts if h.name == host.name)
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
            gateway=entry.gateway,
            apt_proxy=config.monitoring.apt_proxy,
            previous_name=entry.previous_name,
        )


def renamed_from(previous_name: str | None, role: str | None = None) -> list[pulumi.Alias]:
    """The alias to the old name of the component (``role`` None) or of its child ``role``."""
    if previous_name is None:
        return []
    return [pulumi.Alias(name=previous_name if role is None else f"{previous_name}-{role}")]


def first_routable(addresses: Any) -> str:
    """The first non-loopback IPv4 the guest agent reports (``[[127.0.0.1], [10.0.20.10]]``)."""
    for interface in addresses or []:
        for address in interface or []:
            if not ipaddress.ip_address(address).is_loopback:
                return str(address)
    return ""


def _data_disk(shape: VmShape) -> proxmoxve.VmLegacyDiskArgs:
    """Prometheus' and Loki's disk: on the durable storage when one is set."""
    return proxmoxve.VmLegacyDiskArgs(
        interface="virtio1",
        datastore_id=shape.data_storage or shape.storage,
        size=shape.data_disk_gb,
        serial=cloud_init.DATA_DISK_SERIAL,  # how cloud-init finds it to format and mount
        file_format="raw",
        discard="on",
        iothread=True,
    )


def _initialization(args: ProxmoxVmArgs, user_data_id: pulumi.Input[str]) -> proxmoxve.VmLegacyInitializationArgs:
    """cloud-init's address, DNS and the user-data snippet."""
    host, shape = args.host, args.shape
    ip_config = (
        proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address="dhcp")
        if args.dhcp
        else proxmoxve.VmLegacyInitializationIpConfigIpv4Args(address=host.cidr, gateway=args.gateway)
    )
    return proxmoxve.VmLegacyInitializationArgs(
        datastore_id=shape.storage,
        ip_configs=[proxmoxve.VmLegacyInitializationIpConfigArgs(ipv4=ip_config)],
        dns=proxmoxve.VmLegacyInitializationDnsArgs(servers=list(shape.dns), domain=args.domain) if shape.dns else None,
        user_data_file_id=user_data_id,
    )


class ProxmoxVm(pulumi.ComponentResource):
    """A monitoring VM. Outputs: ``ip`` (its address, no prefix) and ``vm_id`` (its PVE VMID)."""

    ip: pulumi.Output[str]
    vm_id: pulumi.Output[int]

    def __init__(self, name: str, args: ProxmoxVmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        renamed = pulumi.ResourceOptions(aliases=renamed_from(args.previous_name))
        super().__init__(
            "obsstack:proxmox:ProxmoxVm",
            name,
            None,
            aliases.renamed_from("obsstack:proxmox:ProxmoxVm", pulumi.ResourceOptions.merge(opts, renamed)),
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
                disks=[proxmoxve.VmLegacyDiskArgs(**boot_disk), _data_disk(shape)],
                network_devices=[
                    proxmoxve.VmLegacyNetworkDeviceArgs(bridge=shape.bridge, vlan_id=shape.vlan, model="virtio")
                ],
                initialization=_initialization(args, user_data.id),
            ),
            pulumi.ResourceOptions(
                parent=self,
                depends_on=depends,
                ignore_changes=list(IGNORED_AFTER_CREATE),
                # Holds the data disk: never deleted by destroy or a replacement (module docstring).
                protect=True,
                retain_on_delete=True,
                aliases=renamed_from(args.previous_name, "vm"),
            ),
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
            pulumi.ResourceOptions(
                parent=self, delete_before_replace=True, aliases=renamed_from(args.previous_name, "user-data")
            ),
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
            pulumi.ResourceOptions(
                parent=self, delete_before_replace=True, aliases=renamed_from(args.previous_name, "image")
            ),
        )

"""cloud-init user data for the monitoring VMs (a Debian 12 cloud image or a clone of a template).

It creates the SSH user the installers log in as (key only, no password), installs and starts
qemu-guest-agent (PVE reads the VM's addresses and freezes its filesystems for snapshot backups
through it), points apt at the proxy when one is configured, and puts the data disk to use:
formatted once (ext4, label ``obsdata``; never over an existing filesystem), mounted at the data
mount, with Prometheus' and Loki's data directories bind-mounted into it, so their data never
lands on the 32 GB root disk. cloud-init runs it once per instance; the VM component ignores
later drift (see components/proxmox/vm.py).
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from components.render import layout

# The data disk carries this serial (components/proxmox/vm.py); udev names a virtio-blk disk by it
# (systemd's 60-persistent-storage.rules: SYMLINK+="disk/by-id/virtio-$env{ID_SERIAL}").
DATA_DISK_SERIAL = "obsstack-data"
DATA_DISK = f"/dev/disk/by-id/virtio-{DATA_DISK_SERIAL}"
DATA_LABEL = "obsdata"
# The directories that live on the data disk, each a bind mount of <data mount>/<name>.
DATA_DIRS = {"prometheus": "/var/lib/prometheus", "loki": layout.LOKI_DATA}


def data_disk(mount: str) -> dict[str, Any]:
    """fs_setup and mounts for the data disk, and the commands that bind the data directories."""
    binds = [
        f"{mount}/{name} {path} none bind,nofail,x-systemd.requires-mounts-for={mount} 0 0"
        for name, path in DATA_DIRS.items()
    ]
    commands = [f"mkdir -p {' '.join(f'{mount}/{n}' for n in DATA_DIRS)} {' '.join(DATA_DIRS.values())}"]
    commands += [
        f"grep -qxF {shlex.quote(line)} /etc/fstab || echo {shlex.quote(line)} >> /etc/fstab" for line in binds
    ]
    commands.append("mount -a")
    return {
        # partition: none puts the filesystem on the whole disk; overwrite: false (the default)
        # leaves an existing filesystem alone, so a re-run never formats data (cloud-init docs,
        # cc_disk_setup).
        "fs_setup": [
            {"label": DATA_LABEL, "filesystem": "ext4", "device": DATA_DISK, "partition": "none", "overwrite": False}
        ],
        "mounts": [[f"LABEL={DATA_LABEL}", mount, "ext4", "defaults,nofail,x-systemd.device-timeout=30s", "0", "2"]],
        "runcmd": [["sh", "-c", command] for command in commands],
    }


def user_data(
    hostname: str,
    domain: str,
    ssh_user: str,
    public_key: str,
    *,
    apt_proxy: str | None = None,
    data_mount: str | None = None,
) -> str:
    document: dict[str, Any] = {
        "hostname": hostname,
        "fqdn": f"{hostname}.{domain}",
        "manage_etc_hosts": True,
        "users": [
            {
                "name": ssh_user,
                "groups": ["sudo"],
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": [public_key.strip()],
            }
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "package_update": True,
        "packages": ["qemu-guest-agent"],
        "runcmd": [],
    }
    if data_mount:
        disk = data_disk(data_mount)
        document["fs_setup"], document["mounts"] = disk["fs_setup"], disk["mounts"]
        document["runcmd"] += disk["runcmd"]
    document["runcmd"].append(["systemctl", "enable", "--now", "qemu-guest-agent"])
    if apt_proxy:
        document["apt"] = {"proxy": apt_proxy}
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)

"""cloud-init user data for the monitoring VMs (a Debian 12 cloud image or a clone of a template).

It creates the SSH user the installers log in as (key only, no password), installs and starts
qemu-guest-agent (PVE reads the VM's addresses and freezes its filesystems for snapshot backups
through it) and points apt at the proxy when one is configured. cloud-init runs it once per
instance; the VM component ignores later drift (see components/proxmox/vm.py).
"""

from __future__ import annotations

from typing import Any

import yaml


def user_data(hostname: str, domain: str, ssh_user: str, public_key: str, apt_proxy: str | None = None) -> str:
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
        "runcmd": [["systemctl", "enable", "--now", "qemu-guest-agent"]],
    }
    if apt_proxy:
        document["apt"] = {"proxy": apt_proxy}
    return "#cloud-config\n" + yaml.safe_dump(document, sort_keys=False)

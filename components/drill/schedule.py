"""RestoreDrills: the canary in every drill target, and the drill's timer on the monitoring host
with a least-privilege PVE token of its own.

Files come from components/render/drill.py (the monitoring host's files are shipped by
MonitoringHost); this component installs and enables them over SSH, creates the drill's PVE
identity (user, roles, ACLs, token) and writes the token to a 0600 file on the monitoring host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_proxmoxve as proxmoxve
from pulumi_command import remote

from components import ssh
from components.config import Asset, StackConfig
from components.inventory import DrillTarget, Inventory
from components.monitoring import install
from components.render import HostFile
from components.render import drill as layout

# Least privilege, path by path (docs/restore-drill.md explains each one).
SOURCE_PRIVILEGES = ("VM.Backup",)  # PVE lets a token read a guest's backups only with this on /vms/<id>
STORAGE_PRIVILEGES = ("Datastore.Audit", "Datastore.AllocateSpace")
SDN_PRIVILEGES = ("SDN.Use",)  # changing a NIC's bridge or link state is checked against the bridge
_SCRATCH_COMMON = ("VM.Allocate", "VM.Audit", "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt")
SCRATCH_PRIVILEGES = {
    8: (*_SCRATCH_COMMON, "VM.Monitor"),
    9: (*_SCRATCH_COMMON, "VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"),
}
CANARY_FILES = (layout.CANARY_SCRIPT, layout.CANARY_SERVICE, layout.CANARY_TIMER)


@dataclass(frozen=True)
class RestoreDrillsArgs:
    config: StackConfig
    inventory: Inventory
    secrets: dict[str, Any]


def _sudo(user: str) -> str:
    return "" if user == "root" else "sudo -n "


def privileges(config: StackConfig) -> dict[str, tuple[str, ...]]:
    return {
        "source": SOURCE_PRIVILEGES,
        "storage": STORAGE_PRIVILEGES,
        "sdn": SDN_PRIVILEGES,
        "scratch": SCRATCH_PRIVILEGES[config.backups.drill.pve_version],
    }


def acl_paths(config: StackConfig, inventory: Inventory) -> list[tuple[str, str]]:
    """(role key, ACL path) pairs: only the drill targets, the two storages, the scratch pool."""
    drill = config.backups.drill
    paths = [("source", f"/vms/{t.vmid}") for t in inventory.drill_targets]
    paths += [("storage", f"/storage/{s}") for s in sorted({config.pbs.storage_id, drill.scratch_storage})]
    paths += [("sdn", "/sdn/zones/localnetwork"), ("scratch", f"/pool/{layout.drill_pool(config)}")]
    return paths


class RestoreDrills(pulumi.ComponentResource):
    targets: list[str]
    token: pulumi.Output[str]

    def __init__(self, name: str, args: RestoreDrillsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:drill:RestoreDrills", name, None, opts)
        config, inventory = args.config, args.inventory
        self.targets = [t.name for t in inventory.drill_targets]
        child = pulumi.ResourceOptions(parent=self)
        key = args.secrets[config.proxmox.ssh_private_key_secret]
        files = layout.files(config, inventory)
        assets = config.inventory.by_name()

        for target in inventory.drill_targets:
            mine = [f for f in files if f.host == target.name]
            self._canary(name, target, asset=assets[target.name], config=config, key=key, files=mine)
        for node in config.pve_nodes():
            self._pct_wrapper(name, node, config, key, [f for f in files if f.host == node.name])

        self.token = pulumi.Output.secret("")
        if inventory.drill_targets:
            self.token = self._identity(name, config, inventory, child)
            runner = inventory.monitoring[0].name
            self._monitoring_host(name, config, inventory, key, [f for f in files if f.host == runner])
        self.register_outputs({"targets": self.targets, "token": self.token})

    def _canary(
        self, name: str, target: DrillTarget, *, asset: Asset, config: StackConfig, key: Any, files: list[HostFile]
    ) -> None:
        user = asset.ssh_user or config.monitoring.ssh_user
        connection = ssh.connection(str(asset.address), user, key)
        canary_files = tuple(f for f in files if f.path in CANARY_FILES)
        installed = install.install_files(
            self,
            config,
            install.InstallTarget(
                f"{name}-canary-{target.name}-files", str(asset.address), user, connection, canary_files
            ),
        )
        # A first canary right away (and after every change), so the next backup carries one.
        start = f"{ssh.manifest(list(canary_files))}\n{_sudo(user)}systemctl start obs-canary.service\n"
        remote.Command(
            f"{name}-canary-{target.name}",
            ssh.command_args(
                connection,
                create=start,
                update=start,  # in place, no triggers: a replacement's delete would stop the new timer
                delete=f"{_sudo(user)}systemctl disable --now obs-canary.timer || true",
                logging=remote.Logging.STDOUT_AND_STDERR,
            ),
            ssh.job_options(pulumi.ResourceOptions(parent=self, depends_on=[installed])),
        )

    def _pct_wrapper(self, name: str, node: Asset, config: StackConfig, key: Any, files: list[HostFile]) -> None:
        """The forced command container drills reach `pct exec` through (none without lxc targets)."""
        wrapper = tuple(f for f in files if f.path == layout.pct_wrapper_path(config))
        if not wrapper:
            return
        user = node.ssh_user or config.proxmox.ssh_user
        address = str(node.address)
        connection = ssh.connection(address, user, key)
        target = install.InstallTarget(f"{name}-pct-{node.name}-files", address, user, connection, wrapper)
        install.install_files(self, config, target)

    def _identity(
        self, name: str, config: StackConfig, inventory: Inventory, child: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        comment = "obsstack restore drills (tools/restore_drill); least privilege, see docs/restore-drill.md"
        pool = proxmoxve.PoolLegacy(
            f"{name}-pool",
            pool_id=layout.drill_pool(config),
            comment="Scratch VMs of restore drills: created and destroyed by tools/restore_drill",
            opts=child,
        )
        user = proxmoxve.UserLegacy(
            f"{name}-user", user_id=config.stack_names.drill_user, comment=comment, enabled=True, opts=child
        )
        roles = {
            role: proxmoxve.RoleLegacy(
                f"{name}-role-{role}", role_id=config.stack_names.drill_role(role), privileges=list(privs), opts=child
            )
            for role, privs in privileges(config).items()
        }
        for role, path in acl_paths(config, inventory):
            proxmoxve.Acl(
                f"{name}-acl-{path.strip('/').replace('/', '-')}",
                path=path,
                role_id=roles[role].role_id,
                user_id=user.user_id,
                propagate=True,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[pool]),
            )
        token = proxmoxve.user.Token(
            f"{name}-token",
            user_id=user.user_id,
            token_name=layout.TOKEN_NAME,
            privileges_separation=False,  # the token has exactly the user's (minimal) ACLs
            comment=comment,
            opts=child,
        )
        return pulumi.Output.secret(token.value)

    def _monitoring_host(
        self, name: str, config: StackConfig, inventory: Inventory, key: Any, files: list[HostFile]
    ) -> None:
        host = inventory.monitoring[0]
        user = config.monitoring.ssh_user
        sudo = _sudo(user)
        new = f"{layout.TOKEN_FILE}.new"
        token_file = remote.Command(
            f"{name}-token-file",
            ssh.command_args(
                ssh.connection(host.ip, user, key),
                create=(
                    f"set -eu\n{sudo}install -d -m 0750 {layout.DRILL_ETC}\n"
                    f"{sudo}sh -c 'umask 077 && cat > {new} && mv -f {new} {layout.TOKEN_FILE}'\n"
                ),
                delete=f"{sudo}rm -f {layout.TOKEN_FILE}",
                stdin=self.token,
                logging=remote.Logging.NONE,
            ),
            ssh.job_options(
                pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdin", "stdout", "stderr"])
            ),
        )
        py = f"{layout.DRILL_VENV}/bin/python"
        install = "\n".join(
            [
                # The files MonitoringHost ships: a changed one changes this script, so it re-runs.
                ssh.manifest(files),
                "set -eu",
                f"{sudo}apt-get install -y -q --no-install-recommends python3-venv >/dev/null",
                f"test -x {py} || {sudo}python3 -m venv {layout.DRILL_VENV}",
                f"{sudo}{layout.DRILL_VENV}/bin/pip install -q --disable-pip-version-check --require-virtualenv "
                f"-r {layout.DRILL_REQUIREMENTS}",
                # Validate the shipped outputs file before the timer may use it.
                f"{sudo}env PYTHONPATH={layout.DRILL_HOME} {py} -m tools.restore_drill "
                f"--outputs {layout.DRILL_OUTPUTS} --all --dry-run >/dev/null",
                f"{sudo}systemctl daemon-reload",
                f"{sudo}systemctl enable --now obs-restore-drill.timer",
                "",
            ]
        )
        remote.Command(
            f"{name}-schedule",
            ssh.command_args(
                ssh.connection(host.ip, user, key),
                create=install,
                update=install,  # in place, no triggers: a replacement's delete would stop the new timer
                delete=f"{sudo}systemctl disable --now obs-restore-drill.timer || true",
                logging=remote.Logging.STDOUT_AND_STDERR,
            ),
            ssh.job_options(pulumi.ResourceOptions(parent=self, depends_on=[token_file])),
        )

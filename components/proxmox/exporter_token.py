"""PveExporterToken: the read-only PVE identity prometheus-pve-exporter scrapes with.

A user of its own, a role with three audit privileges on ``/`` and a privilege-separated token
that gets the same role: with separation a token's rights are the intersection of the user's and
its own ACLs (PVE admin guide, "API Tokens"), so both carry the role. prometheus-pve-exporter's
README asks for a read-only user (the PVEAuditor role) on ``/``; of PVEAuditor's privileges
(pve-access-control src/PVE/AccessControl.pm, built-in roles, the same in PVE 8 and 9) the
exporter's collectors (3.10.2: collector/cluster.py and node.py, no guest-agent collector, so no
VM.Monitor or VM.GuestAgent.*) read /cluster/resources, /cluster/status, /cluster/backup-info,
/nodes/<node>/... and /version, covered by these three:

- ``Sys.Audit``: nodes, cluster status, versions, subscription, guests not backed up;
- ``VM.Audit``: guests in /cluster/resources, their config (onboot), replication;
- ``Datastore.Audit``: storages in /cluster/resources.

The token's inputs are constants: pulumi-proxmoxve's Token keeps its ``value`` only from the
create, and an update sets it to null (bpg/terraform-provider-proxmox
fwprovider/access/resource_user_token.go, Update: ``plan.Value = types.StringNull()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_proxmoxve as proxmoxve

from components.render import pve_exporter

PRIVILEGES = ("Datastore.Audit", "Sys.Audit", "VM.Audit")
COMMENT = "obsstack prometheus-pve-exporter: read-only metrics (docs/proxmox-privileges.md)"


@dataclass(frozen=True)
class PveExporterTokenArgs:
    user_id: str  # StackConfig.stack_names.exporter_user: one identity per stack
    role_id: str  # StackConfig.stack_names.exporter_role
    token_name: str = pve_exporter.TOKEN_NAME


class PveExporterToken(pulumi.ComponentResource):
    value: pulumi.Output[str]

    def __init__(self, name: str, args: PveExporterTokenArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:proxmox:PveExporterToken", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        user = proxmoxve.UserLegacy(f"{name}-user", user_id=args.user_id, comment=COMMENT, enabled=True, opts=child)
        role = proxmoxve.RoleLegacy(f"{name}-role", role_id=args.role_id, privileges=list(PRIVILEGES), opts=child)
        token = proxmoxve.user.Token(
            f"{name}-token",
            user_id=user.user_id,
            token_name=args.token_name,
            privileges_separation=True,
            comment=COMMENT,
            opts=child,
        )
        proxmoxve.Acl(
            f"{name}-acl-user", path="/", role_id=role.role_id, user_id=user.user_id, propagate=True, opts=child
        )
        proxmoxve.Acl(
            f"{name}-acl-token",
            path="/",
            role_id=role.role_id,
            token_id=pulumi.Output.concat(user.user_id, "!", args.token_name),
            propagate=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[token]),
        )
        self.value = pulumi.Output.secret(token.value)
        self.register_outputs({"tokenId": f"{args.user_id}!{args.token_name}"})

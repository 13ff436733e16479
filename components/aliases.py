"""Type tokens that changed, and the aliases that keep existing stacks' state.

A component's type token is part of its URN and of every child's URN: renaming it without an
alias makes the engine delete the old component tree and create a new one (replacing protected
backup resources fails outright). ``renamed_from`` hands the engine the previous token, and the
engine carries the alias down to the children (tests/engine proves both on the real CLI).
"""

from __future__ import annotations

import pulumi

# New type token (named after its class) -> the token stacks created before 0.2 hold.
PREVIOUS_TYPES = {
    "obsstack:pbs:PbsServer": "obsstack:pbs:Server",
    "obsstack:proxmox:BackupStorage": "obsstack:proxmox:Storage",
    "obsstack:proxmox:ProxmoxVm": "obsstack:proxmox:Vm",
    "obsstack:monitoring:InternalCa": "obsstack:monitoring:Pki",
    "obsstack:monitoring:MonitoringHost": "obsstack:monitoring:Host",
    "obsstack:monitoring:HostAgents": "obsstack:monitoring:Agents",
    "obsstack:monitoring:WebCredentials": "obsstack:monitoring:Credentials",
    "obsstack:grafana:GrafanaConfig": "obsstack:grafana:Config",
}


def renamed_from(type_token: str, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """``opts`` plus an alias from the component's previous type token."""
    alias = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=PREVIOUS_TYPES[type_token])])
    return pulumi.ResourceOptions.merge(opts, alias)

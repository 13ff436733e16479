"""InternalCa: the stack's own CA and host certificates (when no ACME is configured)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.inventory import MonitoringNode


@dataclass(frozen=True)
class InternalCaArgs:
    cluster: str
    hosts: tuple[MonitoringNode, ...]


class InternalCa(pulumi.ComponentResource):
    def __init__(self, name: str, args: InternalCaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:monitoring:Pki", name, None, opts)
        self.hosts = [h.name for h in args.hosts]
        self.register_outputs({"hosts": self.hosts})

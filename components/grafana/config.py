"""GrafanaConfig: datasources, folders, dashboards, contact points and notification policy."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import StackConfig


@dataclass(frozen=True)
class GrafanaConfigArgs:
    config: StackConfig
    url: pulumi.Input[str]


class GrafanaConfig(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: GrafanaConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:grafana:Config", name, None, opts)
        self.url = pulumi.Output.from_input(args.url)
        self.register_outputs({"url": self.url})

"""MonitoringHost: Prometheus, Alertmanager, Loki, Grafana and Alloy on one monitoring VM."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import StackConfig
from components.inventory import Inventory, MonitoringNode
from components.monitoring.render import host_files


@dataclass(frozen=True)
class MonitoringHostArgs:
    config: StackConfig
    inventory: Inventory
    node: MonitoringNode
    ip: pulumi.Input[str]


class MonitoringHost(pulumi.ComponentResource):
    grafana_url: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    alertmanager_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("obsstack:monitoring:Host", name, None, opts)
        ports = args.config.monitoring.ports
        ip = pulumi.Output.from_input(args.ip)
        self.files = [f for f in host_files(args.config, args.inventory) if f.host == args.node.name]
        self.prometheus_url = pulumi.Output.format("http://{0}:{1}", ip, ports.prometheus)
        self.alertmanager_url = pulumi.Output.format("http://{0}:{1}", ip, ports.alertmanager)
        self.grafana_url = pulumi.Output.format("https://{0}:{1}", ip, ports.grafana)
        self.register_outputs(
            {
                "prometheusUrl": self.prometheus_url,
                "alertmanagerUrl": self.alertmanager_url,
                "grafanaUrl": self.grafana_url,
            }
        )

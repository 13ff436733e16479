"""MonitoringHost: Prometheus, Alertmanager, Loki, Grafana, Alloy and the exporters on one
monitoring VM, installed over SSH: validated on the host before they go live, reloaded (not
restarted) when their config changes, health-checked afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components import aliases, ssh
from components.config import StackConfig
from components.inventory import Inventory, MonitoringNode
from components.monitoring import install
from components.monitoring.credentials import WebCredentials
from components.monitoring.pki import InternalCa
from components.render import SecretFile, acme, files_for, pve_exporter, webconfig


@dataclass(frozen=True)
class MonitoringHostArgs:
    config: StackConfig
    inventory: Inventory
    node: MonitoringNode
    ip: pulumi.Input[str]
    secrets: Mapping[str, Any]
    pki: InternalCa
    credentials: WebCredentials


def acme_env(config: StackConfig, secrets: Mapping[str, Any]) -> pulumi.Output[str]:
    """The ACME credentials file: each DNS provider variable with its secret value, kept secret."""
    values = {c.env: pulumi.Output.from_input(secrets[c.value_secret]) for c in config.monitoring.tls.credentials}
    return pulumi.Output.secret(pulumi.Output.all(**values).apply(acme.env_file))


def secret_resolver(
    secrets: Mapping[str, Any], pki: InternalCa, credentials: WebCredentials, config: StackConfig | None = None
) -> install.Resolver:
    """SecretFile.source -> its content as a secret Output (vocabulary: render/webconfig.py);
    ``config`` for the ACME renewer's credentials (monitoring hosts with tls.mode acme)."""

    def resolve(item: SecretFile) -> pulumi.Output[str]:
        kind, _, rest = item.source.partition(":")
        value: pulumi.Output[str]
        if item.source == acme.ENV_SOURCE and config is not None:
            value = acme_env(config, secrets)
        elif kind == "tls":
            role, _, host = rest.partition(":")
            value = {"ca": lambda: pki.ca_cert, "cert": lambda: pki.certs[host], "key": lambda: pki.keys[host]}[role]()
        elif kind == "password":
            value = credentials.passwords[rest]
        elif kind in ("web", "web-acme"):
            roles = webconfig.web_roles(rest)
            users = [webconfig.WEB_USERS[role] for role in roles]
            value = pulumi.Output.all(*(credentials.hashes[role] for role in roles)).apply(
                lambda hashed: webconfig.render(dict(zip(users, hashed, strict=True)), acme=kind == "web-acme")
            )
        elif kind == "loki-env":
            value = pulumi.Output.from_input(secrets[rest]).apply(lambda v: f"LOKI_S3_SECRET_ACCESS_KEY={v}\n")
        elif kind == "pve-exporter-env":
            value = pulumi.Output.from_input(secrets[rest]).apply(pve_exporter.token_env)
        else:
            value = pulumi.Output.from_input(secrets[item.source])
        return pulumi.Output.secret(value)

    return resolve


class MonitoringHost(pulumi.ComponentResource):
    grafana_url: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    alertmanager_url: pulumi.Output[str]
    endpoints: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: MonitoringHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:monitoring:MonitoringHost",
            name,
            None,
            aliases.renamed_from("obsstack:monitoring:MonitoringHost", opts),
        )
        config = args.config
        ports = config.monitoring.ports
        ip = pulumi.Output.from_input(args.ip)
        node = args.node
        self.files, secrets = files_for(config, args.inventory, node.name)
        user = config.monitoring.ssh_user
        target = install.InstallTarget(
            name=name,
            ip=node.ip,
            user=user,
            connection=ssh.connection(ip, user, args.secrets[config.proxmox.ssh_private_key_secret]),
            files=tuple(self.files),
            secrets=tuple(secrets),
        )
        resolve = secret_resolver(args.secrets, args.pki, args.credentials, config)
        self.applied = install.install(self, config, target, resolve)
        # The stack reaches the services by address (the Grafana provider, datasources); people by
        # the host's dns_name where it has one (both are in its certificate).
        self.prometheus_url = pulumi.Output.format("https://{0}:{1}", ip, ports.prometheus)
        self.alertmanager_url = pulumi.Output.format("https://{0}:{1}", ip, ports.alertmanager)
        self.grafana_url = pulumi.Output.format("https://{0}:{1}", ip, ports.grafana)
        public = pulumi.Output.from_input(node.dns_name) if node.dns_name else ip
        self.endpoints = {
            service: pulumi.Output.format("https://{0}:{1}", public, port)
            for service, port in (
                ("prometheus", ports.prometheus),
                ("alertmanager", ports.alertmanager),
                ("grafana", ports.grafana),
            )
        }
        self.register_outputs({f"{service}Url": url for service, url in self.endpoints.items()})

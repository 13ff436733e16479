"""GrafanaConfig: datasources, folders, dashboards, contact points and notification policy.

Everything goes through one explicit Grafana provider pointed at the Grafana the monitoring
plane installs (its URL output, the admin credentials from secrets) and depending on that
install, so nothing races the package install or the first start.

- Datasources with fixed uids (the dashboards refer to them): Prometheus (``timeInterval`` =
  the scrape interval, so ``$__rate_interval`` is right), Loki, Alertmanager (see and silence
  alerts from Grafana).
- One folder per area and one dashboard per dashboards/<name>.json (rendered for this stack).
- Contact points, mute timings and the notification policy for Grafana-managed alerts, from the
  same routing spec as alertmanager.yml (components/routing.py, via components/grafana/policy.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import pulumi
import pulumiverse_grafana as grafana

from components import aliases
from components.config import MaintenanceWindow, Receiver, StackConfig, duration_seconds
from components.grafana import policy as policy_tree
from components.inventory import MonitoringNode
from components.monitoring.credentials import WebCredentials
from components.monitoring.host import MonitoringHost
from components.monitoring.pki import InternalCa
from components.render import Board, acme, layout

FOLDERS = ("Overview", "Infrastructure", "Backups", "Alerting", "Logs")
DATASOURCE_UIDS = ("prometheus", "loki", "alertmanager")
MANAGED_BY = "Managed by obsstack (Pulumi): edit dashboards/*.py, not this dashboard."

# Nested policy argument classes, by depth below the root (the provider types each level).
_POLICY_LEVELS: tuple[tuple[type, type], ...] = (
    (grafana.alerting.NotificationPolicyPolicyArgs, grafana.alerting.NotificationPolicyPolicyMatcherArgs),
    (grafana.alerting.NotificationPolicyPolicyPolicyArgs, grafana.alerting.NotificationPolicyPolicyPolicyMatcherArgs),
    (
        grafana.alerting.NotificationPolicyPolicyPolicyPolicyArgs,
        grafana.alerting.NotificationPolicyPolicyPolicyPolicyMatcherArgs,
    ),
)


@dataclass(frozen=True)
class Backend:
    """How Grafana's server reaches one of Prometheus, Alertmanager or Loki: URL, basic auth
    (secret password), and a client certificate where the backend requires mutual TLS (Loki)."""

    url: pulumi.Input[str]
    basic_auth_user: str | None = None
    basic_auth_password: pulumi.Input[str] | None = None
    tls_client_cert: pulumi.Input[str] | None = None
    tls_client_key: pulumi.Input[str] | None = None
    # tls.mode acme: the backend serves its host's ACME certificate; Grafana connects by address,
    # verifies this name (jsonData serverName) against its host's system store, not the stack CA.
    server_name: str | None = None


@dataclass(frozen=True)
class GrafanaConfigArgs:
    config: StackConfig
    url: pulumi.Input[str]
    secrets: Mapping[str, pulumi.Output[Any]]
    prometheus: Backend
    alertmanager: Backend
    loki: Backend
    install: Sequence[pulumi.Resource] = ()
    # The rendered dashboards (dashboards/, rendered once by the program).
    boards: Sequence[Board] = ()
    # The CA that signed the monitoring plane's certificates (Grafana's own and its backends').
    ca_cert_pem: pulumi.Input[str] | None = None
    # What the provider verifies Grafana's listener with, when not the stack CA alone (tls.mode acme).
    provider_ca_pem: pulumi.Input[str] | None = None
    # Contact points, mute timings and the policy go to the primary Grafana only (see __main__.py).
    alerting: bool = True

    @classmethod
    def on_host(
        cls,
        config: StackConfig,
        secrets: Mapping[str, pulumi.Output[Any]],
        host: MonitoringHost,
        node: MonitoringNode,
        security: tuple[InternalCa, WebCredentials],
        *,
        boards: Sequence[Board],
        alerting: bool = True,
    ) -> GrafanaConfigArgs:
        """Grafana on a monitoring host and its backends there: Prometheus and Alertmanager over
        HTTPS with the API user's basic auth, Loki over mutual TLS with the host's certificate."""
        pki, credentials = security
        password = credentials.passwords["api"]
        name = node.dns_name if acme.enabled(config) else None
        return cls(
            config=config,
            url=_provider_url(config, host, node),
            provider_ca_pem=_provider_ca(config, pki),
            secrets=secrets,
            prometheus=Backend(host.prometheus_url, layout.API_USER, password, server_name=name),
            alertmanager=Backend(host.alertmanager_url, layout.API_USER, password, server_name=name),
            loki=Backend(
                f"https://{node.ip}:{config.monitoring.ports.loki}",
                tls_client_cert=pki.certs[node.name],
                tls_client_key=pki.keys[node.name],
            ),
            install=[host],
            ca_cert_pem=pki.ca_cert,
            boards=boards,
            alerting=alerting,
        )


def _provider_url(config: StackConfig, host: MonitoringHost, node: MonitoringNode) -> pulumi.Input[str]:
    """With tls.mode acme Grafana's listener names only the host's dns_name, so the provider (on
    the operator's machine) reaches Grafana by that name, as people do."""
    if acme.enabled(config) and node.dns_name:
        return f"https://{node.dns_name}:{config.monitoring.ports.grafana}"
    return host.grafana_url


def _provider_ca(config: StackConfig, pki: InternalCa) -> pulumi.Input[str] | None:
    """With tls.mode acme: the stack CA (the pair Grafana serves until the first issuance), the
    public roots (Mozilla's, from the pinned certifi: LetsEncrypt production) and
    tls.ca_certificates (staging, Pebble). The provider takes a CA bundle as `ca_cert`."""
    if not acme.enabled(config):
        return None
    extra = config.monitoring.tls.ca_certificates or ""
    return pulumi.Output.concat(pki.ca_cert, "\n", Path(certifi.where()).read_text(), extra)


def _mute_timing(name: str, window: MaintenanceWindow, child: pulumi.ResourceOptions) -> grafana.alerting.MuteTiming:
    return grafana.alerting.MuteTiming(
        f"{name}-mute-{window.name}",
        name=window.name,
        intervals=[
            grafana.alerting.MuteTimingIntervalArgs(
                weekdays=list(window.weekdays) or None,
                times=[
                    grafana.alerting.MuteTimingIntervalTimeArgs(start=t.start_time, end=t.end_time)
                    for t in window.times
                ]
                or None,
                location=window.location,
            )
        ],
        opts=child,
    )


def _contact_point_kwargs(receiver: Receiver, secrets: Mapping[str, pulumi.Output[Any]]) -> dict[str, Any]:
    """The integration of one receiver; secret URLs and keys stay secret Outputs."""
    if receiver.type == "slack":
        slack = grafana.alerting.ContactPointSlackArgs(url=secrets[receiver.url_secret], recipient=receiver.channel)  # type: ignore[index]
        return {"slacks": [slack]}
    if receiver.type in ("webhook", "ntfy"):
        # ntfy accepts a plain POST: Grafana's webhook integration is how it is reached. The same
        # URL (secret or not) and Bearer token as alertmanager.yml.
        url = secrets[receiver.url_secret] if receiver.url_secret else receiver.url
        token = secrets[receiver.credentials_secret] if receiver.credentials_secret else None
        webhook = grafana.alerting.ContactPointWebhookArgs(
            url=url,  # type: ignore[arg-type]
            authorization_scheme="Bearer" if token is not None else None,
            authorization_credentials=token,
        )
        return {"webhooks": [webhook]}
    if receiver.type == "pagerduty":
        key = secrets[receiver.routing_key_secret]  # type: ignore[index]
        return {"pagerduties": [grafana.alerting.ContactPointPagerdutyArgs(integration_key=key)]}
    return {"emails": [grafana.alerting.ContactPointEmailArgs(addresses=list(receiver.to), single_email=True)]}


def _policy_args(node: policy_tree.Policy, depth: int = 0) -> Any:
    """A child policy as the provider's typed args (depth 0 = a direct child of the root)."""
    if depth >= len(_POLICY_LEVELS):
        raise ValueError(f"notification policies nest at most {len(_POLICY_LEVELS)} levels deep")
    policy_cls, matcher_cls = _POLICY_LEVELS[depth]
    return policy_cls(
        contact_point=node.contact_point,
        continue_=node.continue_ or None,
        matchers=[matcher_cls(label=m.label, match=m.match, value=m.value) for m in node.matchers] or None,
        group_bies=list(node.group_by) or None,
        group_wait=node.group_wait,
        group_interval=node.group_interval,
        repeat_interval=node.repeat_interval,
        mute_timings=list(node.mute_timings) or None,
        policies=[_policy_args(child, depth + 1) for child in node.policies] or None,
    )


class GrafanaConfig(pulumi.ComponentResource):
    url: pulumi.Output[str]
    dashboard_uids: list[str]
    contact_points: list[str]

    def __init__(self, name: str, args: GrafanaConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            "obsstack:grafana:GrafanaConfig", name, None, aliases.renamed_from("obsstack:grafana:GrafanaConfig", opts)
        )
        config = args.config
        self.url = pulumi.Output.from_input(args.url)

        admin_password = args.secrets[config.grafana.admin_password_secret]
        provider = grafana.Provider(
            f"{name}-provider",
            url=self.url,
            # The provider marks auth secret itself; the password Output is secret already.
            auth=pulumi.Output.format("{0}:{1}", config.grafana.admin_user, admin_password),
            ca_cert=args.provider_ca_pem or args.ca_cert_pem,
            retries=5,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.install)),
        )
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.datasources = self._datasources(name, args, child)
        self.dashboard_uids = self._dashboards(name, args.boards, child)
        self.contact_points = self._alerting(name, args, child) if args.alerting else []
        self.register_outputs(
            {"url": self.url, "dashboardUids": self.dashboard_uids, "contactPoints": self.contact_points}
        )

    def _datasources(self, name: str, args: GrafanaConfigArgs, child: pulumi.ResourceOptions) -> list[Any]:
        """Prometheus (the default), Loki and Alertmanager, each verified against the stack's CA."""
        config = args.config
        return [
            self._datasource(
                name,
                "prometheus",
                title="Prometheus",
                backend=args.prometheus,
                json_data={
                    "httpMethod": "POST",
                    "timeInterval": config.monitoring.scrape_interval,
                    "prometheusType": "Prometheus",
                    "prometheusVersion": config.monitoring.versions.prometheus.split("+")[0],
                },
                ca_cert_pem=args.ca_cert_pem,
                opts=child,
                is_default=True,
            ),
            self._datasource(
                name,
                "loki",
                title="Loki",
                backend=args.loki,
                json_data={"maxLines": 1000, "timeout": duration_seconds(config.loki.query_timeout)},
                ca_cert_pem=args.ca_cert_pem,
                opts=child,
            ),
            self._datasource(
                name,
                "alertmanager",
                title="Alertmanager",
                backend=args.alertmanager,
                json_data={"implementation": "prometheus", "handleGrafanaManagedAlerts": False},
                ca_cert_pem=args.ca_cert_pem,
                opts=child,
            ),
        ]

    def _dashboards(self, name: str, boards: Sequence[Board], child: pulumi.ResourceOptions) -> list[str]:
        """The folders, and every dashboard in its folder; returns the dashboards' uids."""
        folders = {
            title: grafana.oss.Folder(
                f"{name}-folder-{title.lower()}", title=title, uid=f"obs-{title.lower()}", opts=child
            )
            for title in FOLDERS
        }
        for board in boards:
            grafana.oss.Dashboard(
                f"{name}-dashboard-{board.name}",
                config_json=board.json,
                folder=folders[board.folder].uid,
                overwrite=True,
                message=MANAGED_BY,
                opts=child,
            )
        return [board.uid for board in boards]

    def _alerting(self, name: str, args: GrafanaConfigArgs, child: pulumi.ResourceOptions) -> list[str]:
        """Contact points, mute timings and the notification policy; returns the receivers' names."""
        alerting = args.config.alerting
        contact_points = [
            grafana.alerting.ContactPoint(
                f"{name}-contact-{receiver.name}",
                name=receiver.name,
                **_contact_point_kwargs(receiver, args.secrets),
                opts=child,
            )
            for receiver in alerting.receivers
        ]
        mute_timings = [_mute_timing(name, window, child) for window in alerting.maintenance_windows]
        tree = policy_tree.policy_tree(alerting)
        grafana.alerting.NotificationPolicy(
            f"{name}-policy",
            contact_point=tree.contact_point,
            group_bies=list(tree.group_by),
            group_wait=tree.group_wait,
            group_interval=tree.group_interval,
            repeat_interval=tree.repeat_interval,
            policies=[_policy_args(node) for node in tree.policies],
            opts=child.merge(pulumi.ResourceOptions(depends_on=[*contact_points, *mute_timings])),
        )
        return [receiver.name for receiver in alerting.receivers]

    def _datasource(
        self,
        name: str,
        uid: str,
        *,
        title: str,
        backend: Backend,
        json_data: dict[str, Any],
        ca_cert_pem: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions,
        is_default: bool = False,
    ) -> grafana.oss.DataSource:
        secure: dict[str, pulumi.Input[str]] = {}
        if backend.basic_auth_password is not None:
            secure["basicAuthPassword"] = backend.basic_auth_password
        # Grafana's datasource TLS: jsonData serverName, and tlsCACert only with tlsAuthWithCACert,
        # else the system roots (grafana/grafana pkg/services/datasources/service/datasource.go,
        # dsTLSOptions).
        if backend.server_name is not None:
            json_data = {**json_data, "serverName": backend.server_name}
        elif ca_cert_pem is not None:
            json_data = {**json_data, "tlsAuthWithCACert": True}
            secure["tlsCACert"] = ca_cert_pem
        if backend.tls_client_cert is not None and backend.tls_client_key is not None:
            json_data = {**json_data, "tlsAuth": True}
            secure["tlsClientCert"] = backend.tls_client_cert
            secure["tlsClientKey"] = backend.tls_client_key
        return grafana.oss.DataSource(
            f"{name}-datasource-{uid}",
            type=uid,
            name=title,
            uid=uid,
            url=backend.url,
            access_mode="proxy",
            is_default=is_default,
            basic_auth_enabled=backend.basic_auth_user is not None,
            basic_auth_username=backend.basic_auth_user,
            json_data_encoded=json.dumps(json_data, sort_keys=True),
            # The provider stores secure JSON as a secret.
            secure_json_data_encoded=pulumi.Output.json_dumps(secure) if secure else None,
            opts=opts,
        )

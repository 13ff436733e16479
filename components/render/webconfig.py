"""Web configuration (TLS + bcrypt basic auth) of Prometheus, Alertmanager, node exporter and the
Pushgateway (``--web.config.file`` since 1.4.0, prometheus/pushgateway CHANGELOG.md), and
every credential and certificate file a host receives.

Passwords come from pulumi-random; the web-config files hold their bcrypt hashes, which are
secret too (an offline brute force of a hash is a attack on the password), so all of these are
:class:`SecretFile`\\ s: rendered only inside an ``apply`` on the host path, never in the plan.
``source`` names where the content comes from (resolved by components/monitoring/host.py):

- ``tls:ca`` / ``tls:cert:<host>`` / ``tls:key:<host>``: the internal CA (pki.py)
- ``password:api`` / ``password:scrape``: generated passwords (credentials.py)
- ``web:api`` / ``web:scrape``: a web config with that user's bcrypt hash; ``web:scrape+drill``
  one with several users (the Pushgateway: Prometheus reads, each writer pushes);
  ``web-acme:api``: the same, serving the host's ACME pair (tls.mode acme: Prometheus and
  Alertmanager, the human-facing listeners; components/render/acme.py)
- ``loki-env:<key>``: Loki's environment file with the S3 secret
- any other value: a secret config key (``grafanaAdminPassword``)
"""

from __future__ import annotations

from collections.abc import Mapping

from components.config import StackConfig
from components.inventory import Inventory
from components.render import SecretFile, layout, yamlout
from components.render.prometheus import remote_write_password_file

WEB_USERS = {"api": layout.API_USER, "scrape": layout.SCRAPE_USER, "drill": layout.DRILL_PUSH_USER}
PUSHGATEWAY_ROLES = ("scrape", "drill")


def web_roles(source_rest: str) -> tuple[str, ...]:
    """The roles of a ``web:<role>[+<role>...]`` source."""
    return tuple(source_rest.split("+"))


def render(users: Mapping[str, str], *, acme: bool = False) -> str:
    """A web config for exporter-toolkit: TLS 1.2+ with the host certificate (``acme``: the
    host's ACME pair), bcrypt users.

    Paths are relative to the web config file (exporter-toolkit resolves them against it).
    """
    cert, key = (layout.ACME_CERT_FILE, layout.ACME_KEY_FILE) if acme else (layout.CERT_FILE, layout.KEY_FILE)
    document = {
        "tls_server_config": {
            "cert_file": f"{layout.TLS_SUBDIR}/{cert}",
            "key_file": f"{layout.TLS_SUBDIR}/{key}",
            "min_version": "TLS12",
        },
        "basic_auth_users": dict(sorted(users.items())),
    }
    return yamlout.dump(document)


def tls_files(host: str, directory: str, owner: str) -> list[SecretFile]:
    return [
        SecretFile(host, f"{directory}/{layout.CA_FILE}", "tls:ca", mode="0644"),
        SecretFile(host, f"{directory}/{layout.CERT_FILE}", f"tls:cert:{host}", mode="0644"),
        SecretFile(host, f"{directory}/{layout.KEY_FILE}", f"tls:key:{host}", mode="0600", owner=owner, group=owner),
    ]


def agent_secret_files(host: str) -> list[SecretFile]:
    """What every host running node exporter + Alloy receives."""
    return [
        *tls_files(host, layout.TLS_DIR, "prometheus"),
        SecretFile(host, layout.NODE_EXPORTER_WEB, "web:scrape", owner="prometheus", group="prometheus"),
        *tls_files(host, layout.ALLOY_TLS_DIR, "alloy"),
    ]


def monitoring_secret_files(config: StackConfig, host: str) -> list[SecretFile]:
    prom = {"owner": "prometheus", "group": "prometheus"}
    human_facing = "web-acme:api" if config.monitoring.tls.mode == "acme" else "web:api"
    shipped = [
        *agent_secret_files(host),
        SecretFile(host, layout.PROMETHEUS_WEB, human_facing, **prom),
        SecretFile(host, layout.ALERTMANAGER_WEB, human_facing, **prom),
        SecretFile(host, layout.PUSHGATEWAY_WEB, f"web:{'+'.join(PUSHGATEWAY_ROLES)}", **prom),
        SecretFile(host, layout.BLACKBOX_WEB, "web:scrape", **prom),
        SecretFile(host, f"{layout.SECRETS_DIR}/{layout.API_PASSWORD_FILE}", "password:api", **prom),
        SecretFile(host, f"{layout.SECRETS_DIR}/{layout.SCRAPE_PASSWORD_FILE}", "password:scrape", **prom),
        *tls_files(host, layout.LOKI_TLS_DIR, "loki"),
        *tls_files(host, layout.GRAFANA_TLS_DIR, "grafana"),
        SecretFile(
            host,
            f"{layout.GRAFANA_SECRETS_DIR}/admin_password",
            config.grafana.admin_password_secret,
            owner="grafana",
            group="grafana",
        ),
        SecretFile(
            host,
            f"{layout.GRAFANA_SECRETS_DIR}/metrics_password",
            "password:scrape",
            owner="grafana",
            group="grafana",
        ),
        SecretFile(
            host,
            f"{layout.GRAFANA_SECRETS_DIR}/secret_key",
            config.grafana.secret_key_secret,
            owner="grafana",
            group="grafana",
        ),
    ]
    for i, rw in enumerate(config.monitoring.remote_write):
        if rw.username and rw.password_secret:
            shipped.append(
                SecretFile(host, f"{layout.PROMETHEUS_DIR}/{remote_write_password_file(i)}", rw.password_secret, **prom)
            )
    if config.loki.storage == "s3" and config.loki.s3 is not None:
        shipped.append(
            SecretFile(
                host, layout.LOKI_ENV, f"loki-env:{config.loki.s3.secret_access_key_secret}", owner="loki", group="loki"
            )
        )
    return shipped


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    shipped: list[SecretFile] = []
    for node in inventory.monitoring:
        shipped += monitoring_secret_files(config, node.name)
    for asset in inventory.managed_hosts:
        shipped += agent_secret_files(asset.name)
    return shipped

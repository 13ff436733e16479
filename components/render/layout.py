"""Where things live on the hosts: one table of paths, users and credentials names.

Renderers, the install scripts, the components and the host test all read these, so a path is
spelled once. Paths inside Prometheus' and Alertmanager's configs are written *relative* to the
config file (Prometheus resolves them against the file's directory): the same file validates in
a staging tree, in build/plan/hosts/<host>/ and in place.
"""

from __future__ import annotations

STAGING_DIR = "/var/lib/obsstack/staging"
CANDIDATE_PARENT = "/var/lib/obsstack"

PROMETHEUS_DIR = "/etc/prometheus"
PROMETHEUS_CONFIG = f"{PROMETHEUS_DIR}/prometheus.yml"
PROMETHEUS_WEB = f"{PROMETHEUS_DIR}/web.yml"
ALERTMANAGER_WEB = f"{PROMETHEUS_DIR}/alertmanager-web.yml"
NODE_EXPORTER_WEB = f"{PROMETHEUS_DIR}/node-exporter-web.yml"
PUSHGATEWAY_WEB = f"{PROMETHEUS_DIR}/pushgateway-web.yml"
BLACKBOX_CONFIG = f"{PROMETHEUS_DIR}/blackbox.yml"
BLACKBOX_WEB = f"{PROMETHEUS_DIR}/blackbox-web.yml"
ALERTMANAGER_CLUSTER_TLS = f"{PROMETHEUS_DIR}/alertmanager-cluster-tls.yml"
RULES_SUBDIR = "rules"
RULES_DIR = f"{PROMETHEUS_DIR}/{RULES_SUBDIR}"

# TLS material of the Prometheus family (read by prometheus, alertmanager, node exporter).
TLS_SUBDIR = "tls"
TLS_DIR = f"{PROMETHEUS_DIR}/{TLS_SUBDIR}"
CA_FILE = "ca.crt"
CERT_FILE = "server.crt"
KEY_FILE = "server.key"
# With tls.mode acme, the human-facing listeners (Prometheus, Alertmanager, Grafana) serve these
# instead (components/render/acme.py); the stack CA's pair above stays for client certificates,
# gossip and the internal-only listeners.
ACME_CERT_FILE = "acme.crt"
ACME_KEY_FILE = "acme.key"

# Credentials Prometheus reads (relative to prometheus.yml).
SECRETS_SUBDIR = "secrets"
SECRETS_DIR = f"{PROMETHEUS_DIR}/{SECRETS_SUBDIR}"
API_PASSWORD_FILE = "api_password"
SCRAPE_PASSWORD_FILE = "scrape_password"

# Basic-auth users: `obsstack` reads the Prometheus/Alertmanager APIs (Grafana, Prometheus ->
# Alertmanager, health checks); `scrape` may only read node exporters' /metrics.
API_USER = "obsstack"
SCRAPE_USER = "scrape"
# Pushgateway writers, one credential each (the scrape job keeps only what each may push).
DRILL_PUSH_USER = "drill"

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
PROMETHEUS_DATA = "/var/lib/prometheus/metrics2"
ALERTMANAGER_DATA = "/var/lib/prometheus/alertmanager"

LOKI_DIR = "/etc/loki"
LOKI_CONFIG = f"{LOKI_DIR}/config.yml"
LOKI_TLS_DIR = f"{LOKI_DIR}/tls"
LOKI_ENV = f"{LOKI_DIR}/secrets/loki.env"
LOKI_DATA = "/var/lib/loki"

ALLOY_DIR = "/etc/alloy"
ALLOY_CONFIG = f"{ALLOY_DIR}/config.alloy"
ALLOY_TLS_DIR = f"{ALLOY_DIR}/tls"
ALLOY_DATA = "/var/lib/alloy"

GRAFANA_DIR = "/etc/grafana"
GRAFANA_INI = f"{GRAFANA_DIR}/grafana.ini"
GRAFANA_TLS_DIR = f"{GRAFANA_DIR}/tls"
GRAFANA_SECRETS_DIR = f"{GRAFANA_DIR}/secrets"


def defaults_file(unit: str) -> str:
    """The EnvironmentFile Debian's units read their ARGS from."""
    return f"/etc/default/{unit}"


def dropin(unit: str) -> str:
    return f"/etc/systemd/system/{unit}.service.d/obsstack.conf"

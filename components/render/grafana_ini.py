"""grafana.ini: TLS, anonymous access off, admin password and secret_key read from 0600 files
($__file{}), secure cookies, no sign-up, no phoning home; /metrics behind basic auth (Prometheus'
scrape user) and no plugin installs from the UI. grafana/grafana conf/defaults.ini: `[metrics]`
"If both are set, basic auth will be required for the metrics endpoints" (basic_auth_username,
basic_auth_password); `[plugins] plugin_admin_enabled = true` by default."""

from __future__ import annotations

import jinja2

from components.config import StackConfig
from components.inventory import Inventory, MonitoringNode
from components.render import HostFile, acme, layout

TEMPLATE = """\
; Managed by obsstack.
[paths]
data = /var/lib/grafana
logs = /var/log/grafana
provisioning = /etc/grafana/provisioning

[server]
protocol = https
http_addr = {{ ip }}
http_port = {{ port }}
domain = {{ domain }}
root_url = {{ root_url }}
cert_file = {{ tls_dir }}/{{ cert_file }}
cert_key = {{ tls_dir }}/{{ key_file }}
{%- if certs_watch_interval %}
certs_watch_interval = {{ certs_watch_interval }}
{%- endif %}
enforce_domain = false

[security]
admin_user = {{ admin_user }}
admin_password = $__file{{ '{' }}{{ secrets_dir }}/admin_password{{ '}' }}
secret_key = $__file{{ '{' }}{{ secrets_dir }}/secret_key{{ '}' }}
cookie_secure = true
cookie_samesite = strict
strict_transport_security = true
content_security_policy = true
disable_gravatar = true
x_content_type_options = true
x_xss_protection = true

[users]
allow_sign_up = false
allow_org_create = false

[auth]
disable_login_form = false

[auth.anonymous]
enabled = false

[auth.basic]
enabled = true

[snapshots]
external_enabled = false

[analytics]
reporting_enabled = false
check_for_updates = false
check_for_plugin_updates = false
feedback_links_enabled = false

[news]
news_feed_enabled = false

[plugins]
public_key_retrieval_disabled = true
plugin_admin_enabled = false

[metrics]
enabled = true
basic_auth_username = {{ metrics_user }}
basic_auth_password = $__file{{ '{' }}{{ secrets_dir }}/metrics_password{{ '}' }}

[log]
mode = console file
level = info
"""

_template = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # noqa: S701 - an ini file, not HTML
).from_string(TEMPLATE)


def render(config: StackConfig, inventory: Inventory, node: MonitoringNode | None = None) -> str:
    node = node or inventory.monitoring[0]
    port = config.monitoring.ports.grafana
    domain = node.dns_name or f"{node.name}.{config.monitoring.domain}"
    return _template.render(
        ip=node.ip,
        port=port,
        domain=domain,
        root_url=config.grafana.root_url or f"https://{domain}:{port}/",
        tls_dir=layout.GRAFANA_TLS_DIR,
        **_served_pair(config),
        secrets_dir=layout.GRAFANA_SECRETS_DIR,
        admin_user=config.grafana.admin_user,
        metrics_user=layout.SCRAPE_USER,
    )


def _served_pair(config: StackConfig) -> dict[str, str]:
    if acme.enabled(config):
        return {
            "cert_file": layout.ACME_CERT_FILE,
            "key_file": layout.ACME_KEY_FILE,
            "certs_watch_interval": acme.GRAFANA_CERT_WATCH,
        }
    return {"cert_file": layout.CERT_FILE, "key_file": layout.KEY_FILE, "certs_watch_interval": ""}


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    return [
        HostFile(m.name, layout.GRAFANA_INI, render(config, inventory, m), mode="0640", group="grafana")
        for m in inventory.monitoring
    ]

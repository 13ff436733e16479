"""Alloy on every host: the systemd journal and /var/log files to every Loki, labelled with
``host``, ``service`` (the inventory's service tag, the same as on metrics and alerts) and
``level``.

Cardinality stays bounded by construction: labels come only from fixed sets (host and service
are fixed per host, ``level`` is normalised to a closed list, ``unit`` is a systemd unit name,
``filename`` matches a fixed glob, ``source`` is journal|file). Nothing from the log line's free
text becomes a label.
"""

from __future__ import annotations

import json

import jinja2

from components.config import StackConfig
from components.inventory import MONITORING_SERVICE, Inventory
from components.render import HostFile, layout

# journald priority keyword -> level (closed list).
JOURNAL_LEVELS = (
    ("emerg|alert|crit", "critical"),
    ("err", "error"),
    ("warning", "warning"),
    ("notice|info", "info"),
    ("debug", "debug"),
)
FILE_GLOBS = ("/var/log/*.log", "/var/log/*/*.log", "/var/log/syslog", "/var/log/messages")
FILE_LEVEL_REGEX = r"(?i)\b(?P<level>fatal|panic|critical|crit|error|err|warning|warn|info|debug)\b"


def serves_lan(config: StackConfig, ip: str) -> bool:
    """Alloy's HTTP server faces the LAN on monitoring hosts only: every replica's Prometheus
    scrapes every monitoring host's Alloy (the coverage rules expect each registered target in
    each replica), so it listens on the host address behind mutual TLS there. Elsewhere nothing
    scrapes it and it listens on loopback."""
    return ip in {h.address.split("/")[0] for h in config.monitoring.hosts}


def listen_ip(config: StackConfig, ip: str) -> str:
    return ip if serves_lan(config, ip) else "127.0.0.1"


TEMPLATE = """\
// Managed by obsstack: journald and /var/log to Loki.
logging {
  level  = "info"
  format = "logfmt"
}
[% if mutual_tls %]

// The HTTP server (metrics, UI, /-/reload) answers only clients holding a certificate of the
// stack's CA: Prometheus' scrapes and the install's health check use the host certificate.
http {
  tls {
    cert_file        = [[ (tls_dir ~ "/server.crt") | s ]]
    key_file         = [[ (tls_dir ~ "/server.key") | s ]]
    client_ca_file   = [[ (tls_dir ~ "/ca.crt") | s ]]
    client_auth_type = "RequireAndVerifyClientCert"
  }
}
[% endif %]

loki.write "default" {
[% for url in endpoints %]
  endpoint {
    url = [[ url | s ]]
    tls_config {
      ca_file   = [[ (tls_dir ~ "/ca.crt") | s ]]
      cert_file = [[ (tls_dir ~ "/server.crt") | s ]]
      key_file  = [[ (tls_dir ~ "/server.key") | s ]]
    }
  }
[% endfor %]
  external_labels = { cluster = [[ cluster | s ]] }
}

loki.relabel "journal" {
  forward_to = []

  rule {
    source_labels = ["__journal__systemd_unit"]
    target_label  = "unit"
  }
[% for regex, level in levels %]
  rule {
    source_labels = ["__journal_priority_keyword"]
    regex         = [[ regex | s ]]
    target_label  = "level"
    replacement   = [[ level | s ]]
  }
[% endfor %]
}

loki.source.journal "journal" {
  max_age       = "12h"
  relabel_rules = loki.relabel.journal.rules
  labels        = { host = [[ host | s ]], service = [[ service | s ]], source = "journal" }
  forward_to    = [loki.write.default.receiver]
}

local.file_match "varlog" {
  path_targets = [
[% for glob in globs %]
    { "__path__" = [[ glob | s ]], host = [[ host | s ]], service = [[ service | s ]], source = "file" },
[% endfor %]
  ]
  sync_period = "30s"
}

loki.source.file "varlog" {
  targets    = local.file_match.varlog.targets
  forward_to = [loki.process.varlog.receiver]
}

loki.process "varlog" {
  stage.regex {
    expression = [[ level_regex | s ]]
  }

  stage.template {
    source   = "level"
    template = "{{ if .Value }}{{ ToLower .Value }}{{ else }}unknown{{ end }}"
  }

  stage.labels {
    values = { level = "" }
  }

  forward_to = [loki.write.default.receiver]
}
"""

_env = jinja2.Environment(
    block_start_string="[%",
    block_end_string="%]",
    variable_start_string="[[",
    variable_end_string="]]",
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - Alloy syntax, not HTML; strings are escaped by the `s` filter
)
_env.filters["s"] = json.dumps  # an Alloy string literal has JSON's escaping rules
_template = _env.from_string(TEMPLATE)


def render_for(config: StackConfig, inventory: Inventory, host: str, service: str) -> str:
    port = config.monitoring.ports.loki
    endpoints = [f"https://{m.ip}:{port}/loki/api/v1/push" for m in inventory.monitoring]
    return _template.render(
        # The `http` block's `tls` (grafana/alloy docs/sources/reference/config-blocks/http.md).
        mutual_tls=any(m.name == host for m in inventory.monitoring),
        endpoints=endpoints,
        tls_dir=layout.ALLOY_TLS_DIR,
        cluster=config.cluster,
        host=host,
        service=service,
        levels=JOURNAL_LEVELS,
        globs=FILE_GLOBS,
        level_regex=FILE_LEVEL_REGEX,
    )


def render(config: StackConfig, inventory: Inventory) -> str:
    """Alloy config of the first monitoring host."""
    return render_for(config, inventory, inventory.monitoring[0].name, MONITORING_SERVICE)


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    hosts = [(m.name, MONITORING_SERVICE) for m in inventory.monitoring]
    hosts += [(a.name, a.service) for a in inventory.managed_hosts]
    return [
        HostFile(host, layout.ALLOY_CONFIG, render_for(config, inventory, host, service), mode="0640", group="alloy")
        for host, service in hosts
    ]

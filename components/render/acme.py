"""ACME (``monitoring.tls.mode: acme``): the PBS host and every monitoring host obtain and renew
a certificate with lego (Debian's ``lego`` 4.9.1) over DNS-01, from a systemd timer on each host.

What ships to each of those hosts:
- ``/etc/obsstack/acme/lego.env`` (secret, 0600 root): the DNS provider's credentials, read by the
  unit's ``EnvironmentFile=`` only; nothing else on the host holds them;
- ``/usr/local/lib/obsstack/acme-renew``: ``lego run`` the first time, ``lego renew --days N``
  afterwards (lego renews only under N days left), then ``obs_tls_*`` metrics into the node
  exporter's textfile directory, success or not, so TLSCertificateNotRenewed sees failures;
- ``/usr/local/lib/obsstack/acme-deploy``: lego's run/renew hook: installs the certificate where
  the host's daemons serve it and reloads those that need it;
- ``obs-acme-renew.service`` / ``.timer``.

The PBS host's name is ``<pbs.host>.<monitoring.domain>``; its certificate becomes PBS's proxy
certificate and ``proxmox-backup-proxy`` reloads. A monitoring host's name is its ``dns_name``
(config demands one with acme); its certificate is served by the human-facing listeners only:
Prometheus and Alertmanager (``tls/acme.crt``/``acme.key`` beside their web configs) and Grafana
(``/etc/grafana/tls/acme.crt``). Gossip, client certificates and the internal-only listeners keep
the stack CA's pair (``server.crt``). None of the three needs a reload to take a new certificate:
- Prometheus and Alertmanager serve through exporter-toolkit, whose ``Serve`` sets
  ``GetConfigForClient`` to re-read the web config and load the certificate files "on new
  connections" (prometheus/exporter-toolkit web/tls_config.go, ``Serve`` and ``ConfigToTLSConfig``:
  ``GetCertificate`` calls ``loadCert``); tests/e2e/test_acme_pebble.py proves it on Debian's
  Prometheus 2.42 and Alertmanager 0.25 (same processes, the renewed serial served);
- Grafana re-reads ``cert_file``/``cert_key`` when their mtime changes, every
  ``[server] certs_watch_interval`` (grafana/grafana pkg/api/http_server.go, ``WatchAndUpdateCerts``
  and ``updateCerts``; pkg/setting/setting.go reads the key, default 0 = off); grafana.ini sets it.
So the monitoring hosts' hook reloads nothing (a restart would drop connections for nothing).

Until lego's first certificate arrives, those listeners serve the stack CA's certificate for the
host (it names the dns_name too): ``seed_command`` copies it to ``acme.crt``/``acme.key`` when
they are missing, from each daemon's ``ExecStartPre=+`` (systemd.py) and in the apply's candidate
tree before ``promtool check web-config`` (services.py), because exporter-toolkit refuses to start
without a loadable pair (``ConfigToTLSConfig``: "Confirm that certificate and key paths are
valid"). The monitoring hosts' system trust store holds the stack CA (and ``tls.ca_certificates``,
for staging or Pebble), so internal clients that verify the listeners with the host's dns_name as
server name accept both the seed and the ACME certificate.

lego facts (``lego --help``, ``lego run --help``, ``lego renew --help`` of 4.9.1): ``--server``,
``--dns``, ``--dns.resolvers``, ``--dns.disable-cp`` (skips the wait on the zone's
authoritative servers, needed where the DNS has no SOA, such as Pebble's challenge server),
``--domains``, ``--path``, ``--key-type``, ``--accept-tos``;
``run --run-hook``; ``renew --days``, ``--renew-hook``, ``--no-random-sleep`` (the timer's
RandomizedDelaySec spreads the load instead). lego keeps ``<path>/certificates/<domain>.crt`` and
``.key`` (go-acme/lego cmd/certs_storage.go) and trusts an ACME server's own CA from the
``LEGO_CA_CERTIFICATES`` file (go-acme/lego lego/client_config.go), which the Pebble test uses.
PBS serves ``/etc/proxmox-backup/proxy.pem`` (chain) and ``proxy.key`` (proxmox/proxmox-backup
src/bin/proxmox-backup-proxy.rs, make_tls_acceptor; src/api2/node/certificates.rs writes them
through set_proxy_certificate, then reloads the proxy).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.config import StackConfig, TlsSection
from components.inventory import Inventory
from components.render import HostFile, SecretFile, layout, pbs_certificate, sandbox

ACME_DIR = "/etc/obsstack/acme"
ENV_FILE = f"{ACME_DIR}/lego.env"
STATE_DIR = "/var/lib/obsstack-acme"
LIB_DIR = "/usr/local/lib/obsstack"
RENEW_SCRIPT = f"{LIB_DIR}/acme-renew"
DEPLOY_HOOK = f"{LIB_DIR}/acme-deploy"
UNIT = "obs-acme-renew"
SERVICE_PATH = f"/etc/systemd/system/{UNIT}.service"
TIMER_PATH = f"/etc/systemd/system/{UNIT}.timer"
PBS_PROXY_CERT = "/etc/proxmox-backup/proxy.pem"
PBS_PROXY_KEY = "/etc/proxmox-backup/proxy.key"
PBS_PROXY_UNIT = "proxmox-backup-proxy"
METRICS_FILE = "obs_tls.prom"
ENV_SOURCE = "acme-env"
# The ACME CA's roots a monitoring host trusts beside the stack CA (tls.ca_certificates).
TRUSTED_ACME_CA = f"{pbs_certificate.CA_TRUST_DIR}obsstack-acme-ca.crt"
# Grafana re-reads its certificate when it changed, checked this often (certs_watch_interval).
GRAFANA_CERT_WATCH = "1m"


@dataclass(frozen=True)
class Deploy:
    """Where a daemon serves the certificate from: chain, key (root:<group> 0640)."""

    cert: str
    key: str
    group: str


@dataclass(frozen=True)
class Renewal:
    """One host's certificate: its name, where it is deployed, which units reload it."""

    host: str
    fqdn: str
    deploys: tuple[Deploy, ...]
    reload_units: tuple[str, ...]

    @property
    def sandbox(self) -> sandbox.Sandbox:
        """Root for the daemons' files (their directories are not root's: DAC_OVERRIDE; the key
        goes to the daemon's group: CHOWN), network for the ACME directory and the DNS API."""
        directories = sorted({d.cert.rsplit("/", 1)[0] for d in self.deploys})
        return sandbox.Sandbox(
            dynamic_user=False,
            network=True,
            writable=(STATE_DIR, layout.TEXTFILE_DIR, *directories),
            capabilities=("CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"),
        )


def _pair(tls_dir: str, group: str) -> Deploy:
    return Deploy(f"{tls_dir}/{layout.ACME_CERT_FILE}", f"{tls_dir}/{layout.ACME_KEY_FILE}", group)


# The monitoring hosts' human-facing listeners and the group each daemon reads its key as.
MONITORING_DEPLOYS = (_pair(layout.TLS_DIR, "prometheus"), _pair(layout.GRAFANA_TLS_DIR, "grafana"))


def enabled(config: StackConfig) -> bool:
    return config.monitoring.tls.mode == "acme"


def domain(config: StackConfig, host: str) -> str:
    """The PBS host's ACME name (a monitoring host's is its dns_name)."""
    return f"{host}.{config.monitoring.domain}"


def renewals(config: StackConfig, inventory: Inventory) -> list[Renewal]:
    if not enabled(config):
        return []
    pbs = config.pbs.host
    found = [Renewal(pbs, domain(config, pbs), (Deploy(PBS_PROXY_CERT, PBS_PROXY_KEY, "backup"),), (PBS_PROXY_UNIT,))]
    for node in inventory.monitoring:
        assert node.dns_name is not None  # config validation: acme needs every monitoring host's dns_name
        found.append(Renewal(node.name, node.dns_name, MONITORING_DEPLOYS, ()))
    return found


def renewal(config: StackConfig, inventory: Inventory, host: str) -> Renewal:
    return next(r for r in renewals(config, inventory) if r.host == host)


def seed_command(tls_dir: str, group: str, root: str = "") -> str:
    """sh: the stack CA's pair becomes the served pair until lego deploys the first certificate
    (``root`` prefixes the paths: the apply's candidate tree)."""
    d = f"{root}{tls_dir}"
    cert, key = f"{d}/{layout.ACME_CERT_FILE}", f"{d}/{layout.ACME_KEY_FILE}"
    return (
        f"test -s {cert} && test -s {key} || {{ install -m 0640 -g {group} {d}/{layout.KEY_FILE} {key} && "
        f"install -m 0640 -g {group} {d}/{layout.CERT_FILE} {cert}; }}"
    )


def exec_start_pre(config: StackConfig, tls_dir: str, group: str) -> tuple[str, ...]:
    """The daemon's drop-in line that seeds its pair ('+': outside the unit's sandbox, as root)."""
    if not enabled(config):
        return ()
    return (f"ExecStartPre=+/bin/sh -c '{seed_command(tls_dir, group)}'",)


def lego_args(tls: TlsSection, fqdn: str) -> list[str]:
    """lego's global options for this host (the subcommand follows), quoted for bash."""
    assert tls.email is not None and tls.dns_provider is not None  # config validation: acme is complete
    args = [
        "--accept-tos",
        f"--email={tls.email}",
        f"--server={tls.directory_url}",
        f"--dns={tls.dns_provider}",
        *(f"--dns.resolvers={r}" for r in tls.dns_resolvers),
        *(() if tls.dns_propagation_check else ("--dns.disable-cp",)),
        f"--domains={fqdn}",
        "--key-type=ec256",
    ]
    return [shlex.quote(a) for a in args] + ['--path="$ACME_STATE_DIR"']


def renew_script(config: StackConfig, renewal: Renewal) -> str:
    tls = config.monitoring.tls
    fqdn = renewal.fqdn
    args = " \\\n  ".join(lego_args(tls, fqdn))
    return f"""#!/bin/bash
# obs-acme-renew: obtain or renew {fqdn} from {tls.directory_url} (DNS-01, lego) and export
# obs_tls_* metrics (rendered by the Pulumi program; see docs/security.md). The directories can be
# overridden from the environment (the tests run this very script on loopback).
set -uo pipefail
: "${{ACME_STATE_DIR:={STATE_DIR}}}"
: "${{ACME_TEXTFILE_DIR:={layout.TEXTFILE_DIR}}}"
: "${{ACME_DEPLOY_HOOK:={DEPLOY_HOOK}}}"
export ACME_STATE_DIR
domain={shlex.quote(fqdn)}
cert="$ACME_STATE_DIR/certificates/$domain.crt"
lego_args=(
  {args}
)
if [ -s "$cert" ]; then
  lego "${{lego_args[@]}}" renew --days {tls.renew_days} --no-random-sleep --renew-hook "$ACME_DEPLOY_HOOK"
else
  lego "${{lego_args[@]}}" run --run-hook "$ACME_DEPLOY_HOOK"
fi
status=$?
now=$(date +%s)
metrics="$ACME_TEXTFILE_DIR/{METRICS_FILE}"
previous_success=$(sed -n 's/^obs_tls_renew_last_success_timestamp_seconds{{[^}}]*}} //p' "$metrics" 2>/dev/null)
[ "$status" -eq 0 ] && previous_success=$now
{{
  echo "# HELP obs_tls_renew_last_run_timestamp_seconds When the ACME renewal last ran."
  echo "# TYPE obs_tls_renew_last_run_timestamp_seconds gauge"
  echo "obs_tls_renew_last_run_timestamp_seconds{{domain=\\"$domain\\"}} $now"
  echo "# HELP obs_tls_renew_last_status 1 when the last ACME renewal run succeeded (or had nothing to do), else 0."
  echo "# TYPE obs_tls_renew_last_status gauge"
  echo "obs_tls_renew_last_status{{domain=\\"$domain\\"}} $([ "$status" -eq 0 ] && echo 1 || echo 0)"
  if [ -n "${{previous_success:-}}" ]; then
    echo "# HELP obs_tls_renew_last_success_timestamp_seconds When an ACME renewal run last succeeded."
    echo "# TYPE obs_tls_renew_last_success_timestamp_seconds gauge"
    echo "obs_tls_renew_last_success_timestamp_seconds{{domain=\\"$domain\\"}} $previous_success"
  fi
  if [ -s "$cert" ] && not_after=$(openssl x509 -in "$cert" -noout -enddate); then
    echo "# HELP obs_tls_cert_not_after_timestamp_seconds Expiry of the certificate lego holds for the domain."
    echo "# TYPE obs_tls_cert_not_after_timestamp_seconds gauge"
    echo "obs_tls_cert_not_after_timestamp_seconds{{domain=\\"$domain\\"}} $(date -d "${{not_after#notAfter=}}" +%s)"
  fi
}} > "$metrics.tmp" && chmod 0644 "$metrics.tmp" && mv "$metrics.tmp" "$metrics"
exit "$status"
"""


def deploy_hook(renewal: Renewal) -> str:
    installs = []
    for d in renewal.deploys:
        for source, target in (("key", d.key), ("crt", d.cert)):
            group = f'"${{ACME_DEPLOY_GROUP:-{d.group}}}"'
            installs.append(
                f'install -m 0640 -g {group} "$source_dir/$domain.{source}" "$ACME_DEPLOY_ROOT{target}.new"'
            )
        installs += [f'mv "$ACME_DEPLOY_ROOT{p}.new" "$ACME_DEPLOY_ROOT{p}"' for p in (d.key, d.cert)]
    where = ", ".join(d.cert for d in renewal.deploys)
    body = "\n".join(installs)
    reload = " ".join(renewal.reload_units)
    return f"""#!/bin/bash
# obs-acme-deploy: lego's run/renew hook: {renewal.fqdn}'s new certificate is installed where
# it is served (chain and key root:<daemon's group> 0640): {where}.
# Then the units that need it reload it (none: the daemon re-reads the files itself).
# ACME_DEPLOY_ROOT (a prefix of every path),
# ACME_DEPLOY_GROUP and ACME_RELOAD_UNITS can be set from the environment (tests).
set -euo pipefail
: "${{ACME_STATE_DIR:={STATE_DIR}}}"
: "${{ACME_DEPLOY_ROOT:=}}"
: "${{ACME_RELOAD_UNITS={reload}}}"
source_dir="$ACME_STATE_DIR/certificates"
domain={shlex.quote(renewal.fqdn)}
{body}
if [ -n "$ACME_RELOAD_UNITS" ]; then
  # shellcheck disable=SC2086 # a list of units
  systemctl reload $ACME_RELOAD_UNITS
fi
"""


def service_unit(renewal: Renewal) -> str:
    return f"""[Unit]
Description=obsstack: obtain or renew {renewal.fqdn} with ACME (lego, DNS-01)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
EnvironmentFile={ENV_FILE}
ExecStart={RENEW_SCRIPT}
TimeoutStartSec=15min
StateDirectory=obsstack-acme
StateDirectoryMode=0700
{renewal.sandbox.text()}"""


def timer_unit(config: StackConfig) -> str:
    return f"""[Unit]
Description=obsstack: ACME renewal

[Timer]
# The first certificate right after install (the timer's activation), then on the schedule.
OnActiveSec=2min
OnCalendar={config.monitoring.tls.renew_schedule}
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
"""


def env_file(values: dict[str, str]) -> str:
    """The EnvironmentFile: one KEY="value" per credential, double-quoted with the characters a
    shell treats specially inside double quotes backslash-escaped (systemd's env-file parser takes
    the same escapes there: SHELL_NEED_ESCAPE "\\"\\\\`$", systemd src/basic/escape.h), so systemd
    and `set -a; . file` read the same value."""
    lines = []
    for key, value in values.items():
        escaped = "".join(f"\\{c}" if c in '"\\`$' else c for c in value)
        lines.append(f'{key}="{escaped}"')
    return "\n".join(lines) + "\n"


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    shipped = []
    for r in renewals(config, inventory):
        shipped += [
            HostFile(r.host, RENEW_SCRIPT, renew_script(config, r), mode="0755"),
            HostFile(r.host, DEPLOY_HOOK, deploy_hook(r), mode="0755"),
            HostFile(r.host, SERVICE_PATH, service_unit(r)),
            HostFile(r.host, TIMER_PATH, timer_unit(config)),
        ]
    bundle = config.monitoring.tls.ca_certificates
    if enabled(config) and bundle:
        shipped += [HostFile(node.name, TRUSTED_ACME_CA, bundle) for node in inventory.monitoring]
    return shipped


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    """The DNS credentials on every renewing host; on the monitoring hosts, the stack CA in the
    system store (update-ca-certificates), so clients verifying by name accept the seed pair."""
    shipped = [SecretFile(r.host, ENV_FILE, ENV_SOURCE, mode="0600") for r in renewals(config, inventory)]
    if enabled(config):
        shipped += [SecretFile(n.name, pbs_certificate.TRUSTED_CA, "tls:ca", mode="0644") for n in inventory.monitoring]
    return shipped


INSTALLED = (RENEW_SCRIPT, DEPLOY_HOOK, SERVICE_PATH, TIMER_PATH)

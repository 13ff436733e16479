"""ACME (``monitoring.tls.mode: acme``): the PBS host obtains and renews its proxy certificate
with lego (Debian's ``lego`` 4.9.1) over DNS-01, from a systemd timer.

What ships to the PBS host:
- ``/etc/obsstack/acme/lego.env`` (secret, 0600 root): the DNS provider's credentials, read by the
  unit's ``EnvironmentFile=`` only; nothing else on the host holds them;
- ``/usr/local/lib/obsstack/acme-renew``: ``lego run`` the first time, ``lego renew --days N``
  afterwards (lego renews only under N days left), then ``obs_tls_*`` metrics into the node
  exporter's textfile directory, success or not, so TLSCertificateNotRenewed sees failures;
- ``/usr/local/lib/obsstack/acme-deploy``: lego's run/renew hook: installs the certificate as
  PBS's proxy certificate and reloads ``proxmox-backup-proxy``;
- ``obs-acme-renew.service`` / ``.timer``.

Why only PBS (docs/security.md): the monitoring services are reached by address by the stack
itself (Prometheus scrapes, the health checks, Grafana's datasources), and a publicly trusted
certificate carries DNS names only; they keep the internal CA's certificates, which name the
address.

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

from components.config import StackConfig, TlsSection
from components.inventory import Inventory
from components.render import HostFile, SecretFile, layout, sandbox

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


def enabled(config: StackConfig) -> bool:
    return config.monitoring.tls.mode == "acme"


def domain(config: StackConfig, host: str) -> str:
    return f"{host}.{config.monitoring.domain}"


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


def renew_script(config: StackConfig, host: str) -> str:
    tls = config.monitoring.tls
    fqdn = domain(config, host)
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


def deploy_hook(config: StackConfig, host: str) -> str:
    fqdn = domain(config, host)
    return f"""#!/bin/bash
# obs-acme-deploy: lego's run/renew hook: {fqdn}'s new certificate becomes PBS's proxy
# certificate (chain in proxy.pem, key in proxy.key, root:backup 0640 as PBS writes them), then
# the proxy reloads it. The paths and the reload can be overridden from the environment (tests).
set -euo pipefail
: "${{ACME_STATE_DIR:={STATE_DIR}}}"
: "${{ACME_DEPLOY_CERT:={PBS_PROXY_CERT}}}"
: "${{ACME_DEPLOY_KEY:={PBS_PROXY_KEY}}}"
: "${{ACME_DEPLOY_GROUP:=backup}}"
: "${{ACME_RELOAD_UNITS:={PBS_PROXY_UNIT}}}"
source_dir="$ACME_STATE_DIR/certificates"
domain={shlex.quote(fqdn)}
install -m 0640 -g "$ACME_DEPLOY_GROUP" "$source_dir/$domain.key" "$ACME_DEPLOY_KEY.new"
install -m 0640 -g "$ACME_DEPLOY_GROUP" "$source_dir/$domain.crt" "$ACME_DEPLOY_CERT.new"
mv "$ACME_DEPLOY_KEY.new" "$ACME_DEPLOY_KEY"
mv "$ACME_DEPLOY_CERT.new" "$ACME_DEPLOY_CERT"
# shellcheck disable=SC2086 # a list of units
systemctl reload $ACME_RELOAD_UNITS
"""


# Root for the PBS proxy's files (/etc/proxmox-backup is backup:backup 0700: DAC_OVERRIDE; the
# key goes to group backup: CHOWN), network for the ACME directory and the DNS provider's API.
SANDBOX = sandbox.Sandbox(
    dynamic_user=False,
    network=True,
    writable=(STATE_DIR, layout.TEXTFILE_DIR, "/etc/proxmox-backup"),
    capabilities=("CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE"),
)


def service_unit(config: StackConfig, host: str) -> str:
    return f"""[Unit]
Description=obsstack: obtain or renew {domain(config, host)} with ACME (lego, DNS-01)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
EnvironmentFile={ENV_FILE}
ExecStart={RENEW_SCRIPT}
TimeoutStartSec=15min
StateDirectory=obsstack-acme
StateDirectoryMode=0700
{SANDBOX.text()}"""


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
    if not enabled(config):
        return []
    host = config.pbs.host
    return [
        HostFile(host, RENEW_SCRIPT, renew_script(config, host), mode="0755"),
        HostFile(host, DEPLOY_HOOK, deploy_hook(config, host), mode="0755"),
        HostFile(host, SERVICE_PATH, service_unit(config, host)),
        HostFile(host, TIMER_PATH, timer_unit(config)),
    ]


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    if not enabled(config):
        return []
    return [SecretFile(config.pbs.host, ENV_FILE, ENV_SOURCE, mode="0600")]


INSTALLED = (RENEW_SCRIPT, DEPLOY_HOOK, SERVICE_PATH, TIMER_PATH)

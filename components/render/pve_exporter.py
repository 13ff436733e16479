"""prometheus-pve-exporter on every monitoring host: the hash-pinned lock, its hardened unit and
the environment file carrying the stack's read-only PVE API token.

The ``pve`` scrape job asks ``127.0.0.1:<ports.pve_exporter>/pve?target=<node>`` on the host
Prometheus runs on (components/inventory.py), so the exporter runs beside every Prometheus
replica and listens on loopback only.

Not packaged in Debian: it comes from PyPI, every wheel checked against the SHA-256 in
requirements-pve-exporter.txt, into a venv of its own under /opt named after the lock's digest.
A new lock gives a new venv and a new ExecStart path, so the unit changes, the service restarts
on the new venv, and a failed health check rolls the unit back onto the old one (still there).

Facts, from prometheus-pve/prometheus-pve-exporter 3.10.2 (src/pve_exporter/cli.py and
config.py): with ``PVE_USER`` in the environment the configuration is taken from ``PVE_USER``,
``PVE_TOKEN_NAME``, ``PVE_TOKEN_VALUE`` and ``PVE_VERIFY_SSL`` and no config file is read; it is
read once at start (a change needs a restart); ``--web.listen-address`` sets the bind address
(default ``[::]:9221``); ``/metrics`` serves the exporter's own metrics (its health check).
"""

from __future__ import annotations

import hashlib

from components.config import StackConfig
from components.inventory import Inventory
from components.render import HostFile, SecretFile, sandbox, sources

UNIT = "prometheus-pve-exporter"
UNIT_PATH = f"/etc/systemd/system/{UNIT}.service"
HOME = "/opt/obsstack/pve-exporter"
REQUIREMENTS = f"{HOME}/requirements.txt"
CONFIG_DIR = "/etc/obsstack/pve-exporter"
TOKEN_ENV = f"{CONFIG_DIR}/token.env"
# The identity the stack creates for it (components/proxmox/exporter_token.py): the user is the
# stack's (StackConfig.stack_names.exporter_user), the token's name is the same in every stack.
TOKEN_NAME = "metrics"
# The token's key among the secrets MonitoringHost gets, and the source of its environment file
# (resolved by components/monitoring/host.py).
TOKEN_KEY = "generated:pve-exporter-token"
TOKEN_SOURCE = f"pve-exporter-env:{TOKEN_KEY}"
# The CAs it trusts: the host's store, where an operator installs PVE's cluster CA
# (pve-root-ca.pem) with update-ca-certificates, not the certifi bundle of its venv (public CAs
# only, so a PVE node's own certificate never verified). PVE_VERIFY_SSL is a boolean
# (src/pve_exporter/config.py, config_from_env); with verify on, requests takes the bundle from
# REQUESTS_CA_BUNDLE (psf/requests docs/user/advanced.rst, SSL Cert Verification; sessions.py
# merge_environment_settings). Found by the twin (tests/twin), whose PVE API has a private CA's cert.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def venv_dir(lock: str = sources.PVE_EXPORTER_LOCK) -> str:
    """The venv for this exact lock: a changed lock is a new directory, never an upgrade in place."""
    return f"{HOME}/venv-{hashlib.sha256(lock.encode()).hexdigest()[:12]}"


def token_env(token_value: str) -> str:
    """``PVE_TOKEN_VALUE=<secret>`` for the unit's EnvironmentFile.

    pulumi-proxmoxve's Token ``value`` is what PVE's token API returns; PVE's
    ``POST /access/users/{userid}/token/{tokenid}`` answers ``full-tokenid`` and ``value`` separately and
    some clients join them as ``<user>!<name>=<secret>``: either form gives the bare secret here.
    """
    secret = token_value.rsplit("=", 1)[-1].strip()
    return f"PVE_TOKEN_VALUE={secret}\n"


def unit_text(config: StackConfig) -> str:
    venv = venv_dir()
    listen = f"127.0.0.1:{config.monitoring.ports.pve_exporter}"
    verify = "false" if config.proxmox.insecure else "true"
    user = config.stack_names.exporter_user
    return "\n".join(
        [
            "# Managed by obsstack: prometheus-pve-exporter from its hash-pinned venv (requirements.txt beside it).",
            "[Unit]",
            "Description=Prometheus exporter for Proxmox VE (obsstack)",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            # A user of its own for the lifetime of the service; the token file is read by systemd as
            # root before the switch (systemd.exec(5), EnvironmentFile=), never by the daemon.
            "DynamicUser=yes",
            f"Environment=PVE_USER={user} PVE_TOKEN_NAME={TOKEN_NAME} PVE_VERIFY_SSL={verify}",
            f"Environment=REQUESTS_CA_BUNDLE={SYSTEM_CA_BUNDLE}",
            f"EnvironmentFile={TOKEN_ENV}",
            f"ExecStart={venv}/bin/pve_exporter --web.listen-address={listen}",
            "Restart=on-failure",
            "RestartSec=5s",
            # The same sandbox as obsstack's own tool units, with the network it scrapes PVE over.
            *sandbox.Sandbox(dynamic_user=False, network=True).lines(),
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def install_command(config: StackConfig) -> str:
    """One shell line: the venv for the candidate lock, created once, only from hashed wheels.

    Runs as the apply step's validator, so a failed install (a hash mismatch, no route to PyPI)
    leaves the running exporter untouched. The stamp marks a venv whose install finished. pip trusts
    the host's CA store (``--cert``, "overrides the default" bundle: pip docs, cli/pip.rst general
    options), not the certifi copy a new venv's pip carries: behind a TLS-inspecting proxy, whose
    CA the host trusts, the certifi bundle refused PyPI (found by the twin, tests/twin)."""
    venv = venv_dir()
    proxy = f" --proxy {config.monitoring.apt_proxy}" if config.monitoring.apt_proxy else ""
    pip = (
        f"{venv}/bin/pip install -q --disable-pip-version-check --no-cache-dir --require-hashes"
        f' --only-binary=:all: --no-deps --cert {SYSTEM_CA_BUNDLE}{proxy} -r "$candidate{REQUIREMENTS}"'
    )
    return (
        f"{{ [ -e {venv}/.obsstack-complete ] || {{ rm -rf {venv} && python3 -m venv {venv} && {pip}"
        f" && touch {venv}/.obsstack-complete; }}; }} && {venv}/bin/pve_exporter --help >/dev/null"
    )


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    shipped: list[HostFile] = []
    for node in inventory.monitoring:
        shipped.append(HostFile(node.name, REQUIREMENTS, sources.PVE_EXPORTER_LOCK))
        shipped.append(HostFile(node.name, UNIT_PATH, unit_text(config)))
    return shipped


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    return [SecretFile(node.name, TOKEN_ENV, TOKEN_SOURCE) for node in inventory.monitoring]

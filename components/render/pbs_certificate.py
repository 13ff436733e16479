"""``pbs.certificate: stack_ca``: PBS serves the stack CA's certificate for its host, and every PVE
node trusts that CA, so PVE verifies PBS by CA instead of pinning a fingerprint.

What ships:
- to the PBS host, ``/etc/proxmox-backup/proxy.pem`` and ``proxy.key``: the host certificate and
  key the internal CA issues it anyway (its node exporter's, naming its name, FQDN and address),
  root:backup 0640 as PBS writes them; the ``pbs_proxy`` apply step reloads
  ``proxmox-backup-proxy`` and checks that ``https://<address>:<port>/`` verifies against the CA
  (components/monitoring/services.py). PBS serves exactly these two files (proxmox/proxmox-backup
  src/bin/proxmox-backup-proxy.rs, make_tls_acceptor; src/api2/node/certificates.rs writes them
  and reloads the proxy, as ``proxmox-backup-manager cert update`` does);
- to every PVE node, the CA as ``/usr/local/share/ca-certificates/obsstack-ca.crt``; the files
  step runs ``update-ca-certificates`` when it changes (update-ca-certificates(8): certificates
  in that directory, ending in .crt, are added to /etc/ssl/certs).

Why PVE then verifies by CA: proxmox-backup-client accepts a certificate OpenSSL verified before
it looks at any fingerprint (proxmox/proxmox-backup pbs-client/src/http_client.rs,
``verify_callback``: ``if openssl_valid { return Ok(None) }``), and PVE's API client trusts only
pinned fingerprints when one is configured (pve-apiclient PVE/APIClient/LWP.pm, ``new``: with
``cached_fingerprints``, hostname verification is off and the OpenSSL result is not trusted), so
the storage entry carries no fingerprint (config refuses one) and is declared after the agents
that install the CA and the certificate (__main__.py).
"""

from __future__ import annotations

from components.config import StackConfig
from components.inventory import Inventory
from components.render import SecretFile

PROXY_CERT = "/etc/proxmox-backup/proxy.pem"
PROXY_KEY = "/etc/proxmox-backup/proxy.key"
PROXY_UNIT = "proxmox-backup-proxy"
TRUSTED_CA = "/usr/local/share/ca-certificates/obsstack-ca.crt"
CA_TRUST_DIR = "/usr/local/share/ca-certificates/"


def enabled(config: StackConfig) -> bool:
    return config.pbs.certificate == "stack_ca"


def trusting_hosts(config: StackConfig) -> list[str]:
    """The hosts that must trust the stack's CA before PVE's storage entry drops the pin."""
    return [a.name for a in config.pve_nodes()] if enabled(config) else []


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    if not enabled(config):
        return []
    host = config.pbs.host
    return [
        SecretFile(host, PROXY_CERT, f"tls:cert:{host}", mode="0640", group="backup"),
        SecretFile(host, PROXY_KEY, f"tls:key:{host}", mode="0640", group="backup"),
        *(SecretFile(name, TRUSTED_CA, "tls:ca", mode="0644") for name in trusting_hosts(config)),
    ]

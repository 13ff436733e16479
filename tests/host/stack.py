"""The stack the host test installs: the example config re-addressed into 127.0.0.0/8 with free
ports, plus real certificates (openssl) and bcrypt-hashed passwords, resolved the way
components/monitoring/host.py resolves SecretFile sources in `pulumi up`."""

from __future__ import annotations

import copy
import secrets
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from components import config as stack_config
from components import inventory as stack_inventory
from components.monitoring import services
from components.render import HostFile, SecretFile, host_files, secret_files, webconfig
from tests.host.nspawn import free_port

HOST = "mon-test"
IP = "127.0.0.1"
# What the host test installs: the Prometheus family from Debian (Grafana's repo is unreachable).
SERVICES = ("node_exporter", "blackbox", "pushgateway", "prometheus", "alertmanager")


def sections(base: dict[str, Any], scrape_interval: str = "5s", ip: str = IP) -> dict[str, Any]:
    """Every address in 127.0.0.0/8 (or the host's own in a private network namespace): nothing
    leaves this machine."""
    sec = copy.deepcopy(base)
    sec["inventory"] = {
        "assets": [
            {"name": "pve1", "kind": "pve_node", "address": "127.0.0.2", "service": "proxmox", "tier": "critical"},
            {"name": "pbs1", "kind": "pbs_host", "address": "127.0.0.3", "service": "backup", "tier": "critical"},
            {
                "name": "app1",
                "kind": "vm",
                "vmid": 110,
                "node": "pve1",
                "address": "127.0.0.4",
                "service": "git",
                "tier": "critical",
                "probes": [{"module": "tcp_connect", "target": "127.0.0.4:22"}],
            },
        ]
    }
    sec["backups"]["drill"]["node"] = None
    sec["alerting"]["routing"]["warning"]["by_service"] = {}
    mon = sec["monitoring"]
    mon["hosts"] = [{"name": HOST, "vmid": 200, "node": "pve1", "address": f"{ip}/8" if ip == IP else f"{ip}/30"}]
    mon["scrape_interval"] = scrape_interval
    mon["scrape_timeout"] = "4s"
    mon["evaluation_interval"] = "10s"
    # The container has no data disk: its data directories stay where the packages put them.
    mon.setdefault("vm", {})["data_mount"] = None
    return sec


@dataclass
class Credentials:
    """Real secrets for the test host (the roles credentials.py and pki.py create in `up`)."""

    workdir: Path
    passwords: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    ca_cert: str = ""
    host_cert: str = ""
    host_key: str = ""

    @classmethod
    def create(cls, name: str = HOST, ips: tuple[str, ...] = (IP,)) -> Credentials:
        """One CA and one certificate valid for ``name`` and every address in ``ips``."""
        work = Path(tempfile.mkdtemp(prefix="obsstack-pki-"))
        creds = cls(work, {role: secrets.token_hex(16) for role in webconfig.WEB_USERS})

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=work)

        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
        openssl("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "2", "-subj", "/CN=obsstack test CA",
                "-out", "ca.crt")  # fmt: skip
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "host.key.ec")
        openssl("pkcs8", "-topk8", "-nocrypt", "-in", "host.key.ec", "-out", "host.key")
        openssl("req", "-new", "-key", "host.key", "-subj", f"/CN={name}", "-out", "host.csr")
        (work / "ext").write_text(
            f"subjectAltName={','.join(f'IP:{ip}' for ip in ips)},DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
        )
        openssl("x509", "-req", "-in", "host.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-sha256", "-extfile", "ext", "-out", "host.crt")  # fmt: skip
        creds.ca_cert = (work / "ca.crt").read_text()
        creds.host_cert = (work / "host.crt").read_text()
        creds.host_key = (work / "host.key").read_text()
        return creds

    @property
    def ca_path(self) -> Path:
        return self.workdir / "ca.crt"

    def resolve(self, source: str) -> str:
        """Content of a SecretFile source (the plain-value twin of host.py's Output resolution)."""
        kind, _, rest = source.partition(":")
        if kind == "tls":
            return {"ca": self.ca_cert, "cert": self.host_cert, "key": self.host_key}[rest.split(":")[0]]
        if kind == "password":
            return self.passwords[rest]
        if kind == "web":
            # Hashed once, like random.RandomPassword's bcrypt_hash kept in Pulumi state.
            for role in webconfig.web_roles(rest):
                if role not in self.hashes:
                    hashed = bcrypt.hashpw(self.passwords[role].encode(), bcrypt.gensalt(rounds=10))
                    self.hashes[role] = hashed.decode()
            return webconfig.render({webconfig.WEB_USERS[r]: self.hashes[r] for r in webconfig.web_roles(rest)})
        # A secret config key (receiver URLs, ...): a closed port on loopback, never the internet.
        return f"http://127.0.0.1:9/{source}"


@dataclass
class InstallStack:
    config: stack_config.StackConfig
    inventory: stack_inventory.Inventory
    files: list[HostFile]
    secrets: list[SecretFile]
    specs: list[services.ServiceSpec]

    @classmethod
    def build(cls, raw: dict[str, Any], ip: str = IP) -> InstallStack:
        config = stack_config.validate(raw)
        inventory = stack_inventory.build(config)
        files = [f for f in host_files(config, inventory) if f.host == HOST]
        secret = [s for s in secret_files(config, inventory) if s.host == HOST]
        specs = services.specs(config, ip, files, secret, only=SERVICES)
        return cls(config, inventory, files, secret, specs)

    def owned(self, service: str) -> set[str]:
        return {m.path for spec in self.specs if spec.name == service for m in spec.files}


def with_ports(raw: dict[str, Any]) -> dict[str, Any]:
    """Free ports for every daemon: Debian's own may run on the defaults on this machine."""
    raw = copy.deepcopy(raw)
    raw["monitoring"]["ports"] = {
        name: free_port()
        for name in (
            "prometheus",
            "alertmanager",
            "alertmanager_cluster",
            "node_exporter",
            "blackbox",
            "pve_exporter",
            "pushgateway",
            "loki",
            "grafana",
            "alloy",
        )
    }
    return raw

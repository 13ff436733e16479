"""pbs.certificate stack_ca on a booted Debian 12 host (systemd-nspawn), with the agents' own
install scripts: the `pbs_proxy` step puts the stack CA's certificate where PBS serves it from and
reloads the proxy, and the `ca_trust` step makes the system trust store, which PVE's
proxmox-backup-client verifies with (OpenSSL's default paths), accept that certificate.

PBS itself is not installable here: a stand-in `proxmox-backup-proxy` unit serves
/etc/proxmox-backup/proxy.pem and proxy.key over TLS (openssl s_server) and reads them again on
`systemctl reload`, as PBS's proxy does. PBS host and PVE node are the same test host.
Fails (never skips) when debootstrap/systemd-nspawn/root are missing.
"""

from __future__ import annotations

import copy
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from components import config as stack_config
from components.inventory import build
from components.monitoring import scripts, services
from components.render import files_for, pbs_certificate
from tests.conftest import load_sections
from tests.host import nspawn
from tests.host.stack import IP, Credentials
from tests.host.test_monitoring_install import must, run

pytestmark = pytest.mark.host

STAND_IN = """[Unit]
Description=stands in for proxmox-backup-proxy: serves proxy.pem/proxy.key, re-reads them on reload
[Service]
ExecStart=/usr/bin/openssl s_server -quiet -www -accept {ip}:{port} -cert {cert} -key {key}
ExecReload=/bin/kill -TERM $MAINPID
Restart=always
RestartSec=1
"""


@dataclass
class Prepared:
    host: nspawn.DebianHost
    creds: Credentials
    port: int
    proxy: services.ServiceSpec
    trust: services.ServiceSpec


def _specs(port: int) -> tuple[services.ServiceSpec, services.ServiceSpec, dict[str, str]]:
    sections = copy.deepcopy(load_sections())
    sections["pbs"].pop("fingerprint")
    sections["pbs"].update({"certificate": "stack_ca", "port": port})
    config = stack_config.validate(sections)
    inventory = build(config)
    pbs_files, pbs_secrets = files_for(config, inventory, config.pbs.host)
    (proxy,) = services.specs(config, IP, pbs_files, pbs_secrets, only=("pbs_proxy",))
    node = config.pve_nodes()[0].name
    node_files, node_secrets = files_for(config, inventory, node)
    (trust,) = services.specs(config, IP, node_files, node_secrets, only=("ca_trust",))
    shipped = {pbs_certificate.PROXY_CERT, pbs_certificate.PROXY_KEY, pbs_certificate.TRUSTED_CA}
    sources = {s.path: s.source for s in (*pbs_secrets, *node_secrets) if s.path in shipped}
    return proxy, trust, sources


@pytest.fixture(scope="module")
def prepared() -> Iterator[Prepared]:
    try:
        context = nspawn.booted()
        host = context.__enter__()
    except nspawn.HostError as err:
        pytest.fail(str(err))
    try:
        port = nspawn.free_port()
        creds = Credentials.create()
        proxy, trust, sources = _specs(port)
        unit = STAND_IN.format(ip=IP, port=port, cert=pbs_certificate.PROXY_CERT, key=pbs_certificate.PROXY_KEY)
        (host.root / f"etc/systemd/system/{pbs_certificate.PROXY_UNIT}.service").write_text(unit)
        # PBS's own state before the switch: a self-signed certificate in its 0700 directory.
        must(
            run(
                host,
                "install -d -m 0700 -o backup -g backup /etc/proxmox-backup && "
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=pbs "
                f"-keyout {pbs_certificate.PROXY_KEY} -out {pbs_certificate.PROXY_CERT} 2>/dev/null && "
                f"systemctl daemon-reload && systemctl start {pbs_certificate.PROXY_UNIT}",
            ),
            "stand-in",
        )
        specs = [proxy, trust]
        layout = scripts.layout_script(
            services.directories(specs), host.user, scripts.staging_dirs(specs), services.group_members(specs)
        )
        must(run(host, layout), "layout")
        payload = scripts.stage_payload({path: creds.resolve(source) for path, source in sources.items()})
        must(run(host, scripts.stage_script(secret=True), stdin=payload), "stage secrets")
        # The health check's CA is the node exporter's, which its own step installs first.
        (host.root / "etc/prometheus/tls").mkdir(parents=True, exist_ok=True)
        (host.root / "etc/prometheus/tls/ca.crt").write_text(creds.ca_cert)
        yield Prepared(host, creds, port, proxy, trust)
    finally:
        context.__exit__(None, None, None)


def served_verifies(port: int, ca: str) -> bool:
    context = ssl.create_default_context(cafile=ca)
    try:
        with (
            socket.create_connection((IP, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=IP),
        ):
            return True
    except ssl.SSLCertVerificationError:
        return False


def trusted_by_the_system(prepared: Prepared) -> bool:
    """curl inside the host without --cacert: OpenSSL's default trust store, as PVE's client."""
    url = f"https://{IP}:{prepared.port}/"
    result = run(prepared.host, f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 {url}")
    return result.returncode == 0 and result.stdout == "200"


def test_pbs_serves_the_stack_certificate_after_its_step(prepared: Prepared) -> None:
    ca = str(prepared.creds.ca_path)
    assert not served_verifies(prepared.port, ca), "the stand-in must start on a self-signed certificate"
    out = must(run(prepared.host, scripts.apply_script(prepared.proxy)), "apply pbs_proxy")
    assert "obsstack: pbs_proxy reloaded" in out, out
    assert served_verifies(prepared.port, ca), "after the step PBS serves a chain the stack's CA verifies"
    modes = must(
        run(prepared.host, f"stat -c '%a %U %G' {pbs_certificate.PROXY_CERT} {pbs_certificate.PROXY_KEY}"), "stat"
    )
    assert modes.split("\n")[:2] == ["640 root backup", "640 root backup"], modes


def test_the_system_trust_store_accepts_pbs_after_the_ca_step(prepared: Prepared) -> None:
    if not served_verifies(prepared.port, str(prepared.creds.ca_path)):
        must(run(prepared.host, scripts.apply_script(prepared.proxy)), "apply pbs_proxy")
    assert not trusted_by_the_system(prepared), "the stack's CA must not be trusted before its step"
    must(run(prepared.host, scripts.apply_script(prepared.trust)), "apply ca_trust")
    assert trusted_by_the_system(prepared), "after the step the system trust store verifies PBS"
    again = must(run(prepared.host, scripts.apply_script(prepared.trust)), "apply ca_trust again")
    assert "ca_trust unchanged" in again, again

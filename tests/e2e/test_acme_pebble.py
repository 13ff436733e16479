"""The ACME flow for real on loopback: Debian's ``pebble`` (the ACME server) with
``pebble-challtestsrv`` as the DNS its DNS-01 validation asks, lego driven by the *rendered*
renew script, deploy hook and credentials file (components/render/acme.py).

The PBS host: issue, serve (openssl s_server with the deployed proxy.pem/proxy.key, verified by
s_client against Pebble's root by name), renew before expiry (``renew --days`` above the
certificate's lifetime), the reload hook, and a renewal that keeps failing: the metrics keep the old
expiry, and the rendered TLSCertificateNotRenewed fires in a real Prometheus reading them through
node_exporter. A monitoring host: its dns_name issued and served by Debian's Prometheus and
Alertmanager with the rendered web configs (the stack CA's seed first), renewed and served by the
same processes, verified by name while connecting by address (s_client, the health check's curl
--resolve, Prometheus' rendered scrape of itself and its rendered alerting entry, both with
tls_config server_name).

Pebble 2.4's certificates live 5 years (pebble ca/ca.go), so "close to expiry" is reached by
config (cert_expiry_days 3000, renew_days 3650) rather than by waiting. The binaries are required:
apt-get install pebble lego openssl curl prometheus prometheus-alertmanager (the test fails
without them).
"""

from __future__ import annotations

import copy
import grp
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml

from components import config as stack_config
from components.inventory import build
from components.render import acme, layout, prometheus, webconfig
from tests.conftest import load_sections
from tools.lab import Lab

pytestmark = pytest.mark.e2e

DNS_HOOK = """#!/bin/sh
# lego's exec provider: present|cleanup <fqdn> <value> -> pebble-challtestsrv's management API.
case "$1" in
  present) curl -sf -X POST -d "{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}" "$CHALLTESTSRV/set-txt" ;;
  cleanup) curl -sf -X POST -d "{\\"host\\":\\"$2\\"}" "$CHALLTESTSRV/clear-txt" ;;
esac
"""
FAKE_SYSTEMCTL = '#!/bin/sh\necho "$*" >> "$SYSTEMCTL_LOG"\n'


def require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} is required: apt-get install {package}"
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class AcmeServer:
    directory: str
    dns: str
    challtestsrv: str
    listener_ca: Path
    root: Path
    pebble: subprocess.Popen[bytes]


@pytest.fixture
def acme_server(tmp_path: Path) -> Iterator[AcmeServer]:
    pebble, challtestsrv = require("pebble", "pebble"), require("pebble-challtestsrv", "pebble")
    require("lego", "lego")
    require("curl", "curl")
    key, cert = tmp_path / "listener.key", tmp_path / "listener.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    acme_port, mgmt_port, dns_port, chall_port = free_port(), free_port(), free_port(), free_port()
    config = tmp_path / "pebble.json"
    listen = {
        "listenAddress": f"127.0.0.1:{acme_port}",
        "managementListenAddress": f"127.0.0.1:{mgmt_port}",
        "certificate": str(cert),
        "privateKey": str(key),
        "httpPort": 5002,
        "tlsPort": 5001,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
    config.write_text(json.dumps({"pebble": listen}))
    dns = subprocess.Popen(
        [challtestsrv, "-dns01", f"127.0.0.1:{dns_port}", "-management", f"127.0.0.1:{chall_port}",
         "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = subprocess.Popen(
        [pebble, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
        env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(chall_port)
        wait_port(acme_port)
        wait_port(mgmt_port)
        root = tmp_path / "pebble-root.pem"
        root.write_text(requests.get(f"https://127.0.0.1:{mgmt_port}/roots/0", verify=str(cert), timeout=10).text)
        yield AcmeServer(
            f"https://127.0.0.1:{acme_port}/dir",
            f"127.0.0.1:{dns_port}",
            f"http://127.0.0.1:{chall_port}",
            cert,
            root,
            server,
        )
    finally:
        for proc in (server, dns):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


def acme_config(server: AcmeServer, **tls: Any) -> stack_config.StackConfig:
    sections = copy.deepcopy(load_sections())
    thresholds = tls.pop("cert_expiry_days", None)
    if thresholds is not None:
        sections["alerting"].setdefault("thresholds", {})["cert_expiry_days"] = thresholds
    del sections["pbs"]["fingerprint"]  # PVE verifies the ACME certificate by CA
    for host in sections["monitoring"]["hosts"]:
        host["dns_name"] = f"{host['name']}.lab.example.net"  # each monitoring host's ACME name
    sections["monitoring"]["tls"] = {
        "mode": "acme",
        "email": "ops@example.net",
        "directory": server.directory,
        "dns_provider": "exec",
        "credentials": [
            {"env": "EXEC_PATH", "value_secret": "acmeDnsHook"},
            {"env": "EXEC_POLLING_INTERVAL", "value_secret": "acmePollingInterval"},
        ],
        "dns_resolvers": [server.dns],
        "dns_propagation_check": False,
        **tls,
    }
    return stack_config.validate(sections)


@dataclass
class Renewer:
    """One host's rendered renewer, run on loopback with its paths moved under ``root``."""

    root: Path
    server: AcmeServer
    host: str

    def deployed(self, path: str) -> Path:
        return self.root / "deploy" / path.lstrip("/")

    @property
    def cert(self) -> Path:
        return self.deployed(acme.PBS_PROXY_CERT)

    @property
    def key(self) -> Path:
        return self.deployed(acme.PBS_PROXY_KEY)

    @property
    def metrics(self) -> Path:
        return self.root / "textfile" / acme.METRICS_FILE

    def reloads(self) -> list[str]:
        log = self.root / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []

    def run(self, config: stack_config.StackConfig) -> subprocess.CompletedProcess[str]:
        inventory = build(config)
        shipped = {f.path: f.content for f in acme.files(config, inventory) if f.host == self.host}
        for deploy in acme.renewal(config, inventory, self.host).deploys:
            self.deployed(deploy.cert).parent.mkdir(parents=True, exist_ok=True)
        bin_dir = self.root / "bin"
        bin_dir.mkdir(exist_ok=True)
        (self.root / "textfile").mkdir(exist_ok=True)
        scripts = {"acme-renew": acme.RENEW_SCRIPT, "acme-deploy": acme.DEPLOY_HOOK}
        for name, path in scripts.items():
            (bin_dir / name).write_text(shipped[path])
        (bin_dir / "systemctl").write_text(FAKE_SYSTEMCTL)
        (bin_dir / "dns-hook").write_text(DNS_HOOK)
        for script in bin_dir.iterdir():
            script.chmod(0o755)
        env_file = self.root / "lego.env"
        values = {"EXEC_PATH": str(bin_dir / "dns-hook"), "EXEC_POLLING_INTERVAL": "1"}
        env_file.write_text(acme.env_file({c.env: values[c.env] for c in config.monitoring.tls.credentials}))
        env_file.chmod(0o600)
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "ACME_STATE_DIR": str(self.root / "state"),
            "ACME_TEXTFILE_DIR": str(self.root / "textfile"),
            "ACME_DEPLOY_HOOK": str(bin_dir / "acme-deploy"),
            "ACME_DEPLOY_ROOT": str(self.root / "deploy"),
            "ACME_DEPLOY_GROUP": grp.getgrgid(os.getgid()).gr_name,
            "LEGO_CA_CERTIFICATES": str(self.server.listener_ca),
            "CHALLTESTSRV": self.server.challtestsrv,
            "SYSTEMCTL_LOG": str(self.root / "systemctl.log"),
        }
        # The unit's EnvironmentFile= quoting is a subset of the shell's: `set -a` reads it the same.
        command = f'set -a; . "{env_file}"; set +a; exec "{bin_dir / "acme-renew"}"'
        return subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=180, check=False
        )

    def metric(self, name: str) -> float | None:
        for line in self.metrics.read_text().splitlines():
            if line.startswith(f"{name}{{"):
                return float(line.rsplit(" ", 1)[1])
        return None


def cert_field(path: Path, field: str) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-in", path, "-noout", f"-{field}"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip().split("=", 1)[1]


def not_after_epoch(path: Path) -> int:
    return int(
        subprocess.run(
            ["date", "-d", cert_field(path, "enddate"), "+%s"], capture_output=True, text=True, check=False
        ).stdout
    )


def peer(port: int, fqdn: str, ca: Path) -> tuple[str, str]:
    """(serial, issuer) of what 127.0.0.1:port serves for ``fqdn``, verified by that name
    (s_client -servername/-verify_hostname) against ``ca``."""
    client = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", fqdn, "-verify_hostname", fqdn,
         "-CAfile", ca, "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert client.returncode == 0 and "Verify return code: 0 (ok)" in client.stdout, client.stdout + client.stderr
    pem = client.stdout[client.stdout.index("-----BEGIN CERTIFICATE-----") :]
    pem = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-serial", "-issuer"], input=pem, capture_output=True, text=True, check=False
    )
    serial, issuer = out.stdout.strip().splitlines()
    return serial, issuer


def served_serial(renewer: Renewer, fqdn: str) -> str:
    """Serve the deployed pair with openssl s_server, the whole chain as PBS does
    (set_certificate_chain_file); s_client verifies it by name against Pebble's root."""
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", renewer.cert,
         "-cert_chain", renewer.cert, "-key", renewer.key, "-www"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port)
        return peer(port, fqdn, renewer.server.root)[0]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_issue_serve_renew_and_keep_failing(acme_server: AcmeServer, tmp_path: Path) -> None:
    config = acme_config(acme_server)
    renewer = Renewer(tmp_path / "pbs", acme_server, config.pbs.host)
    renewer.root.mkdir()
    fqdn = acme.domain(config, config.pbs.host)

    # Issue: `lego run`, the hook installs proxy.pem/proxy.key and reloads the PBS proxy.
    first = renewer.run(config)
    assert first.returncode == 0, first.stderr
    assert renewer.reloads() == [f"reload {acme.PBS_PROXY_UNIT}"]
    assert oct(renewer.key.stat().st_mode & 0o777) == "0o640"
    issued = served_serial(renewer, fqdn)
    assert renewer.metric("obs_tls_renew_last_status") == 1
    assert renewer.metric("obs_tls_cert_not_after_timestamp_seconds") == not_after_epoch(renewer.cert)
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=renewer.metrics.read_text(), capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # Not due (30 days of a 5-year certificate): lego renews nothing, the hook is not called.
    idle = renewer.run(config)
    assert idle.returncode == 0, idle.stderr
    assert renewer.reloads() == [f"reload {acme.PBS_PROXY_UNIT}"]
    assert served_serial(renewer, fqdn) == issued

    # Due (renew_days beyond the lifetime): a new certificate is deployed, served and reloaded.
    due = acme_config(acme_server, renew_days=3650, cert_expiry_days=3000)
    renewed = renewer.run(due)
    assert renewed.returncode == 0, renewed.stderr
    assert len(renewer.reloads()) == 2
    renewed_serial = served_serial(renewer, fqdn)
    assert renewed_serial != issued
    success_at = renewer.metric("obs_tls_renew_last_success_timestamp_seconds")

    # The ACME server is gone: every renewal fails, the served certificate and its expiry stay.
    acme_server.pebble.terminate()
    acme_server.pebble.wait(timeout=10)
    failed = renewer.run(due)
    assert failed.returncode != 0
    assert renewer.metric("obs_tls_renew_last_status") == 0
    assert renewer.metric("obs_tls_renew_last_success_timestamp_seconds") == success_at
    assert renewer.metric("obs_tls_cert_not_after_timestamp_seconds") == not_after_epoch(renewer.cert)
    assert len(renewer.reloads()) == 2
    assert served_serial(renewer, fqdn) == renewed_serial

    # ... and the rendered rule fires on those metrics in a real Prometheus (via node_exporter).
    with Lab(due, speedup=60, workdir=tmp_path / "lab") as lab:
        shutil.copy(renewer.metrics, lab.textfile_dir / acme.METRICS_FILE)
        firing = 'ALERTS{alertname="TLSCertificateNotRenewed",alertstate="firing"}'
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not lab.query(firing):
            time.sleep(1)
        alerts = lab.query(firing)
    assert [a["metric"]["domain"] for a in alerts] == [fqdn]


def stack_ca_pair(directory: Path, fqdn: str) -> Path:
    """A stand-in for the stack CA and the host's pair it issues (server.crt/.key). The leaf names
    only the dns_name, so a client that verified by address instead of by name would fail."""
    ca_key, ca = directory / "stack-ca.key", directory / "stack-ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=obsstack test CA"],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = directory / layout.TLS_DIR.lstrip("/")
    csr = directory / "server.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", tls / layout.KEY_FILE, "-out", csr, "-subj", f"/CN={fqdn}"],
        check=True, capture_output=True,
    )  # fmt: skip
    extensions = directory / "san.ext"
    extensions.write_text(f"subjectAltName=DNS:{fqdn}\n")
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", extensions, "-out", tls / layout.CERT_FILE],
        check=True, capture_output=True,
    )  # fmt: skip
    return ca


def api_ready(port: int, fqdn: str, trust: Path, password: str) -> int:
    """The install health check's request: by name, to the address (--resolve), with the API user."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert", trust,
         "--resolve", f"{fqdn}:{port}:127.0.0.1", "-u", f"{layout.API_USER}:{password}",
         f"https://{fqdn}:{port}/-/ready"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return int(out.stdout or 0)


def query_result(answer: Any) -> Any:
    return answer["data"]["result"]


def api_get(port: int, fqdn: str, path: str, pick: Any, *, trust: Path, password: str, timeout: float = 60) -> Any:
    """``pick`` of the JSON an API answers by name (curl --resolve), polled until it is not empty."""
    deadline = time.monotonic() + timeout
    picked: Any = None
    while time.monotonic() < deadline and not picked:
        out = subprocess.run(
            ["curl", "-sS", "--cacert", trust, "--resolve", f"{fqdn}:{port}:127.0.0.1",
             "-u", f"{layout.API_USER}:{password}", f"https://{fqdn}:{port}{path}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        picked = pick(json.loads(out.stdout)) if out.returncode == 0 else None
        time.sleep(0.5)
    return picked


def test_monitoring_host_certificate_is_served_and_renewed_without_a_restart(
    acme_server: AcmeServer, tmp_path: Path
) -> None:
    """A monitoring host's renewer issues its dns_name; Debian's Prometheus and Alertmanager serve
    the rendered web config (the ACME pair), first the stack CA's seed, then the ACME certificate,
    then the renewed one, each from the same process; clients verify by name while connecting by
    address: s_client, the health check's curl, Prometheus' rendered scrape of itself and its
    rendered alerting entry (tls_config server_name), which delivers an alert to Alertmanager."""
    prometheus_bin = require("prometheus", "prometheus")
    alertmanager_bin = require("prometheus-alertmanager", "prometheus-alertmanager")
    config = acme_config(acme_server)
    inventory = build(config)
    node = inventory.monitoring[0]
    fqdn = str(node.dns_name)
    renewer = Renewer(tmp_path / node.name, acme_server, node.name)
    etc = renewer.deployed(layout.PROMETHEUS_DIR)
    (etc / layout.TLS_SUBDIR).mkdir(parents=True)
    stack_ca = stack_ca_pair(renewer.root / "deploy", fqdn)
    # What the host's system store holds: the stack CA and the ACME CA's root (tls.ca_certificates).
    trust = tmp_path / "trust.pem"
    trust.write_text(stack_ca.read_text() + acme_server.root.read_text())

    # The seed, as the daemon's ExecStartPre runs it: the stack CA's pair until lego deploys one.
    seed = acme.seed_command(layout.TLS_DIR, grp.getgrgid(os.getgid()).gr_name, root=str(renewer.root / "deploy"))
    subprocess.run(["sh", "-c", seed], check=True)
    password = "api-password"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (etc / "web.yml").write_text(webconfig.render({layout.API_USER: hashed}, acme=True))
    (etc / "alertmanager-web.yml").write_text(webconfig.render({layout.API_USER: hashed}, acme=True))
    (etc / "alertmanager.yml").write_text(
        yaml.safe_dump({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    )
    (etc / "probe.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "probe", "rules": [{"alert": "AcmeProbe", "expr": "vector(1)"}]}]})
    )
    port, am_port = free_port(), free_port()
    rendered = yaml.safe_load(prometheus.render(config, inventory, node))
    (self_scrape,) = [c for c in rendered["scrape_configs"] if c["job_name"] == "prometheus"]
    assert self_scrape["tls_config"] == {"server_name": fqdn}, "verifies the name against the system store"
    self_scrape["tls_config"]["ca_file"] = str(trust)  # the system store's stand-in
    self_scrape["basic_auth"] = {"username": layout.API_USER, "password": password}
    self_scrape["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    (to_alertmanager,) = rendered["alerting"]["alertmanagers"]
    assert to_alertmanager["tls_config"] == {"server_name": fqdn}
    to_alertmanager["tls_config"]["ca_file"] = str(trust)
    to_alertmanager["basic_auth"] = {"username": layout.API_USER, "password": password}
    to_alertmanager["static_configs"] = [{"targets": [f"127.0.0.1:{am_port}"]}]
    (etc / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "alerting": {"alertmanagers": [to_alertmanager]},
                "rule_files": ["probe.yml"],
                "scrape_configs": [self_scrape],
            }
        )
    )
    alertmanager = subprocess.Popen(
        [alertmanager_bin, f"--config.file={etc / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
         "--cluster.listen-address=", f"--web.config.file={etc / 'alertmanager-web.yml'}",
         f"--web.listen-address=127.0.0.1:{am_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    daemon = subprocess.Popen(
        [prometheus_bin, f"--config.file={etc / 'prometheus.yml'}", f"--web.config.file={etc / 'web.yml'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         "--rules.alert.resend-delay=1s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    daemons = (daemon, alertmanager)
    try:
        wait_port(port)
        wait_port(am_port)
        for listener in (port, am_port):
            assert peer(listener, fqdn, stack_ca)[1].endswith("obsstack test CA"), "the seed: the stack CA's pair"
            assert api_ready(listener, fqdn, trust, password) == 200

        # Issue: lego deploys the ACME pair; the running Prometheus serves it on the next handshake.
        issued = renewer.run(config)
        assert issued.returncode == 0, issued.stderr
        assert renewer.reloads() == [], "nothing reloads: exporter-toolkit re-reads the pair per connection"
        first, issuer = peer(port, fqdn, acme_server.root)
        assert "obsstack test CA" not in issuer
        assert peer(am_port, fqdn, acme_server.root)[0] == first
        assert api_ready(port, fqdn, trust, password) == 200
        assert api_ready(am_port, fqdn, trust, password) == 200
        grafana_cert = renewer.deployed(f"{layout.GRAFANA_TLS_DIR}/{layout.ACME_CERT_FILE}")
        assert grafana_cert.read_text() == renewer.deployed(f"{layout.TLS_DIR}/{layout.ACME_CERT_FILE}").read_text()

        # Renew (due): the new certificate is served by the same process, without a restart.
        renewed = renewer.run(acme_config(acme_server, renew_days=3650, cert_expiry_days=3000))
        assert renewed.returncode == 0, renewed.stderr
        second, _ = peer(port, fqdn, acme_server.root)
        assert second != first
        assert peer(am_port, fqdn, acme_server.root)[0] == second
        assert all(d.poll() is None for d in daemons), "served by the processes that started on the seed"
        assert renewer.metric("obs_tls_renew_last_status") == 1

        up = api_get(
            port, fqdn, "/api/v1/query?query=up", lambda d: d["data"]["result"], trust=trust, password=password
        )
        assert [(r["metric"]["job"], r["value"][1]) for r in up] == [("prometheus", "1")], up
        alerts = api_get(am_port, fqdn, "/api/v2/alerts", lambda d: d, trust=trust, password=password)
        assert [a["labels"]["alertname"] for a in alerts] == ["AcmeProbe"], "Prometheus -> Alertmanager by name"
    finally:
        for d in daemons:
            d.terminate()
            d.wait(timeout=20)

"""tls.mode acme on the monitoring hosts: every host needs its dns_name, the human-facing listeners
(Prometheus, Alertmanager, Grafana) serve its ACME pair (seeded with the stack CA's), and the
stack's own clients verify that name while connecting by address. The real issuance, serving and
renewal: tests/e2e/test_acme_pebble.py."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml

from components import config as stack_config
from components.inventory import build
from components.monitoring import scripts, services
from components.render import acme, files_for, grafana_ini, layout, pbs_certificate, prometheus, systemd, webconfig
from tests.conftest import RunProgram, load_sections
from tests.unit.monitoring_helpers import with_replicas, write_plan

ACME: dict[str, Any] = {
    "mode": "acme",
    "email": "ops@example.net",
    "dns_provider": "cloudflare",
    "credentials": [{"env": "CF_DNS_API_TOKEN", "value_secret": "cloudflareDnsToken"}],
}
HUMAN_FACING = ("prometheus", "alertmanager", "grafana")


def acme_sections(replicas: int = 1, **tls: Any) -> dict[str, Any]:
    sections = with_replicas(load_sections(), replicas)
    del sections["pbs"]["fingerprint"]  # PVE verifies the ACME certificate by CA
    sections["monitoring"]["tls"] = {**ACME, **tls}
    for host in sections["monitoring"]["hosts"]:
        host["dns_name"] = f"{host['name']}.home.example.net"
    return sections


def problems(sections: dict[str, Any]) -> str:
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(sections)
    return str(err.value)


def pem() -> str:
    run = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "/dev/null", "-days", "1", "-subj", "/CN=Pebble Root"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return run.stdout


@pytest.mark.parametrize("index", [0, 1], ids=["first-host", "second-host"])
def test_acme_needs_every_monitoring_hosts_dns_name(index: int) -> None:
    sections = acme_sections(replicas=2)
    del sections["monitoring"]["hosts"][index]["dns_name"]
    text = problems(sections)
    assert f"monitoring.hosts[{index}].dns_name: tls.mode acme issues each monitoring host a certificate" in text
    assert "set dns_name" in text and "or use tls.mode internal_ca" in text


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        pytest.param({"ca_certificates": "not a certificate"}, "is not a PEM certificate bundle", id="not-pem"),
        pytest.param(
            {"mode": "internal_ca", "ca_certificates": "PEM"},
            "`ca_certificates` is an ACME setting",
            id="on-internal-ca",
        ),
    ],
)
def test_ca_certificates_refused(tls: dict[str, Any], expected: str) -> None:
    tls = {**tls, "ca_certificates": pem()} if tls["ca_certificates"] == "PEM" else tls
    sections = acme_sections(**tls)
    if tls.get("mode") == "internal_ca":
        sections["monitoring"]["tls"] = tls
        sections["pbs"]["fingerprint"] = "ab:" * 31 + "ab"
    assert expected in problems(sections)


def test_monitoring_hosts_trust_the_stack_ca_and_the_configured_acme_roots() -> None:
    bundle = pem()
    config = stack_config.validate(acme_sections(replicas=2, ca_certificates=bundle))
    inventory = build(config)
    for node in inventory.monitoring:
        shipped, secrets = files_for(config, inventory, node.name)
        assert next(f.content for f in shipped if f.path == acme.TRUSTED_ACME_CA) == bundle
        (stack_ca,) = [s for s in secrets if s.path == pbs_certificate.TRUSTED_CA]
        assert stack_ca.source == "tls:ca"
        assert services.owner_of(acme.TRUSTED_ACME_CA) == "ca_trust"  # update-ca-certificates runs
    # Production LetsEncrypt: its roots are in Debian's store already, nothing extra ships.
    plain = stack_config.validate(acme_sections())
    assert all(f.path != acme.TRUSTED_ACME_CA for f in files_for(plain, build(plain), "mon-1")[0])


@pytest.mark.parametrize("acme_mode", [True, False], ids=["acme", "internal-ca"])
def test_human_facing_listeners_serve_the_acme_pair(acme_mode: bool) -> None:
    sections = acme_sections() if acme_mode else copy.deepcopy(load_sections())
    config = stack_config.validate(sections)
    inventory = build(config)
    node = inventory.monitoring[0]
    secrets = {s.path: s.source for s in files_for(config, inventory, node.name)[1]}
    human = "web-acme:api" if acme_mode else "web:api"
    assert (secrets[layout.PROMETHEUS_WEB], secrets[layout.ALERTMANAGER_WEB]) == (human, human)
    # Internal-only listeners keep the stack CA's pair.
    assert secrets[layout.NODE_EXPORTER_WEB] == secrets[layout.BLACKBOX_WEB] == "web:scrape"
    served = yaml.safe_load(webconfig.render({"u": "h"}, acme=acme_mode))["tls_server_config"]
    assert served["cert_file"] == f"tls/{layout.ACME_CERT_FILE if acme_mode else layout.CERT_FILE}"
    ini = grafana_ini.render(config, inventory, node)
    cert = layout.ACME_CERT_FILE if acme_mode else layout.CERT_FILE
    assert f"cert_file = {layout.GRAFANA_TLS_DIR}/{cert}\n" in ini
    assert ("certs_watch_interval = " in ini) is acme_mode


def test_only_the_human_facing_daemons_seed_their_pair() -> None:
    config = stack_config.validate(acme_sections())
    inventory = build(config)
    dropins = {f.path: f.content for f in systemd.files(config, inventory) if f.host == "mon-1"}
    seeding = {path for path, text in dropins.items() if "ExecStartPre=+" in text}
    assert seeding == {layout.dropin(u) for u in ("prometheus", "prometheus-alertmanager", "grafana-server")}
    internal = stack_config.validate(load_sections())
    assert not any("ExecStartPre=+" in f.content for f in systemd.files(internal, build(internal)))


def test_seed_copies_the_stack_pair_once_and_never_over_an_acme_one(tmp_path: Path) -> None:
    tls = tmp_path / layout.TLS_DIR.lstrip("/")
    tls.mkdir(parents=True)
    (tls / layout.CERT_FILE).write_text("stack cert\n")
    (tls / layout.KEY_FILE).write_text("stack key\n")
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True, check=True).stdout.strip()
    seed = acme.seed_command(layout.TLS_DIR, group, root=str(tmp_path))
    subprocess.run(["sh", "-c", seed], check=True)
    assert (tls / layout.ACME_CERT_FILE).read_text() == "stack cert\n"
    assert oct((tls / layout.ACME_KEY_FILE).stat().st_mode & 0o777) == "0o640"
    (tls / layout.ACME_CERT_FILE).write_text("acme cert\n")
    (tls / layout.ACME_KEY_FILE).write_text("acme key\n")
    subprocess.run(["sh", "-c", seed], check=True)
    assert (tls / layout.ACME_CERT_FILE).read_text() == "acme cert\n"


def test_dropin_with_the_seed_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required (systemd)"
    config = stack_config.validate(acme_sections())
    dropin = next(f.content for f in systemd.files(config, build(config)) if f.path == layout.dropin("prometheus"))
    unit = tmp_path / "obs-seed-test.service"
    # The drop-in's [Service] on a stand-in unit: systemd parses the ExecStartPre line.
    unit.write_text("[Unit]\nDescription=seed test\n\n" + dropin.replace("[Service]", "[Service]\nExecStart=/bin/true"))
    run = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False)
    assert "ExecStartPre" not in run.stderr and "Invalid" not in run.stderr, run.stderr


@pytest.mark.parametrize("replicas", [1, 2], ids=["replicas-1", "replicas-2"])
def test_prometheus_verifies_each_host_by_name(replicas: int) -> None:
    config = stack_config.validate(acme_sections(replicas=replicas))
    inventory = build(config)
    names = {m.name: m.dns_name for m in inventory.monitoring}
    ips = {m.name: m.ip for m in inventory.monitoring}
    document = yaml.safe_load(prometheus.render(config, inventory))
    for job in HUMAN_FACING:
        scrapes = [c for c in document["scrape_configs"] if c["static_configs"][0]["labels"].get("job") == job]
        assert len(scrapes) == replicas, job
        for scrape in scrapes:
            (group,) = scrape["static_configs"]
            asset = group["labels"]["asset"]
            assert group["targets"] == [f"{ips[asset]}:{getattr(config.monitoring.ports, job)}"], "by address"
            assert scrape["tls_config"] == {"server_name": names[asset]}, "by name, against the system store"
    node_job = next(c for c in document["scrape_configs"] if c["job_name"] == "node")
    assert node_job["tls_config"] == {"ca_file": prometheus.CA}, "internal-only listeners keep the stack CA"
    alertmanagers = document["alerting"]["alertmanagers"]
    assert [(a["static_configs"][0]["targets"], a["tls_config"]) for a in alertmanagers] == [
        ([f"{m.ip}:{config.monitoring.ports.alertmanager}"], {"server_name": m.dns_name}) for m in inventory.monitoring
    ]


def test_promtool_accepts_the_acme_prometheus_yml(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (apt-get install prometheus)"
    out = tmp_path / "plan"
    write_plan(acme_sections(replicas=2), out)
    configs = sorted(out.glob("hosts/*/etc/prometheus/prometheus.yml"))
    assert len(configs) == 2
    for path in configs:
        run = subprocess.run(
            [promtool, "check", "config", path.name], cwd=path.parent, capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, f"{path}:\n{run.stdout}{run.stderr}"


@pytest.mark.parametrize("service", HUMAN_FACING)
def test_health_checks_reach_the_address_by_name(service: str) -> None:
    config = stack_config.validate(acme_sections())
    node = build(config).monitoring[0]
    shipped, secrets = files_for(config, build(config), node.name)
    spec = next(s for s in services.specs(config, node.ip, shipped, secrets) if s.name == service)
    assert spec.health is not None
    port = getattr(config.monitoring.ports, service)
    assert spec.health.url.startswith(f"https://{node.dns_name}:{port}/")
    assert spec.health.resolve == f"{node.dns_name}:{port}:{node.ip}"
    curl = " ".join(scripts._tls_args(spec.health))
    assert f"--resolve {node.dns_name}:{port}:{node.ip}" in curl and "--capath /etc/ssl/certs" in curl
    # The internal-only node exporter is still checked by address against the stack CA alone.
    exporter = next(s for s in services.specs(config, node.ip, shipped, secrets) if s.name == "node_exporter")
    assert exporter.health is not None and exporter.health.resolve is None


def test_candidate_is_seeded_before_promtool_checks_the_web_config() -> None:
    config = stack_config.validate(acme_sections())
    node = build(config).monitoring[0]
    shipped, secrets = files_for(config, build(config), node.name)
    for spec in services.specs(config, node.ip, shipped, secrets, only=("prometheus", "alertmanager")):
        web_check = next(i for i, v in enumerate(spec.validators) if "check web-config" in v)
        assert spec.validators[0] == acme.seed_command(layout.TLS_DIR, "prometheus", root='"$candidate"')
        assert web_check > 0


def test_grafana_datasources_verify_the_name(run_program: RunProgram) -> None:
    plan = run_program(acme_sections())
    sources = {r.inputs["uid"]: r.inputs for r in plan.resources if r.type == "grafana:oss/dataSource:DataSource"}
    for uid in ("prometheus", "alertmanager"):
        data = json.loads(sources[uid]["jsonDataEncoded"])
        assert data["serverName"] == "mon-1.home.example.net" and "tlsAuthWithCACert" not in data, uid
    loki = json.loads(sources["loki"]["jsonDataEncoded"])
    assert loki["tlsAuthWithCACert"] is True and "serverName" not in loki, "Loki keeps the stack CA"


def test_grafana_provider_reaches_grafana_by_name_and_trusts_every_served_pair(run_program: RunProgram) -> None:
    bundle = pem()
    plan = run_program(acme_sections(ca_certificates=bundle))
    provider = next(r for r in plan.resources if r.type == "pulumi:providers:grafana")
    assert provider.inputs["url"] == "https://mon-1.home.example.net:3000"
    ca = str(provider.inputs["caCert"])
    assert "-----BEGIN CERTIFICATE-----" in ca
    assert bundle.strip() in ca, "the configured ACME roots (staging, Pebble)"
    assert Path(certifi.where()).read_text().strip() in ca, "public roots: LetsEncrypt production"

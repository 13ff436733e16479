"""monitoring.hosts[].dns_name: the name people reach a monitoring host by. It is validated, goes
into the host's certificate, the `endpoints` output, Prometheus' and Alertmanager's external URLs
(alert links) and Grafana's domain; the stack itself keeps reaching the host by address."""

from __future__ import annotations

import copy
import shlex
from typing import Any

import pytest

from components import config as stack_config
from components.inventory import build
from components.render import grafana_ini, layout, systemd
from tests.conftest import load_sections
from tests.unit.monitoring_helpers import with_replicas

NAME = "mon-1.lab.example.net"


def named(dns_name: Any = NAME) -> dict[str, Any]:
    sections = copy.deepcopy(load_sections())
    sections["monitoring"]["hosts"][0]["dns_name"] = dns_name
    return sections


@pytest.mark.parametrize(
    ("dns_name", "expected"),
    [
        pytest.param("10.0.20.10", "is an address: write the DNS name", id="an-address"),
        pytest.param("mon-1", "is not fully qualified", id="not-qualified"),
        pytest.param("mon_1.lab.example.net", "neither an IP address nor a DNS name", id="not-a-name"),
    ],
)
def test_refused(dns_name: str, expected: str) -> None:
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(named(dns_name))
    assert "dns_name" in str(err.value)
    assert expected in str(err.value)


def test_two_hosts_cannot_share_a_name(example_sections) -> None:
    sections = with_replicas(example_sections, 2)
    for host in sections["monitoring"]["hosts"]:
        host["dns_name"] = NAME
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(sections)
    assert f"hosts[1].dns_name: duplicate dns_name '{NAME}'" in str(err.value)


def _args(files, path: str, host: str) -> list[str]:
    text = next(f.content for f in files if f.path == path and f.host == host)
    line = next(line for line in text.splitlines() if line.startswith("ARGS="))
    return shlex.split(shlex.split(line.split("=", 1)[1])[0])


def test_alert_links_and_grafana_use_the_name_and_the_stack_the_address() -> None:
    config = stack_config.validate(named())
    inventory = build(config)
    node = inventory.monitoring[0]
    files = systemd.files(config, inventory)
    ports = config.monitoring.ports
    prometheus = _args(files, layout.defaults_file("prometheus"), node.name)
    assert f"--web.external-url=https://{NAME}:{ports.prometheus}/" in prometheus
    assert f"--web.listen-address={node.ip}:{ports.prometheus}" in prometheus
    alertmanager = _args(files, layout.defaults_file("prometheus-alertmanager"), node.name)
    assert f"--web.external-url=https://{NAME}:{ports.alertmanager}/" in alertmanager
    ini = grafana_ini.render(config, inventory, node)
    assert f"domain = {NAME}\n" in ini
    assert f"http_addr = {node.ip}\n" in ini


def test_without_a_name_the_address_stays(example_config, example_inventory) -> None:
    node = example_inventory.monitoring[0]
    prometheus = _args(systemd.files(example_config, example_inventory), layout.defaults_file("prometheus"), node.name)
    assert f"--web.external-url=https://{node.ip}:{example_config.monitoring.ports.prometheus}/" in prometheus


def test_certificate_and_endpoints_carry_the_name(run_program) -> None:
    plan = run_program(named())
    csr = next(r for r in plan.resources if r.type == "tls:index/certRequest:CertRequest" and "mon-1" in r.name)
    assert NAME in csr.inputs["dnsNames"]
    assert "10.0.20.10" in csr.inputs["ipAddresses"], "the stack still reaches the host by address"
    endpoints = plan.outputs["endpoints"]["mon-1"]
    assert endpoints["grafana"] == f"https://{NAME}:3000"
    assert endpoints["prometheus"].startswith(f"https://{NAME}:")
    provider = next(r for r in plan.resources if r.type == "pulumi:providers:grafana")
    assert NAME not in str(provider.inputs.get("url")), "the Grafana provider keeps the address"

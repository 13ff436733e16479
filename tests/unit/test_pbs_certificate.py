"""pbs.certificate stack_ca (components/render/pbs_certificate.py): PBS serves the stack CA's
certificate, every PVE node trusts the CA, and PVE's storage entry, without a pin, waits for both.
The install steps run on a booted host in tests/host/test_tool_sandbox.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import config as stack_config
from components.inventory import build
from components.monitoring import scripts, services
from components.render import files_for, layout, pbs_certificate
from tests.conftest import load_sections


def stack_ca(**pbs: Any) -> dict[str, Any]:
    sections = copy.deepcopy(load_sections())
    sections["pbs"].pop("fingerprint", None)
    sections["pbs"].update({"certificate": "stack_ca", **pbs})
    return sections


def problems(sections: dict[str, Any]) -> str:
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(sections)
    return str(err.value)


def _acme(sections: dict[str, Any]) -> dict[str, Any]:
    sections["monitoring"]["tls"] = {
        "mode": "acme",
        "email": "ops@example.net",
        "dns_provider": "cloudflare",
        "credentials": [{"env": "CF_DNS_API_TOKEN", "value_secret": "cloudflareDnsToken"}],
    }
    return sections


def _unmanaged_pve2(sections: dict[str, Any]) -> dict[str, Any]:
    for asset in sections["inventory"]["assets"]:
        if asset["name"] == "pve2":
            asset["managed"] = False
    return sections


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        pytest.param(stack_ca(fingerprint=":".join(["AB"] * 32)), "pbs.fingerprint: with pbs.certificate stack_ca",
                     id="with-a-pin"),
        pytest.param(_acme(stack_ca()), "pbs.certificate: with tls.mode acme PBS already serves", id="with-acme"),
        pytest.param(_unmanaged_pve2(stack_ca()), "pve2 must trust the stack's CA", id="unmanaged-pve-node"),
    ],
)  # fmt: skip
def test_refused(sections: dict[str, Any], expected: str) -> None:
    assert expected in problems(sections)


def test_self_signed_without_a_pin_names_both_fixes() -> None:
    sections = copy.deepcopy(load_sections())
    sections["pbs"].pop("fingerprint")
    message = problems(sections)
    assert "pbs.fingerprint" in message
    assert "pbs.certificate: stack_ca" in message


def test_pbs_serves_its_host_certificate_and_pve_nodes_trust_the_ca() -> None:
    config = stack_config.validate(stack_ca())
    inventory = build(config)
    _, pbs_secrets = files_for(config, inventory, config.pbs.host)
    shipped = {s.path: s for s in pbs_secrets}
    for path, source in ((pbs_certificate.PROXY_CERT, "tls:cert:pbs1"), (pbs_certificate.PROXY_KEY, "tls:key:pbs1")):
        assert (shipped[path].source, shipped[path].mode, shipped[path].owner, shipped[path].group) == (
            source, "0640", "root", "backup")  # fmt: skip
    for node in config.pve_nodes():
        _, secrets = files_for(config, inventory, node.name)
        assert any(s.path == pbs_certificate.TRUSTED_CA and s.source == "tls:ca" for s in secrets), node.name


def test_nothing_ships_with_the_self_signed_certificate(example_config, example_inventory) -> None:
    assert pbs_certificate.secret_files(example_config, example_inventory) == []


def test_the_proxy_step_reloads_and_checks_the_served_chain_against_the_ca() -> None:
    config = stack_config.validate(stack_ca())
    inventory = build(config)
    pbs = config.pbs_host()
    files, secrets = files_for(config, inventory, pbs.name)
    specs = services.specs(config, str(pbs.address), files, secrets, only=services.AGENT_SERVICES)
    spec = next(s for s in specs if s.name == "pbs_proxy")
    assert spec.unit == "proxmox-backup-proxy"
    assert {m.path for m in spec.files} == {pbs_certificate.PROXY_CERT, pbs_certificate.PROXY_KEY}
    assert spec.health is not None
    assert spec.health.url == f"https://{pbs.address}:{config.pbs.port}/"
    assert spec.health.ca_file == f"{layout.TLS_DIR}/{layout.CA_FILE}"
    assert [s.name for s in specs].index("node_exporter") < [s.name for s in specs].index("pbs_proxy")
    assert "systemctl reload proxmox-backup-proxy" in scripts.apply_script(spec)


def test_the_storage_entry_waits_for_the_trust_and_carries_no_pin(run_program) -> None:
    config = stack_config.validate(stack_ca())
    plan = run_program(stack_ca())
    entry = plan.one(type_="proxmoxve:storage/pbs:Pbs")
    assert "fingerprint" not in entry.inputs
    storage = plan.one(type_="obsstack:proxmox:BackupStorage")
    # A component in depends_on reaches the engine as its resources (each agent's install steps).
    assert f"{config.pbs.host}-agents-apply-pbs-proxy" in storage.options["dependsOn"]
    for node in config.pve_nodes():
        assert f"{node.name}-agents-apply-ca-trust" in storage.options["dependsOn"], node.name


def test_without_stack_ca_the_storage_entry_waits_for_no_agent(example_plan) -> None:
    storage = example_plan.one(type_="obsstack:proxmox:BackupStorage")
    assert not [d for d in storage.options["dependsOn"] if "-agents-" in d]
    assert "fingerprint" in example_plan.one(type_="proxmoxve:storage/pbs:Pbs").inputs

"""MonitoringHost and HostAgents under the mock engine: the commands they declare, what
triggers them, and that no secret reaches the plan."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from components import config as stack_config
from components.monitoring import services
from tests.conftest import RunProgram, distinct_secrets, load_sections
from tests.unit.monitoring_helpers import generated_secret_values, with_replicas
from tools.plan import engine

COMMAND = "command:remote:Command"


def triggers(plan: engine.PlanResult, name: str) -> list[Any]:
    return list(plan.one(COMMAND, name).inputs.get("triggers", []))


@pytest.mark.parametrize("service", ["node-exporter", "blackbox", "pushgateway", "prometheus", "alertmanager",
                                     "loki", "grafana", "alloy"])  # fmt: skip
def test_monitoring_host_applies_every_service(example_plan: engine.PlanResult, service: str) -> None:
    step = example_plan.one(COMMAND, f"mon-1-services-apply-{service}")
    assert step.parent == "mon-1-services"
    script = step.inputs["create"]
    assert "rejected the new configuration" in script or "healthy" in script
    assert step.options["dependsOn"], "an apply step waits for its staged files"


def test_apply_steps_run_in_order(example_plan: engine.PlanResult) -> None:
    # pbs_proxy and ca_trust are steps of the PBS host and the PVE nodes only.
    on_monitoring = [s for s in services.ORDER if s not in ("files", "pbs_proxy", "ca_trust")]
    names = [f"mon-1-services-apply-{s.replace('_', '-')}" for s in on_monitoring]
    for before, after in itertools.pairwise(names):
        assert before in example_plan.one(COMMAND, after).options["dependsOn"]


@pytest.mark.parametrize("host", ["mon-1-services", "gitea-agents"])
def test_secrets_travel_on_stdin_and_stay_secret(example_plan: engine.PlanResult, host: str) -> None:
    step = example_plan.one(COMMAND, f"{host}-stage-secrets")
    assert step.inputs["stdin"] == engine.SECRET
    assert {"stdin", "stdout", "stderr"} <= set(step.options["additionalSecretOutputs"])
    assert step.inputs["logging"] == "none"


@pytest.mark.parametrize("host", ["mon-1-services", "gitea-agents"])
def test_each_host_stages_its_files_with_one_resource_each(example_plan: engine.PlanResult, host: str) -> None:
    """Planning cost is per resource: a host's files and secrets are one staging step each."""
    children = [r for r in example_plan.resources if r.parent == host]
    staging = sorted(r.name for r in children if "-stage-" in r.name or "-secret-" in r.name)
    assert staging == [f"{host}-stage-files", f"{host}-stage-secrets"]
    assert [r for r in children if "CopyToRemote" in r.type] == []


def test_no_secret_value_in_the_recorded_plan(example_plan: engine.PlanResult) -> None:
    text = json.dumps([r.as_plan() for r in example_plan.resources]) + json.dumps(example_plan.outputs)
    values = [*distinct_secrets(stack_config.validate(load_sections())).values(), *generated_secret_values()]
    assert [v for v in values if v in text] == []


def test_a_config_change_retriggers_only_its_service(run_program: RunProgram) -> None:
    sections = load_sections()
    before = run_program(sections)
    sections["monitoring"]["scrape_interval"] = "30s"
    sections["monitoring"]["evaluation_interval"] = "30s"
    sections["alerting"]["thresholds"] = {
        "target_down_for": "2m",  # > scrape + 2 x evaluation (UpstreamDown fires first)
        "scrape_coverage_for": "5m",
        "probe_failed_for": "2m",
    }
    after = run_program(sections)

    def step(plan: engine.PlanResult, service: str) -> tuple[str, Any]:
        r = plan.one(COMMAND, f"mon-1-services-apply-{service}")
        return r.inputs["create"], r.inputs.get("triggers")

    (old_create, old_triggers), (new_create, new_triggers) = step(before, "prometheus"), step(after, "prometheus")
    # The change is an update of `create` whose diff names the file by path, not a replacement.
    assert old_triggers == new_triggers
    changed = set(new_create.splitlines()) - set(old_create.splitlines())
    assert any(line.startswith("# /etc/prometheus/prometheus.yml ") for line in changed), changed
    for unchanged in ("node-exporter", "blackbox", "loki", "grafana"):
        assert step(before, unchanged) == step(after, unchanged), unchanged


def test_a_rebuilt_guest_gets_its_agents_back(run_program: RunProgram, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agents' commands trigger on the host identity (SSH host keys): a new identity
    (a rebuilt guest) re-runs them; the monitoring host is not touched."""
    before = run_program()
    monkeypatch.setitem(engine.MOCK_CALLS, "command:local:run", lambda _: {"stdout": "rebuilt-host-keys"})
    after = run_program()
    for role in ("packages", "layout", "apply-node-exporter", "apply-alloy"):
        name = f"gitea-agents-{role}"
        assert triggers(before, name) != triggers(after, name), name
    assert triggers(before, "mon-1-services-apply-prometheus") == triggers(after, "mon-1-services-apply-prometheus")


def test_two_replicas_are_two_installed_hosts(run_program: RunProgram) -> None:
    plan = run_program(with_replicas(load_sections(), 2))
    hosts = {r.name for r in plan.find("obsstack:monitoring:MonitoringHost")}
    assert hosts == {"mon-1-services", "mon-2-services"}
    for host in hosts:
        plan.one(COMMAND, f"{host}-apply-alertmanager")
        plan.one(COMMAND, f"{host}-apply-prometheus")


def test_every_host_gets_a_certificate(example_plan: engine.PlanResult, example_inventory: Any) -> None:
    certs = {r.name for r in example_plan.find("tls:index/locallySignedCert:LocallySignedCert")}
    expected = {f"pki-{m.name}-cert" for m in example_inventory.monitoring}
    expected |= {f"pki-{a.name}-cert" for a in example_inventory.managed_hosts}
    assert certs == expected

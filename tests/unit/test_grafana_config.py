"""The Grafana component as recorded in the plan: provider, datasources, folders, dashboards,
contact points, mute timings and one notification policy."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import dashboards
from components.grafana.config import DATASOURCE_UIDS, FOLDERS
from tests.conftest import distinct_secrets, load_sections
from tests.unit.monitoring_helpers import with_replicas
from tools.plan import engine

DASHBOARD = "grafana:oss/dashboard:Dashboard"
DATASOURCE = "grafana:oss/dataSource:DataSource"
FOLDER = "grafana:oss/folder:Folder"
CONTACT_POINT = "grafana:alerting/contactPoint:ContactPoint"
POLICY = "grafana:alerting/notificationPolicy:NotificationPolicy"
MUTE_TIMING = "grafana:alerting/muteTiming:MuteTiming"
PROVIDER = "pulumi:providers:grafana"


def test_one_dashboard_per_committed_json(example_plan: engine.PlanResult) -> None:
    planned = {r.name.removeprefix("grafana-dashboard-"): r.inputs["configJson"] for r in example_plan.find(DASHBOARD)}
    committed = {name.removesuffix(".json"): text for name, text in dashboards.committed().items()}
    assert planned == committed


def test_dashboards_land_in_their_folders(example_plan: engine.PlanResult, example_config) -> None:
    for board in dashboards.render(example_config):
        resource = example_plan.one(DASHBOARD, f"grafana-dashboard-{board.name}")
        assert resource.inputs["folder"] == f"obs-{board.folder.lower()}"
        assert f"grafana-folder-{board.folder.lower()}" in resource.options["dependsOn"]


def test_the_five_folders(example_plan: engine.PlanResult) -> None:
    assert sorted(r.inputs["title"] for r in example_plan.find(FOLDER)) == sorted(FOLDERS)


def test_three_datasources_with_fixed_uids(example_plan: engine.PlanResult) -> None:
    found = {r.inputs["uid"]: r.inputs for r in example_plan.find(DATASOURCE)}
    assert sorted(found) == sorted(DATASOURCE_UIDS)
    assert {uid: d["type"] for uid, d in found.items()} == {u: u for u in DATASOURCE_UIDS}
    assert found["prometheus"]["isDefault"] is True


def test_prometheus_time_interval_is_the_scrape_interval(run_program, example_sections) -> None:
    example_sections["monitoring"]["scrape_interval"] = "30s"
    example_sections["monitoring"]["evaluation_interval"] = "30s"
    example_sections["monitoring"]["scrape_timeout"] = "10s"
    example_sections["alerting"]["thresholds"] = {
        "target_down_for": "2m",  # > scrape + 2 x evaluation (UpstreamDown fires first)
        "scrape_coverage_for": "5m",
        "probe_failed_for": "2m",
        "unregistered_guest_for": "1h",
        "filesystem_fill_horizon": "24h",
        "datastore_fill_horizon": "7d",
        "oncall_drill_every": "31d",
    }
    plan = run_program(example_sections)
    prometheus = plan.one(DATASOURCE, "grafana-datasource-prometheus")
    assert json.loads(prometheus.inputs["jsonDataEncoded"])["timeInterval"] == "30s"


def test_one_contact_point_per_receiver(example_plan: engine.PlanResult, example_config) -> None:
    points = {r.inputs["name"]: r.inputs for r in example_plan.find(CONTACT_POINT)}
    assert sorted(points) == sorted(r.name for r in example_config.alerting.receivers)
    assert points["slack-critical"]["slacks"][0]["recipient"] == "#alerts-critical"
    assert points["email-digest"]["emails"][0]["addresses"] == ["ops@lab.example.net"]


@pytest.mark.parametrize(
    ("receiver", "path"),
    [
        ("slack-critical", ("slacks", "url")),
        ("oncall-primary", ("webhooks", "authorizationCredentials")),
        ("deadman", ("webhooks", "authorizationCredentials")),
    ],
    ids=["slack-url", "oncall-token", "deadman-token"],
)
def test_contact_point_secrets_stay_secret(
    example_plan: engine.PlanResult, receiver: str, path: tuple[str, str]
) -> None:
    inputs = example_plan.one(CONTACT_POINT, f"grafana-contact-{receiver}").inputs
    assert inputs[path[0]][0][path[1]] == engine.SECRET


def test_no_secret_value_anywhere_in_the_grafana_resources(example_plan: engine.PlanResult, example_config) -> None:
    text = json.dumps([r.as_plan() for r in example_plan.resources if r.type.startswith(("grafana", PROVIDER))])
    for value in distinct_secrets(example_config).values():
        assert value not in text


def test_exactly_one_notification_policy_and_the_mute_timings(example_plan: engine.PlanResult, example_config) -> None:
    policy = example_plan.one(POLICY)
    assert policy.inputs["contactPoint"] == example_config.alerting.routing.warning.receivers[0]
    windows = example_plan.find(MUTE_TIMING)
    assert [w.inputs["name"] for w in windows] == [w.name for w in example_config.alerting.maintenance_windows]
    assert windows[0].inputs["intervals"] == [
        {"location": "Europe/Berlin", "times": [{"start": "04:00", "end": "06:00"}], "weekdays": ["sunday"]}
    ]
    # The policy names contact points and mute timings: it must wait for them.
    assert {f"grafana-contact-{r.name}" for r in example_config.alerting.receivers} <= set(policy.options["dependsOn"])
    assert "grafana-mute-sunday-patching" in policy.options["dependsOn"]


def test_provider_points_at_the_monitoring_host_with_secret_auth(example_plan: engine.PlanResult) -> None:
    provider = example_plan.one(PROVIDER)
    assert provider.inputs["url"] == "https://10.0.20.10:3000"
    assert provider.inputs["auth"] == engine.SECRET


def test_every_grafana_resource_is_a_child_of_the_component(example_plan: engine.PlanResult) -> None:
    grafana_resources = [r for r in example_plan.resources if r.type.startswith("grafana:")]
    assert grafana_resources and all(r.parent == "grafana" for r in grafana_resources)


def test_provider_waits_for_the_install(tmp_path: Path) -> None:
    """The provider depends on whatever installs Grafana, so no Grafana call races the install."""
    program = tmp_path / "__main__.py"
    program.write_text(
        textwrap.dedent(
            """
            import pulumi
            import dashboards
            from components import config as stack_config
            from components.grafana.config import Backend, GrafanaConfig, GrafanaConfigArgs

            config = stack_config.load()
            install = pulumi.CustomResource("test:index:Install", "grafana-install", {})
            backend = Backend("https://mon:9090")
            secrets = stack_config.load_secrets(config)
            GrafanaConfig(
                "grafana",
                GrafanaConfigArgs(
                    config, "https://mon:3000", secrets, backend, backend, backend,
                    install=[install], boards=dashboards.render(config),
                ),
            )
            """
        )
    )
    sections = load_sections()
    from components import config as stack_config

    secrets = distinct_secrets(stack_config.validate(sections))
    plan = engine.run("prod", sections, secrets, program=program)
    assert plan.one(PROVIDER).options["dependsOn"] == ["grafana-install"]
    assert plan.find(DASHBOARD) and all(r.parent == "grafana" for r in plan.find(DASHBOARD))


def test_plan_json_holds_the_grafana_resources(tmp_path: Path, example_plan: engine.PlanResult, example_config) -> None:
    """What `make plan` writes: one Dashboard per dashboards/*.json, three datasources, the
    folders, a contact point per receiver and exactly one notification policy."""
    from tools.plan.__main__ import write_plan

    write_plan(tmp_path, "prod", example_config, example_plan)
    plan = json.loads((tmp_path / "plan.json").read_text())
    counts: dict[str, int] = {}
    for resource in plan["resources"]:
        counts[resource["type"]] = counts.get(resource["type"], 0) + 1
    assert counts[DASHBOARD] == len(dashboards.committed())
    assert counts[DATASOURCE] == 3
    assert counts[FOLDER] == len(FOLDERS)
    assert counts[CONTACT_POINT] == len(example_config.alerting.receivers)
    assert counts[POLICY] == 1


def test_prometheus_and_alertmanager_datasources_use_https_and_the_api_user(example_plan: engine.PlanResult) -> None:
    for uid, port in (("prometheus", 9090), ("alertmanager", 9093)):
        inputs = example_plan.one(DATASOURCE, f"grafana-datasource-{uid}").inputs
        assert inputs["url"] == f"https://10.0.20.10:{port}"
        assert inputs["basicAuthEnabled"] is True
        assert inputs["basicAuthUsername"] == "obsstack"
        assert inputs["secureJsonDataEncoded"] == engine.SECRET  # password and CA, never in clear
        assert json.loads(inputs["jsonDataEncoded"])["tlsAuthWithCACert"] is True


def test_loki_datasource_uses_mutual_tls(example_plan: engine.PlanResult) -> None:
    inputs = example_plan.one(DATASOURCE, "grafana-datasource-loki").inputs
    assert inputs["url"] == "https://10.0.20.10:3100"
    assert inputs["basicAuthEnabled"] is False
    json_data = json.loads(inputs["jsonDataEncoded"])
    assert json_data["tlsAuth"] is True and json_data["tlsAuthWithCACert"] is True
    assert inputs["secureJsonDataEncoded"] == engine.SECRET


def test_provider_trusts_the_internal_ca_and_waits_for_the_host(example_plan: engine.PlanResult) -> None:
    provider = example_plan.one(PROVIDER)
    assert "BEGIN CERTIFICATE" in provider.inputs["caCert"]
    host_children = {r.name for r in example_plan.resources if r.parent and r.parent.endswith("-services")}
    assert host_children, "the monitoring host declares its install steps"
    assert set(provider.options["dependsOn"]) & host_children


def test_every_grafana_of_a_pair_shows_the_same_dashboards_and_only_the_primary_notifies(run_program) -> None:
    """HA: both Grafanas get the datasources and dashboards (each reading its own host's backends),
    contact points and the policy only the primary (a Grafana-managed alert notifies once)."""
    plan = run_program(with_replicas(load_sections(), 2))
    configs = {r.name for r in plan.find("obsstack:grafana:GrafanaConfig")}
    assert configs == {"grafana", "grafana-mon-2"}

    def of(parent: str, type_: str) -> list:
        return [r for r in plan.find(type_) if r.parent == parent]

    for kind in (DASHBOARD, "grafana:oss/dataSource:DataSource", "grafana:oss/folder:Folder"):
        primary = sorted(r.inputs.get("uid") or r.inputs.get("title") or "" for r in of("grafana", kind))
        secondary = sorted(r.inputs.get("uid") or r.inputs.get("title") or "" for r in of("grafana-mon-2", kind))
        assert primary and primary == secondary, kind
    contact = "grafana:alerting/contactPoint:ContactPoint"
    assert of("grafana", contact) and not of("grafana-mon-2", contact)
    assert not of("grafana-mon-2", "grafana:alerting/notificationPolicy:NotificationPolicy")
    providers = {r.name: r.inputs["url"] for r in plan.find("pulumi:providers:grafana")}
    assert len(set(providers.values())) == 2, providers  # each Grafana its own host

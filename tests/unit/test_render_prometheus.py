"""prometheus.yml and alertmanager.yml as shipped: valid for promtool/amtool in the plan tree,
every managed asset scraped with its labels, every Alertmanager peer listed, no secret leaked."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components import render as stack_render
from components.render import prometheus, rules
from components.render.alerting_timers import ACK_METRIC_RELABEL_CONFIGS
from tests.unit.monitoring_helpers import generated_secret_values, with_replicas, write_plan
from tools.alert_quality.notify import relabel

REPLICAS = [1, 2]


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required (apt-get install prometheus prometheus-alertmanager)"
    return path


@pytest.fixture(scope="module", params=REPLICAS, ids=lambda r: f"replicas-{r}")
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import load_sections

    sections = with_replicas(load_sections(), request.param)
    out = tmp_path_factory.mktemp("plan") / "plan"
    secrets = write_plan(sections, out)
    config = stack_config.validate(sections)
    return {"out": out, "secrets": secrets, "config": config, "inventory": stack_inventory.build(config)}


def prometheus_configs(out: Path) -> list[Path]:
    found = sorted(out.glob("hosts/*/etc/prometheus/prometheus.yml"))
    assert found, "no prometheus.yml in the plan"
    return found


def test_promtool_accepts_every_prometheus_yml_in_the_plan_tree(planned: dict[str, Any]) -> None:
    for path in prometheus_configs(planned["out"]):
        result = subprocess.run(
            [tool("promtool"), "check", "config", "prometheus.yml"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


def test_amtool_accepts_every_alertmanager_yml(planned: dict[str, Any]) -> None:
    found = sorted(planned["out"].glob("hosts/*/etc/prometheus/alertmanager.yml"))
    assert len(found) == len(planned["inventory"].monitoring)
    for path in found:
        result = subprocess.run(
            [tool("amtool"), "check-config", path.name], cwd=path.parent, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


def test_every_managed_asset_is_a_labelled_scrape_target(planned: dict[str, Any]) -> None:
    config = planned["config"]
    for path in prometheus_configs(planned["out"]):
        document = yaml.safe_load(path.read_text())
        labelled = {
            group["labels"]["asset"]: group["labels"]
            for job in document["scrape_configs"]
            for group in job["static_configs"]
        }
        node_targets = {
            group["labels"]["asset"]: group["targets"][0]
            for job in document["scrape_configs"]
            if job["job_name"] == "node"
            for group in job["static_configs"]
        }
        for asset in config.assets:
            assert asset.name in labelled, f"{asset.name} is not scraped by {path}"
            assert labelled[asset.name]["service"] == asset.service
            assert labelled[asset.name]["tier"] == asset.tier
            if asset.is_host and asset.managed:
                assert node_targets[asset.name] == f"{asset.address}:{config.monitoring.ports.node_exporter}"
        for job in document["scrape_configs"]:
            for group in job["static_configs"]:
                assert {"asset", "service", "tier"} <= set(group["labels"]), f"{job['job_name']}: {group}"


def test_every_alertmanager_peer_is_in_every_prometheus_config(planned: dict[str, Any]) -> None:
    port = planned["config"].monitoring.ports.alertmanager
    peers = {f"{m.ip}:{port}" for m in planned["inventory"].monitoring}
    replicas = set()
    for path in prometheus_configs(planned["out"]):
        document = yaml.safe_load(path.read_text())
        listed = {t for am in document["alerting"]["alertmanagers"] for g in am["static_configs"] for t in g["targets"]}
        assert listed == peers, path
        labels = document["global"]["external_labels"]
        assert labels["cluster"] == planned["config"].cluster
        replicas.add(labels["replica"])
    assert len(replicas) == len(planned["inventory"].monitoring), "replicas need distinct replica labels"


def test_alertmanagers_gossip_with_every_other_host(planned: dict[str, Any]) -> None:
    monitoring = planned["inventory"].monitoring
    cluster_port = planned["config"].monitoring.ports.alertmanager_cluster
    for node in monitoring:
        args = (planned["out"] / "hosts" / node.name / "etc/default/prometheus-alertmanager").read_text()
        peers = {m.ip for m in monitoring if m.name != node.name}
        for peer in peers:
            assert f"--cluster.peer={peer}:{cluster_port}" in args
        if not peers:
            assert "--cluster.listen-address= " in args or "--cluster.listen-address='" in args


def test_no_secret_value_under_the_plan_dir(planned: dict[str, Any]) -> None:
    values = [*planned["secrets"].values(), *generated_secret_values()]
    for path in planned["out"].rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            leaked = [v for v in values if v in text]
            assert not leaked, f"{path} contains secret values {leaked}"


def test_rule_files_are_relative_and_shipped(
    example_config: stack_config.StackConfig,
    example_inventory: stack_inventory.Inventory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stack_render, "_RENDERED", [])  # renders are cached by equal inputs
    monkeypatch.setitem(rules.GENERATED, "selftest", lambda config, inventory: "groups: []\n")
    document = yaml.safe_load(prometheus.render(example_config, example_inventory))
    assert "rules/selftest.yml" in document["rule_files"]
    shipped = {f.path for f in prometheus.files(example_config, example_inventory)}
    for relative in document["rule_files"]:
        assert not relative.startswith("/")
        assert f"/etc/prometheus/{relative}" in shipped


@pytest.mark.parametrize("with_password", [True, False], ids=["basic-auth", "anonymous"])
def test_remote_write_reads_its_password_from_a_file(example_sections: dict[str, Any], with_password: bool) -> None:
    target: dict[str, Any] = {"url": "https://mimir.lab.example.net/api/v1/push"}
    if with_password:
        target |= {"username": "homelab", "password_secret": "mimirPassword"}
    example_sections["monitoring"]["remote_write"] = [target]
    config = stack_config.validate(example_sections)
    document = yaml.safe_load(prometheus.render(config, stack_inventory.build(config)))
    [remote] = document["remote_write"]
    assert remote["url"] == target["url"]
    if with_password:
        assert remote["basic_auth"] == {"username": "homelab", "password_file": "secrets/remote_write_0_password"}
    else:
        assert "basic_auth" not in remote


def test_probe_jobs_go_through_the_local_blackbox(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    document = yaml.safe_load(prometheus.render(example_config, example_inventory))
    node = example_inventory.monitoring[0]
    for job in document["scrape_configs"]:
        if job["job_name"].startswith("blackbox_"):
            assert job["params"]["module"] == [job["job_name"].removeprefix("blackbox_")]
            assert job["relabel_configs"][-1]["replacement"] == f"{node.ip}:{example_config.monitoring.ports.blackbox}"


def test_node_job_restores_the_ack_series_labels(example_config, example_inventory) -> None:
    """CriticalAlertUnacknowledged joins on the alert's job/instance, which the textfile carries."""
    doc = yaml.safe_load(prometheus.render(example_config, example_inventory))
    node = next(j for j in doc["scrape_configs"] if j["job_name"] == "node")
    assert node["metric_relabel_configs"] == list(ACK_METRIC_RELABEL_CONFIGS)
    others = [j for j in doc["scrape_configs"] if j["job_name"] not in ("node", "pushgateway")]
    assert all("metric_relabel_configs" not in j for j in others)


def test_pushgateway_job_keeps_only_what_writers_may_push(example_config, example_inventory) -> None:
    """Exact keep-list (tests/e2e/test_pushgateway_forgery.py proves it against a forged push)."""
    doc = yaml.safe_load(prometheus.render(example_config, example_inventory))
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "pushgateway")
    assert job["scheme"] == "https" and job["basic_auth"]["username"] == "scrape"
    (keep,) = job["metric_relabel_configs"]
    assert keep["action"] == "keep" and keep["source_labels"] == ["job", "__name__"]
    pattern = re.compile(f"^(?:{keep['regex']})$")
    for accepted in ("obs_restore_drill;obs_restore_drill_last_status", "obs_restore_drill;push_time_seconds",
                     "pushgateway;go_goroutines"):  # fmt: skip
        assert pattern.match(accepted), accepted
    for refused in ("obs_vzdump;obs_backup_last_success_timestamp_seconds",
                    "obs_restore_drill;obs_backup_last_success_timestamp_seconds",
                    "pushgateway;obs_backup_last_status", "obs_restore_drill;up"):  # fmt: skip
        assert not pattern.match(refused), refused


def _relabelled(labels: dict[str, str], configs: list[dict[str, Any]]) -> dict[str, str]:
    """Prometheus' alert relabeling as the alert-quality replay applies it (replace, labeldrop)."""
    return relabel(labels, configs)


def test_replicas_send_identical_alerts_but_keep_replica_on_series(planned: dict[str, Any]) -> None:
    """Each host's alerts lose `replica` (so Alertmanager dedups both replicas' copies into one
    page), its series keep it (external_labels, remote_write), and promtool accepts the result."""
    sent = []
    for path in prometheus_configs(planned["out"]):
        document = yaml.safe_load(path.read_text())
        relabel = document["alerting"].get("alert_relabel_configs", [])
        assert {"action": "labeldrop", "regex": "replica"} in relabel, path
        external = document["global"]["external_labels"]
        assert external["replica"] and external["cluster"] == planned["config"].cluster
        assert all("write_relabel_configs" not in rw for rw in document.get("remote_write", []))
        # Prometheus adds the external labels to an alert, then runs alert_relabel_configs.
        sent.append(_relabelled({"alertname": "TargetDown", "instance": "10.0.10.11:9100", **external}, relabel))
        result = subprocess.run(
            [tool("promtool"), "check", "config", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"
    assert len(sent) == len(planned["inventory"].monitoring)
    assert all(labels == sent[0] for labels in sent), sent
    assert "replica" not in sent[0] and sent[0]["cluster"] == planned["config"].cluster

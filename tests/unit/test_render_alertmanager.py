"""alertmanager.yml: valid for the installed Alertmanager, routes the shared table, no secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alertmanager
from tests.conftest import distinct_secrets

CASES = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "routing_cases.yaml").read_text())


def amtool() -> str:
    path = shutil.which("amtool")
    assert path, "amtool not found: apt-get install prometheus-alertmanager"
    return path


@pytest.fixture
def rendered(example_config, example_inventory, tmp_path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(alertmanager.render(example_config, example_inventory))
    return path


def test_installed_alertmanager_accepts_it(rendered) -> None:
    result = subprocess.run([amtool(), "check-config", str(rendered)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_routing_table_with_amtool(rendered, case) -> None:
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    result = subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={rendered}", *labels],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(",") == case["receivers"]


def _files_referenced(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {v for k, v in node.items() if k.endswith("_file") and isinstance(v, str)}
        return found.union(*(_files_referenced(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_files_referenced(v) for v in node))
    return set()


def test_every_referenced_secret_file_is_shipped(example_config, example_inventory) -> None:
    referenced = _files_referenced(alertmanager.document(example_config))
    shipped = {f.path for f in alertmanager.secret_files(example_config, example_inventory)}
    assert referenced and referenced == shipped
    assert all(f.mode == "0600" for f in alertmanager.secret_files(example_config, example_inventory))


def test_no_secret_value_in_rendered_file(example_config, rendered) -> None:
    text = rendered.read_text()
    for value in distinct_secrets(example_config).values():
        assert value not in text
    assert "hooks.slack.com" not in text


def test_critical_routes_are_never_muted(example_config) -> None:
    routes = alertmanager.document(example_config)["route"]["routes"]
    critical = [r for r in routes if 'severity="critical"' in r.get("matchers", [])]
    warning = [r for r in routes if 'severity="warning"' in r.get("matchers", [])]
    assert critical and not any("mute_time_intervals" in r for r in critical)
    assert warning and all(r["mute_time_intervals"] == ["sunday-patching"] for r in warning)


def test_maintenance_window_scoped_to_a_service(example_sections, tmp_path) -> None:
    example_sections["alerting"]["maintenance_windows"].append(
        {"name": "nas-firmware", "weekdays": ["saturday"], "services": ["storage"]}
    )
    config = stack_config.validate(example_sections)
    routes = alertmanager.document(config)["route"]["routes"]
    storage = [r for r in routes if 'service="storage"' in r.get("matchers", [])]
    assert {tuple(r["mute_time_intervals"]) for r in storage} == {("sunday-patching", "nas-firmware")}
    others = [r for r in routes if r.get("matchers") == ['severity="warning"']]
    assert others[0]["mute_time_intervals"] == ["sunday-patching"]
    path = tmp_path / "am.yml"
    path.write_text(alertmanager.dump(alertmanager.document(config)))
    assert subprocess.run([amtool(), "check-config", str(path)], capture_output=True, check=False).returncode == 0


def test_watchdog_repeats_every_minute(example_config) -> None:
    routes = alertmanager.document(example_config)["route"]["routes"]
    watchdog = next(r for r in routes if r.get("matchers") == ['alertname="Watchdog"'])
    assert (watchdog["receiver"], watchdog["repeat_interval"]) == ("deadman", "1m")


@pytest.mark.parametrize(
    ("version", "accepted"), [("0.25.0+ds-2+b5", False), ("0.26.0", True), ("0.28.1", True)], ids=str
)
def test_webhook_url_secret_needs_url_file_support(example_sections, version, accepted) -> None:
    example_sections["monitoring"]["versions"] = {"alertmanager": version}
    receivers = example_sections["alerting"]["receivers"]
    receivers[0] = {"name": "oncall-primary", "type": "webhook", "url_secret": "oncallWebhookUrl"}
    if not accepted:
        with pytest.raises(stack_config.ConfigError, match=r"receivers\[0\]\.url_secret: .*url_file needs 0\.26"):
            stack_config.validate(example_sections)
        return
    config = stack_config.validate(example_sections)
    webhook = alertmanager.document(config)["receivers"][0]["webhook_configs"][0]
    assert webhook == {
        "send_resolved": True,
        "max_alerts": 0,
        "url_file": alertmanager.secret_path("oncall-primary", "url"),
    }
    inventory = stack_inventory.build(config)
    assert "oncallWebhookUrl" in {f.source for f in alertmanager.secret_files(config, inventory)}


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ({"name": "x", "type": "webhook"}, "exactly one of `url:` and `url_secret:`"),
        ({"name": "x", "type": "ntfy", "url": "https://ntfy.sh/a", "url_secret": "k"}, "exactly one of"),
        ({"name": "x", "type": "slack", "channel": "#a", "url": "https://h/"}, "needs `url_secret"),
        ({"name": "x", "type": "email", "to": ["a@b.c"], "credentials_secret": "k"}, "only webhook and ntfy"),
    ],
    ids=["webhook-without-url", "ntfy-both", "slack-plain-url", "email-credentials"],
)
def test_receiver_errors_name_the_fix(example_sections, receiver, message) -> None:
    example_sections["alerting"]["receivers"].append(receiver)
    with pytest.raises(stack_config.ConfigError, match=rf"receivers\[7\]\.\w+: .*{message}"):
        stack_config.validate(example_sections)


def test_pagerduty_and_ntfy_options_render_valid(example_sections, tmp_path) -> None:
    example_sections["alerting"]["receivers"] += [
        {"name": "pagerduty", "type": "pagerduty", "routing_key_secret": "pagerdutyKey"},
        {"name": "ntfy", "type": "ntfy", "url": "https://ntfy.sh/homelab-alerts", "credentials_secret": "ntfyToken"},
    ]
    example_sections["alerting"]["routing"]["critical"]["receivers"] = ["pagerduty", "ntfy", "slack-critical"]
    config = stack_config.validate(example_sections)
    path = tmp_path / "am.yml"
    path.write_text(alertmanager.dump(alertmanager.document(config)))
    assert subprocess.run([amtool(), "check-config", str(path)], capture_output=True, check=False).returncode == 0
    result = subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={path}", "severity=critical", "service=git"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "pagerduty,ntfy,slack-critical"
    assert "routing_key_file" in path.read_text()


def test_escalation_pages_once_per_ignored_alert(example_config) -> None:
    """CriticalAlertUnacknowledged carries the ignored alert's name in `unacknowledged_alert`."""
    routes = alertmanager.document(example_config)["route"]["routes"]
    escalation = next(r for r in routes if r.get("matchers") == ['escalation="unacknowledged"'])
    assert escalation["receiver"] == "oncall-secondary"
    assert {"unacknowledged_alert", "instance"} <= set(escalation["group_by"])

"""Semantic checks: values each valid alone that cannot work together. One parametrized case per
rule; the message names the field and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alerting_timers
from tests.conftest import load_sections

Edit = Callable[[dict[str, Any]], None]


def _silence_policy(s: dict[str, Any]) -> dict[str, Any]:
    return s["alerting"].setdefault("silence_policy", {})


def _critical(s: dict[str, Any]) -> dict[str, Any]:
    return s["alerting"].setdefault("routing", {}).setdefault("critical", {"receivers": ["oncall-primary"]})


def _datastore(s: dict[str, Any], i: int) -> dict[str, Any]:
    return s["pbs"]["datastores"][i]


def _exclude_gitea(s: dict[str, Any]) -> None:
    s["backups"]["selection"] = "all_except"
    s["backups"]["exclude"] = ["gitea"]


def _ports(s: dict[str, Any]) -> dict[str, Any]:
    return s["monitoring"].setdefault("ports", {})


def _images_off(s: dict[str, Any]) -> None:
    s["proxmox"]["durable_storages"][0]["content"] = ["backup"]


LOAD_CASES: list[tuple[str, Edit, str, str]] = [
    (
        "maintenance-location-too-long",  # found by tools/fuzz_config: zoneinfo raised OSError
        lambda s: s["alerting"]["maintenance_windows"][0].__setitem__("location", "y" * 300),
        "alerting.maintenance_windows[0]",
        "is not a time zone",
    ),
    (
        "pbs-storage-id-already-exists",
        lambda s: s["pbs"].__setitem__("storage_id", "ceph-vm"),
        "pbs.storage_id",
        "already a storage of the cluster",
    ),
    (
        "durable-share-named-like-an-existing-storage",
        lambda s: s["proxmox"]["durable_storages"][0].__setitem__("name", "local"),
        "proxmox.durable_storages[0].name",
        "already a storage of the cluster",
    ),
    (
        "durable-share-named-like-the-pbs-storage",
        lambda s: s["proxmox"]["durable_storages"][0].__setitem__("name", "pbs-main"),
        "proxmox.durable_storages[0].name",
        "each created storage needs its own id",
    ),
    (
        "vm-disk-on-pbs-storage",
        lambda s: s["monitoring"]["vm"].__setitem__("storage", "pbs-main"),
        "monitoring.vm.storage",
        "PBS storage entry, which holds backups only",
    ),
    (
        "data-disk-on-pbs-storage",
        lambda s: s["monitoring"]["vm"].__setitem__("data_storage", "pbs-main"),
        "monitoring.vm.data_storage",
        "PBS storage entry, which holds backups only",
    ),
    (
        "drill-scratch-on-pbs-storage",
        lambda s: s["backups"].setdefault("drill", {}).__setitem__("scratch_storage", "pbs-main"),
        "backups.drill.scratch_storage",
        "PBS storage entry, which holds backups only",
    ),
    (
        "snippets-on-pbs-storage",
        lambda s: s["proxmox"].__setitem__("snippets_storage", "pbs-main"),
        "proxmox.snippets_storage",
        "PBS storage entry, which holds backups only",
    ),
    ("data-storage-without-images", _images_off, "monitoring.vm.data_storage", "add images to its content"),
    (
        "two-datastores-one-path",
        lambda s: _datastore(s, 1).update(path="/mnt/datastore/main", mounted_at=None),
        "pbs.datastores[1].path",
        "give each datastore its own directory",
    ),
    (
        "datastore-inside-another",
        lambda s: _datastore(s, 1).update(path="/mnt/datastore/main/copy", mounted_at=None),
        "pbs.datastores[1].path",
        "overlaps datastore 'main'",
    ),
    (
        "datastore-syncs-to-itself",
        lambda s: _datastore(s, 0).__setitem__("sync", {"remote_store": "main"}),
        "pbs.datastores[0].sync.remote_store",
        "would sync from itself",
    ),
    ("drill-target-excluded", _exclude_gitea, "inventory.assets[", "there is no backup to restore"),
    (
        "two-daemons-one-port",
        lambda s: _ports(s).__setitem__("grafana", 9090),
        "monitoring.ports.prometheus",
        "two daemons cannot listen on one port",
    ),
    (
        "rpo-1h-nightly-job",
        lambda s: s["backups"].__setitem__("rpo", "1h"),
        "backups.rpo",
        "leaves up to 24h between runs",
    ),
    (
        "weekly-job-24h-rpo",
        lambda s: s["backups"].__setitem__("schedule", "sun 02:00"),
        "backups.rpo",
        "leaves up to 168h between runs",
    ),
    (
        "drill-rpo-1s",
        lambda s: next(a for a in s["inventory"]["assets"] if a["name"] == "gitea")["drill"].__setitem__("rpo", "1s"),
        ".drill.rpo",
        "may be 24h old",
    ),
    (
        "one-off-backup-schedule",
        lambda s: s["backups"].__setitem__("schedule", "2030-01-01 02:00"),
        "backups.schedule",
        "give a recurring event",
    ),
    (
        "retention-shorter-than-report",
        lambda s: s["monitoring"].__setitem__("retention", "15d"),
        "monitoring.retention",
        "keep at least 30d",
    ),
    (
        "group-by-not-a-label",  # found by tools/fuzz_config: amtool refused the rendered file
        lambda s: _critical(s).__setitem__("group_by", ["alertname", "service x"]),
        "alerting.routing.critical.group_by",
        "is not a label name",
    ),
    (
        "group-by-wildcard-and-labels",
        lambda s: _critical(s).__setitem__("group_by", ["...", "service"]),
        "alerting.routing.critical.group_by",
        "stands alone",
    ),
    (
        "group-by-twice",
        lambda s: _critical(s).__setitem__("group_by", ["service", "service"]),
        "alerting.routing.critical.group_by",
        "lists a label twice",
    ),
    (
        "by-service-without-receivers",
        lambda s: _critical(s).__setitem__("by_service", {"git": []}),
        "alerting.routing.critical.by_service",
        "has no receivers",
    ),
    (
        "protected-alerts-empty",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", []),
        "alerting.silence_policy.protected_alerts",
        "must include Watchdog",
    ),
    (
        "protected-alerts-without-watchdog",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", ["TargetDown"]),
        "alerting.silence_policy.protected_alerts",
        "must include Watchdog",
    ),
    (
        "protected-alert-not-a-name",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", ["Watchdog", "Target Down"]),
        "alerting.silence_policy.protected_alerts",
        "is not an alert name",
    ),
    (
        "protected-alert-twice",
        lambda s: _silence_policy(s).__setitem__("protected_alerts", ["Watchdog", "Watchdog"]),
        "alerting.silence_policy.protected_alerts",
        "list each protected alert once",
    ),
]


@pytest.mark.parametrize(("edit", "path", "fragment"), [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_refused_at_load(edit: Edit, path: str, fragment: str) -> None:
    sections = load_sections()
    edit(sections)
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.validate(sections)
    message = str(caught.value)
    assert path in message and fragment in message, message


def test_a_misspelt_protected_alert_is_refused_with_the_rule_it_meant() -> None:
    """Only the rendered rules know the alert names: the policy document refuses an unknown one."""
    sections = load_sections()
    _silence_policy(sections)["protected_alerts"] = ["Watchdog", "SilencePolicyViolaton"]
    config = stack_config.validate(sections)
    with pytest.raises(stack_config.ConfigError) as caught:
        alerting_timers.policy_document(config, stack_inventory.build(config))
    message = str(caught.value)
    assert "obsstack:alerting.silence_policy.protected_alerts[1]" in message
    assert "did you mean 'SilencePolicyViolation'?" in message


@pytest.mark.parametrize(
    "value",
    ["https://hooks.slack.com/services/T000/B000/tok3nSECRETvalue123", "xoxb-1234-tok3n-SECRET"],
    ids=["slack-webhook-url", "slack-token"],
)
def test_a_rejected_url_secret_value_is_never_echoed(value: str) -> None:
    sections = load_sections()
    receiver = sections["alerting"]["receivers"][0]
    sections["alerting"]["receivers"][0] = {"name": receiver["name"], "type": "slack", "url_secret": value}
    with pytest.raises(stack_config.ConfigError) as caught:
        stack_config.validate(sections)
    message = str(caught.value)
    assert "receivers[0].url_secret: is not a config key name" in message
    assert "tok3n" not in message and "hooks.slack.com" not in message

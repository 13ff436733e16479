"""StackConfig validation: good configs load; bad ones give ONE message naming every problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from components import config as stack_config

Mutation = Callable[[dict[str, Any]], None]


def asset(sections: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in sections["inventory"]["assets"] if a["name"] == name)


def test_example_stack_is_valid(example_config: stack_config.StackConfig) -> None:
    assert example_config.cluster == "homelab"
    assert len(example_config.pve_nodes()) == 3
    assert example_config.pbs_host().name == "pbs1"


def test_config_is_frozen(example_config: stack_config.StackConfig) -> None:
    with pytest.raises(Exception, match="frozen"):
        example_config.cluster = "other"  # type: ignore[misc]


GOOD: list[tuple[str, Mutation]] = [
    (
        "two-replicas",
        lambda s: s["monitoring"].update(
            replicas=2,
            hosts=[
                *s["monitoring"]["hosts"],
                {"name": "mon-2", "vmid": 201, "node": "pve3", "address": "10.0.20.11/24"},
            ],
        ),
    ),
    ("all-guests-except", lambda s: s["backups"].update(selection="all_except", exclude=["scratch-dev"])),
    ("keep-last-instead-of-daily", lambda s: s["backups"].update(retention={"keep_last": 45})),
    ("slower-evaluation", lambda s: s["monitoring"].update(evaluation_interval="30s")),
    (
        "pagerduty-receiver",
        lambda s: s["alerting"]["receivers"].append(
            {"name": "pd", "type": "pagerduty", "routing_key_secret": "pagerdutyKey"}
        ),
    ),
    ("minimal-defaults", lambda s: [s.pop(k) for k in ("grafana", "loki")]),
]


@pytest.mark.parametrize(("case", "mutate"), GOOD, ids=[c for c, _ in GOOD])
def test_good_configs(example_sections: dict[str, Any], case: str, mutate: Mutation) -> None:
    mutate(example_sections)
    stack_config.validate(example_sections)


BAD: list[tuple[str, Mutation, str, str]] = [
    (
        "typo-in-asset-key",
        lambda s: asset(s, "gitea").update(servcie="git"),
        "obsstack:inventory.assets[5].servcie",
        "did you mean 'service'",
    ),
    (
        "duplicate-vmid",
        lambda s: asset(s, "nextcloud").update(vmid=110),
        "obsstack:inventory.assets[6].vmid",
        "duplicate vmid 110",
    ),
    (
        "duplicate-address",
        lambda s: asset(s, "postgres").update(address="10.0.10.120"),
        "obsstack:inventory.assets[7].address",
        "duplicate address",
    ),
    (
        "duplicate-name",
        lambda s: asset(s, "mqtt").update(name="jellyfin"),
        "obsstack:inventory.assets[10].name",
        "duplicate name 'jellyfin'",
    ),
    (
        "unknown-node",
        lambda s: asset(s, "gitea").update(node="pve9"),
        "obsstack:inventory.assets[5].node",
        "unknown PVE node 'pve9'",
    ),
    (
        "unknown-receiver",
        lambda s: s["alerting"]["routing"]["warning"].update(receivers=["slack-opz"]),
        "obsstack:alerting.routing.warning.receivers[0]",
        "did you mean 'slack-ops'",
    ),
    (
        "unknown-service-route",
        lambda s: s["alerting"]["routing"]["warning"]["by_service"].update(gamez=["slack-ops"]),
        "obsstack:alerting.routing.warning.by_service.gamez",
        "no asset has service 'gamez'",
    ),
    (
        "unknown-storage",
        lambda s: s["monitoring"]["vm"].update(storage="fast-ssd"),
        "obsstack:monitoring.vm.storage",
        "unknown storage 'fast-ssd'",
    ),
    (
        "unknown-datastore",
        lambda s: s["pbs"].update(datastore="nope"),
        "obsstack:pbs.datastore",
        "unknown datastore 'nope'",
    ),
    ("pbs-host-not-pbs", lambda s: s["pbs"].update(host="gitea"), "obsstack:pbs.host", "kind pbs_host"),
    (
        "retention-too-short",
        lambda s: s["backups"].update(retention={"keep_daily": 7}),
        "obsstack:backups.retention.keep_daily",
        "set keep_daily: 30",
    ),
    (
        "pbs-prune-too-short",
        lambda s: s["pbs"]["datastores"][0].update(prune={"keep_daily": 14}),
        "obsstack:pbs.datastores[0].prune.keep_daily",
        "fewer than backups.retention_days",
    ),
    (
        "evaluation-faster-than-scrape",
        lambda s: s["monitoring"].update(evaluation_interval="5s"),
        "obsstack:monitoring.evaluation_interval",
        "set it >= scrape_interval",
    ),
    (
        "for-not-multiple-of-eval",
        lambda s: s["alerting"].update(thresholds={"target_down_for": "50s"}),
        "obsstack:alerting.thresholds.target_down_for",
        "not a multiple of evaluation_interval",
    ),
    (
        "bad-duration",
        lambda s: s["monitoring"].update(scrape_interval="fast"),
        "obsstack:monitoring.scrape_interval",
        "is not a duration",
    ),
    ("replicas-mismatch", lambda s: s["monitoring"].update(replicas=2), "obsstack:monitoring.hosts", "list exactly 2"),
    (
        "scratch-range-clash",
        lambda s: s["backups"]["drill"].update(scratch_vmid_range=[100, 200]),
        "obsstack:backups.drill.scratch_vmid_range",
        "overlaps VMIDs in use",
    ),
    (
        "drill-on-a-service",
        lambda s: asset(s, "nas").update(drill={"canary_paths": ["/etc"]}),
        "obsstack:inventory.assets[12].drill",
        "restore guests (vm or lxc) only",
    ),
    (
        "guest-without-vmid",
        lambda s: asset(s, "gitea").pop("vmid"),
        "obsstack:inventory.assets[5].vmid",
        "needs its VMID",
    ),
    (
        "unknown-section",
        lambda s: s.update(grafnaa={"admin_user": "x"}),
        "obsstack:grafnaa",
        "did you mean 'obsstack:grafana'",
    ),
    (
        "slack-without-channel",
        lambda s: s["alerting"]["receivers"][2].pop("channel"),
        "obsstack:alerting.receivers[2].channel",
        "needs `channel",
    ),
    ("wrong-type", lambda s: s["monitoring"].update(replicas="two"), "obsstack:monitoring.replicas", "valid integer"),
    (
        "all-except-needs-explicit-exclude",
        lambda s: s["backups"].update(selection="all_except"),
        "obsstack:inventory.assets[11].backup",
        "add 'scratch-dev' to backups.exclude",
    ),
    (
        "data-disk-too-small",
        lambda s: s["monitoring"]["vm"].update(data_disk_gb=200),
        "obsstack:monitoring.vm.data_disk_gb",
        "set it to 340 or more",
    ),
    (
        "window-ends-before-it-starts",
        lambda s: s["alerting"]["maintenance_windows"][0].update(times=[{"start_time": "06:00", "end_time": "04:00"}]),
        "obsstack:alerting.maintenance_windows[0].times[0]",
        "must be after start_time",
    ),
    (
        "window-bad-weekday",
        lambda s: s["alerting"]["maintenance_windows"][0].update(weekdays=["sundy"]),
        "obsstack:alerting.maintenance_windows[0].weekdays[0]",
        "should match pattern",
    ),
    (
        "window-bad-location",
        lambda s: s["alerting"]["maintenance_windows"][0].update(location="Mars/Olympus"),
        "obsstack:alerting.maintenance_windows[0]",
        "is not a time zone",
    ),
    (
        "window-unknown-service",
        lambda s: s["alerting"]["maintenance_windows"][0].update(services=["gamez"]),
        "obsstack:alerting.maintenance_windows[0].services[0]",
        "would mute nothing",
    ),
    (
        "window-duplicate-name",
        lambda s: s["alerting"]["maintenance_windows"].append(dict(s["alerting"]["maintenance_windows"][0])),
        "obsstack:alerting.maintenance_windows[1].name",
        "duplicate maintenance window",
    ),
    (
        "datastore-path-unsafe",
        lambda s: s["pbs"]["datastores"][0].update(path="/mnt/$(reboot)"),
        "obsstack:pbs.datastores[0].path",
        "should match pattern",
    ),
    (
        "remote-write-half-auth",
        lambda s: s["monitoring"].update(remote_write=[{"url": "https://mimir.lab:9009/api/v1/push", "username": "x"}]),
        "obsstack:monitoring.remote_write[0]",
        "needs both `username` and `password_secret`",
    ),
    (
        "drill-too-rare",
        lambda s: s["backups"]["drill"].update(every="30d"),
        "obsstack:backups.drill.every",
        "at most 14d",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "path", "fix"), BAD, ids=[c[0] for c in BAD])
def test_bad_configs_name_path_and_fix(
    example_sections: dict[str, Any], case: str, mutate: Mutation, path: str, fix: str
) -> None:
    mutate(example_sections)
    with pytest.raises(stack_config.ConfigError) as raised:
        stack_config.validate(example_sections)
    matching = [p for p in raised.value.problems if p.path == path]
    assert matching, f"no problem at {path}: {raised.value}"
    assert any(fix in p.message for p in matching), str(raised.value)


def test_all_problems_reported_at_once(example_sections: dict[str, Any]) -> None:
    """The acceptance case: a typo'd key, a duplicate VMID and an unknown receiver, together."""
    asset(example_sections, "gitea")["servcie"] = "git"
    asset(example_sections, "nextcloud")["vmid"] = 110
    example_sections["alerting"]["routing"]["critical"]["receivers"] = ["oncall-primery"]
    with pytest.raises(stack_config.ConfigError) as raised:
        stack_config.validate(example_sections)
    paths = {p.path for p in raised.value.problems}
    assert {
        "obsstack:inventory.assets[5].servcie",
        "obsstack:inventory.assets[6].vmid",
        "obsstack:alerting.routing.critical.receivers[0]",
    } <= paths
    assert str(raised.value).startswith(f"{len(raised.value.problems)} problem(s)")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1m", 60), ("1h30m", 5400), ("14d", 1_209_600), ("2h", 7200)],
    ids=["seconds", "minute", "compound", "days", "hours"],
)
def test_duration_seconds(text: str, seconds: int) -> None:
    assert stack_config.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1w", "m", "-1s", "1.5h"], ids=repr)
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        stack_config.duration_seconds(text)


def test_secret_keys_are_collected(example_config: stack_config.StackConfig) -> None:
    keys = example_config.secret_key_names()
    assert {"proxmoxApiToken", "sshPrivateKey", "slackOpsUrl", "smtpPassword", "grafanaAdminPassword"} <= set(keys)


def test_retention_string(example_config: stack_config.StackConfig) -> None:
    assert example_config.backups.retention.as_pve_string() == "keep-daily=30,keep-weekly=8,keep-monthly=6"


def test_section_problems_do_not_hide_cross_references(example_sections: dict[str, Any]) -> None:
    """A duplicate VMID (an inventory check) must not hide problems only the stack-level checks see."""
    asset(example_sections, "nextcloud")["vmid"] = 110
    asset(example_sections, "postgres")["node"] = "pve9"
    example_sections["backups"]["storage"] = "local"
    with pytest.raises(stack_config.ConfigError) as raised:
        stack_config.validate(example_sections)
    paths = {p.path for p in raised.value.problems}
    assert {
        "obsstack:inventory.assets[6].vmid",
        "obsstack:inventory.assets[7].node",
        "obsstack:backups.storage",
    } <= paths

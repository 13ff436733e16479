"""The rule catalogue: rendered from config, committed without drift, valid for promtool, complete."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import rules
from tests.support import metric_names
from tools.rules import cases

ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = rules.RULES_DIR / "tests"

# The interface: dashboards, runbooks, routing and people's silences refer to these names.
ALERT_NAMES = (
    "TargetDown",
    "ScrapeCoverageLow",
    "UnregisteredGuest",
    "ServiceProbeFailed",
    "TLSCertificateExpiringSoon",
    "HostFilesystemFillingUp",
    "HostFilesystemAlmostFull",
    "HostMemoryPressure",
    "HostHighCpuSaturation",
    "NodeTextfileCollectorError",
    "BackupTooOld",
    "BackupJobFailed",
    "GuestNotBackedUp",
    "BackupNotVerified",
    "PbsDatastoreFillingUp",
    "PbsDatastoreAlmostFull",
    "PbsMaintenanceStale",
    "RestoreDrillOverdue",
    "RestoreDrillFailed",
    "RestoreRtoBudgetExceeded",
    "Watchdog",
    "PrometheusRuleEvaluationFailures",
    "PrometheusNotificationsFailing",
    "AlertmanagerNotificationsFailing",
    "AlertmanagerClusterDegraded",
    "SilencePolicyViolation",
    "CriticalAlertUnacknowledged",
    "OnCallDrillOverdue",
)


def _rule_docs() -> dict[str, dict[str, Any]]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(rules.RULES_DIR.glob("*.yml"))}


def _all_rules() -> list[dict[str, Any]]:
    return [rule for doc in _rule_docs().values() for group in doc["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in _all_rules():
        if "alert" in rule:
            by_name.setdefault(rule["alert"], []).append(rule)
    return by_name


@pytest.mark.parametrize("area", sorted(rules.GENERATED), ids=str)
def test_committed_rules_match_the_renderer(
    area: str, example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    committed = (rules.RULES_DIR / f"{area}.yml").read_text()
    assert rules.GENERATED[area](example_config, example_inventory) == committed, (
        f"rules/{area}.yml drifted: run `make rules`"
    )


def test_committed_incident_cases_match_the_generator(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    committed = (TESTS_DIR / cases.FILE_NAME).read_text()
    assert cases.render(example_config, example_inventory) == committed, (
        f"rules/tests/{cases.FILE_NAME} drifted: run `make rules`"
    )


@pytest.mark.parametrize("seed", ["1", "2"])
def test_rendering_does_not_depend_on_hash_order(seed: str) -> None:
    """Another process with another string-hash seed renders the committed files byte for byte
    (a renderer iterating a set of strings would not)."""
    code = (
        "import json; from tests.conftest import load_sections; from components import config, inventory; "
        "from components.render import rules; "
        "stack = config.validate(load_sections()); "
        "print(json.dumps(rules.rule_files(stack, inventory.build(stack))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": seed},
    )
    committed = {p.name: p.read_text() for p in sorted(rules.RULES_DIR.glob("*.yml"))}
    assert json.loads(done.stdout) == committed


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    paths = [str(p) for p in sorted(rules.RULES_DIR.glob("*.yml"))]
    result = subprocess.run(
        [metric_names.require_binary("promtool"), "check", "rules", *paths], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(TESTS_DIR.glob("*_test.yml")), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = subprocess.run(
        [metric_names.require_binary("promtool"), "test", "rules", test_file.name],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_alert_exists_with_labels_and_annotations(name: str) -> None:
    variants = _alerts().get(name)
    assert variants, f"alert {name} is missing from rules/*.yml"
    for rule in variants:
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["labels"]["service"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        assert annotations["runbook_url"] == f"docs/runbooks/{name}.md"


def _tested_states() -> dict[str, set[str]]:
    """alertname -> {"firing", "not-firing"} covered by rules/tests/*_test.yml."""
    states: dict[str, set[str]] = {}
    for path in TESTS_DIR.glob("*_test.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                state = "firing" if case.get("exp_alerts") else "not-firing"
                states.setdefault(case["alertname"], set()).add(state)
    return states


@pytest.mark.parametrize("name", sorted(_alerts()), ids=str)
def test_every_alert_has_firing_and_not_firing_cases(name: str) -> None:
    # Watchdog fires by design at every instant; its silence is the dead-man receiver's alarm.
    expected = {"firing"} if name == "Watchdog" else {"firing", "not-firing"}
    assert _tested_states().get(name, set()) == expected


def test_target_down_severity_follows_the_tier() -> None:
    severities = {}
    for rule in _alerts()["TargetDown"]:
        tier = re.search(r'tier="([^"]+)"', rule["expr"])
        assert tier, rule["expr"]
        severities[tier.group(1)] = rule["labels"]["severity"]
    assert severities == stack_config.TIER_SEVERITY


@pytest.mark.parametrize(
    ("section", "key", "value", "area", "expected"),
    [
        pytest.param(
            "alerting", ("thresholds", "target_down_for"), "45s", "availability", "for: 45s", id="target-down-for"
        ),
        pytest.param(
            "alerting", ("thresholds", "scrape_coverage_min"), 0.8, "availability", "ratio < 0.8", id="coverage-min"
        ),
        pytest.param("backups", ("rpo",), "36h", "backups", "backup_age:seconds > 136800", id="rpo-plus-grace"),
        pytest.param("backups", ("rpo_grace",), "4h", "backups", "backup_age:seconds > 100800", id="rpo-grace"),
        pytest.param(
            "backups",
            ("drill", "every"),
            "7d",
            "backups",
            "last_success_timestamp_seconds > 699000",
            id="drill-every",  # 7d + 1d2h10m slack
        ),
        pytest.param(
            "alerting", ("thresholds", "filesystem_almost_full_ratio"), 0.8, "hosts", "avail:ratio < 0.2", id="fs-full"
        ),
        pytest.param("alerting", ("escalation", "ack_timeout"), "7m", "meta", "for: 7m", id="ack-timeout"),
        pytest.param(
            "alerting", ("thresholds", "pbs_gc_within"), "10d", "backups", '"gc"} > 864000', id="pbs-gc-window"
        ),
        pytest.param(
            "alerting",
            ("runbook_base_url",),
            "https://git.example.net/ops/obsstack/src/branch/main/docs/runbooks/",
            "meta",
            "runbook_url: https://git.example.net/ops/obsstack/src/branch/main/docs/runbooks/Watchdog.md",
            id="runbook-base-url",
        ),
    ],
)
def test_thresholds_come_from_config(  # noqa: PLR0917 (one parameter per table column)
    example_sections: dict[str, Any], section: str, key: tuple[str, ...], value: object, area: str, expected: str
) -> None:
    node = example_sections[section]
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = value
    config = stack_config.validate(example_sections)
    rendered = rules.GENERATED[area](config, stack_inventory.build(config))
    assert expected in rendered
    assert expected not in (rules.RULES_DIR / f"{area}.yml").read_text()


def test_inventory_is_compiled_into_recording_rules(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    doc = yaml.safe_load(rules.GENERATED["availability"](example_config, example_inventory))
    registered = {
        (r["labels"]["job"], r["labels"]["instance"])
        for g in doc["groups"]
        for r in g["rules"]
        if r.get("record") == "obs:registered_target:info"
    }
    assert registered == {(e.job, e.instance) for e in example_inventory.coverage}


@pytest.mark.parametrize(("low", "high"), [(9900, 9999), (100, 999), (95, 1234), (7, 7), (9990, 10010), (120, 129)])
def test_range_regex_matches_exactly_the_range(low: int, high: int) -> None:
    pattern = re.compile(f"^(?:{rules.range_regex(low, high)})$")
    for number in range(max(0, low - 150), high + 150):
        assert bool(pattern.match(str(number))) == (low <= number <= high), number


def test_recording_rule_names_are_level_metric_operation() -> None:
    for rule in _all_rules():
        if "record" in rule:
            assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_every_metric_a_rule_uses_exists() -> None:
    known = metric_names.known_metric_names()
    unknown = {
        (rule.get("alert") or rule.get("record"), name)
        for rule in _all_rules()
        for name in metric_names.expr_metric_names(rule["expr"])
        if name not in known
    }
    assert not unknown, f"metrics in no exporter, recording rule or docs/metrics.md: {sorted(unknown)}"


RUNBOOK_SECTIONS = ("## Meaning", "## Impact", "## Diagnose", "## Fix", "## Silence")


@pytest.mark.parametrize("name", sorted(set(ALERT_NAMES) | set(_alerts())))
def test_every_alert_has_a_runbook_with_the_sections(name: str) -> None:
    path = ROOT / "docs" / "runbooks" / f"{name}.md"
    assert path.exists(), f"write {path.relative_to(ROOT)}"
    text = path.read_text()
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{path.name} lacks {section}"
    diagnose = text.split("## Diagnose", 1)[1].split("## Fix", 1)[0]
    assert "```sh" in diagnose, f"{path.name}: Diagnose needs commands"
    assert "obs-silences" in text or "Never silence" in text or "Do not silence" in text


def test_no_runbook_without_an_alert() -> None:
    runbooks = {p.stem for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    assert runbooks <= set(_alerts())


def test_the_catalogue_lists_every_alert() -> None:
    catalogue = (ROOT / "docs" / "alerting.md").read_text()
    missing = [name for name in _alerts() if f"[{name}](runbooks/{name}.md)" not in catalogue]
    assert not missing, f"add to docs/alerting.md: {missing}"


def test_no_recording_rule_is_defined_in_two_files() -> None:
    """Two files recording one name would write conflicting series (e.g. rules/dashboards.yml)."""
    files_by_name: dict[str, set[str]] = {}
    for file_name, doc in _rule_docs().items():
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    files_by_name.setdefault(rule["record"], set()).add(file_name)
    assert {name: files for name, files in files_by_name.items() if len(files) > 1} == {}

"""The policy check and on-call drill as shipped to the monitoring host: files, units, standalone code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alerting_timers, host_files
from tests.conftest import load_sections
from tests.unit.monitoring_helpers import with_replicas
from tools.silences.policy import Policy


@pytest.fixture
def shipped(example_config, example_inventory, tmp_path) -> Path:
    """The monitoring host's files written under tmp_path as a root."""
    for f in alerting_timers.files(example_config, example_inventory):
        target = tmp_path / f.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.content)
    return tmp_path


def test_files_reach_every_monitoring_host_and_are_discovered(example_config, example_inventory) -> None:
    paths = {(f.host, f.path) for f in host_files(example_config, example_inventory)}
    for name in ("obs-silence-check", "obs-oncall-drill"):
        for kind in ("service", "timer"):
            assert ("mon-1", f"/etc/systemd/system/{name}.{kind}") in paths
    assert ("mon-1", "/usr/local/bin/obs-silences") in paths


def test_policy_document_matches_config(shipped) -> None:
    policy = Policy.load(shipped / "etc/obsstack/silence-policy.json")
    assert (policy.max_duration, policy.maintenance_max_duration) == (86400, 604800)
    assert policy.maintenance_windows == ("sunday-patching",)
    assert [p["alertname"] for p in policy.protected] == ["Watchdog"]


def test_units_schedule_and_command(example_config) -> None:
    units = alerting_timers.units(example_config)
    assert "OnUnitActiveSec=60s" in units["obs-silence-check.timer"]
    assert f"OnCalendar={alerting_timers.DRILL_SCHEDULE}" in units["obs-oncall-drill.timer"]
    assert "--ack-timeout 10m" in units["obs-oncall-drill.service"]
    assert "ReadWritePaths=-/var/lib/prometheus/node-exporter" in units["obs-silence-check.service"]
    systemd_analyze = shutil.which("systemd-analyze")
    assert systemd_analyze, "systemd-analyze not found (apt-get install systemd)"
    result = subprocess.run(
        [systemd_analyze, "calendar", alerting_timers.DRILL_SCHEDULE], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "Next elapse" in result.stdout, result.stderr


@pytest.mark.parametrize("module", ["tools.silences", "tools.oncall_drill"])
def test_shipped_tools_run_without_the_project(shipped, module) -> None:
    """Only the shipped sources on the path: the tools must not import components/ on the host."""
    lib = shipped / alerting_timers.LIB_DIR.lstrip("/")
    textfiles = shipped / "textfile"
    args = {
        "tools.silences": ["--policy", str(shipped / "etc/obsstack/silence-policy.json"), "check"],
        "tools.oncall_drill": ["--ack-timeout", "1s"],
    }[module]
    result = subprocess.run(
        [sys.executable, "-P", "-m", module, *args, "--textfile-dir", str(textfiles)],
        cwd=shipped,
        env={**os.environ, "PYTHONPATH": str(lib), "OBS_ALERTMANAGER_URL": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "ModuleNotFoundError" not in result.stderr, result.stderr
    assert result.returncode == 1 and "cannot reach Alertmanager" in result.stderr
    if module == "tools.silences":
        assert "obs_silence_policy_check_up 0\n" in (textfiles / "obs_alerts.prom").read_text()


@pytest.mark.parametrize("name", ["obs-silences", "obs-oncall-drill"])
def test_wrappers_pass_shellcheck_and_reach_alertmanager_over_tls(shipped, name) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck not found: apt-get install shellcheck"
    wrapper = shipped / "usr/local/bin" / name
    result = subprocess.run([shellcheck, "-s", "sh", str(wrapper)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    text = wrapper.read_text()
    assert 'OBS_ALERTMANAGER_URL="${OBS_ALERTMANAGER_URL:-https://10.0.20.10:9093}"' in text
    assert "OBS_ALERTMANAGER_PASSWORD_FILE" in text and "api_password" in text


# Timers a monitoring host runs for itself (read-only, feeding its own metrics); every other timer
# on a monitoring host must run once per stack, on the primary (inventory.monitoring[0]).
PER_HOST_TIMERS = {"obs-silence-check.timer"}


def test_singleton_timers_run_on_the_primary_monitoring_host_only() -> None:
    config = stack_config.validate(with_replicas(load_sections(), 2))
    inventory = stack_inventory.build(config)
    monitoring = [m.name for m in inventory.monitoring]
    assert len(monitoring) == 2
    hosts_of: dict[str, set[str]] = {}
    for f in host_files(config, inventory):
        if f.host in monitoring and f.path.startswith("/etc/systemd/system/") and f.path.endswith(".timer"):
            hosts_of.setdefault(f.path.rsplit("/", 1)[1], set()).add(f.host)
    # The drills that page people or restore VMs exist once; the policy check everywhere.
    assert {"obs-oncall-drill.timer", "obs-restore-drill.timer", "obs-silence-check.timer"} <= set(hosts_of)
    for timer, hosts in hosts_of.items():
        expected = set(monitoring) if timer in PER_HOST_TIMERS else {monitoring[0]}
        assert hosts == expected, f"{timer} on {sorted(hosts)}"
    # No half-shipped on-call drill on the other host: no wrapper or service to start by hand.
    paths = {(f.host, f.path) for f in host_files(config, inventory)}
    for path in ("/usr/local/bin/obs-oncall-drill", "/etc/systemd/system/obs-oncall-drill.service"):
        assert {h for h, p in paths if p == path} == {monitoring[0]}
    assert {h for h, p in paths if p == "/usr/local/bin/obs-silences"} == set(monitoring)

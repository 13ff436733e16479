"""Install the monitoring plane on a real Debian 12 host over real SSH, with exactly the scripts
the components send (components/monitoring/scripts.py), and prove the operator's promises:
services active, /-/ready answers, Prometheus scrapes node exporter, a second run changes
nothing, a changed config is reloaded (same process), a broken one is rejected while the old
one keeps serving, and Grafana's repository steps run up to the (unreachable) key fetch.

Fails (never skips) when debootstrap/systemd-nspawn/root are missing.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from components.monitoring import scripts, services
from components.render import layout, prometheus
from tests.conftest import load_sections
from tests.host import nspawn
from tests.host.stack import HOST, IP, Credentials, InstallStack, sections, with_ports

pytestmark = pytest.mark.host


@dataclass
class Installed:
    host: nspawn.DebianHost
    stack: InstallStack
    creds: Credentials
    first: dict[str, subprocess.CompletedProcess[str]]


def run(host: nspawn.DebianHost, script: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return host.ssh(scripts.as_root(script, host.user), stdin=stdin)


def must(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def stage(host: nspawn.DebianHost, stack: InstallStack, creds: Credentials) -> None:
    """One stdin payload for all plain files, one for all secrets: what MonitoringHost does."""
    owned = {m.path for spec in stack.specs for m in spec.files}
    plain = {f.path: f.content for f in stack.files if f.path in owned}
    secrets = {s.path: creds.resolve(s.source) for s in stack.secrets if s.path in owned}
    stage_files(host, plain)
    result = must(run(host, scripts.stage_script(secret=True), stdin=scripts.stage_payload(secrets)), "stage secrets")
    assert [v for v in secrets.values() if v in result] == [], "a secret was echoed"


def stage_files(host: nspawn.DebianHost, files: dict[str, str]) -> None:
    """Stage plain files (path -> content) exactly as the `<host>-stage-files` command does."""
    must(run(host, scripts.stage_script(secret=False), stdin=scripts.stage_payload(files)), "stage files")


def install(
    host: nspawn.DebianHost, stack: InstallStack, creds: Credentials
) -> dict[str, subprocess.CompletedProcess[str]]:
    """One `pulumi up` worth of commands, in the components' order."""
    specs = stack.specs
    results = {
        "packages": run(
            host,
            scripts.packages_script(services.packages(stack.config, specs), stack.config.monitoring.apt_proxy),
        )
    }
    must(results["packages"], "packages")
    results["layout"] = run(
        host,
        scripts.layout_script(
            services.directories(specs), host.user, scripts.staging_dirs(specs), services.group_members(specs)
        ),
    )
    must(results["layout"], "layout")
    stage(host, stack, creds)
    for spec in specs:
        results[spec.name] = run(host, scripts.apply_script(spec))
        must(results[spec.name], f"apply {spec.name}")
    return results


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    try:
        context = nspawn.booted()
        host = context.__enter__()
    except nspawn.HostError as err:
        pytest.fail(str(err))
    try:
        stack = InstallStack.build(with_ports(sections(load_sections())))
        creds = Credentials.create()
        yield Installed(host, stack, creds, install(host, stack, creds))
    finally:
        context.__exit__(None, None, None)


def main_process(host: nspawn.DebianHost, unit: str) -> tuple[str, str]:
    out = must(
        run(host, f"systemctl show -p MainPID -p ExecMainStartTimestampMonotonic --value {unit}"),
        f"systemctl show {unit}",
    )
    pid, started = out.split()
    return pid, started


def https_get(inst: Installed, port: int, path: str, auth: bool = True) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(inst.creds.ca_path))
    request = urllib.request.Request(f"https://{IP}:{port}{path}")
    if auth:
        token = b64encode(f"{layout.API_USER}:{inst.creds.passwords['api']}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def query(inst: Installed, promql: str) -> list[dict[str, Any]]:
    port = inst.stack.config.monitoring.ports.prometheus
    status, body = https_get(inst, port, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert status == 200, f"query {promql} answered {status}"
    return list(json.loads(body)["data"]["result"])


UNITS = (
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
    "prometheus-blackbox-exporter",
    "prometheus-pushgateway",
)


@pytest.mark.parametrize("unit", UNITS)
def test_services_are_active(installed: Installed, unit: str) -> None:
    assert must(run(installed.host, f"systemctl is-active {unit}"), unit).strip() == "active"


@pytest.mark.parametrize("service", ["prometheus", "alertmanager"])
def test_ready_answers_over_tls_and_requires_auth(installed: Installed, service: str) -> None:
    port = getattr(installed.stack.config.monitoring.ports, service)
    assert https_get(installed, port, "/-/ready")[0] == 200
    assert https_get(installed, port, "/-/ready", auth=False)[0] == 401


def test_prometheus_scrapes_node_exporter(installed: Installed) -> None:
    instance = f"{IP}:{installed.stack.config.monitoring.ports.node_exporter}"
    deadline = time.monotonic() + 60
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = query(installed, f'up{{job="node", instance="{instance}"}}')
        if result and result[0]["value"][1] == "1":
            break
        time.sleep(2)
    assert result, f"no `up` series for the node exporter {instance}"
    assert result[0]["value"][1] == "1", f"node exporter not scraped: {result}"
    assert result[0]["metric"]["asset"] == HOST
    assert {"asset", "service", "tier"} <= set(result[0]["metric"])


def test_secrets_are_0600_and_owned_by_the_service(installed: Installed) -> None:
    for secret in installed.stack.secrets:
        if secret.mode != "0600" or secret.path not in {m.path for s in installed.stack.specs for m in s.files}:
            continue
        out = must(run(installed.host, f"stat -c '%a %U' {secret.path}"), secret.path).split()
        assert out == ["600", secret.owner], secret.path


def test_second_run_changes_nothing(installed: Installed) -> None:
    before = {unit: main_process(installed.host, unit) for unit in UNITS}
    again = install(installed.host, installed.stack, installed.creds)
    assert "already at their pinned versions" in again["packages"].stdout
    for spec in installed.stack.specs:
        assert f"obsstack: {spec.name} unchanged" in again[spec.name].stdout, again[spec.name].stdout
    assert {unit: main_process(installed.host, unit) for unit in UNITS} == before


def test_changed_config_is_applied_by_reload(installed: Installed) -> None:
    before = main_process(installed.host, "prometheus")
    raw = sections(load_sections(), scrape_interval="10s")
    raw["monitoring"]["ports"] = installed.stack.config.monitoring.ports.model_dump()
    changed = InstallStack.build(raw)
    spec = next(s for s in changed.specs if s.name == "prometheus")
    stage(installed.host, changed, installed.creds)
    result = must(run(installed.host, scripts.apply_script(spec)), "apply changed prometheus.yml")
    assert f"prometheus reloaded: {layout.PROMETHEUS_CONFIG}" in result
    assert main_process(installed.host, "prometheus") == before, "a config change must reload, not restart"
    status, body = https_get(installed, changed.config.monitoring.ports.prometheus, "/api/v1/status/config")
    assert status == 200
    assert "scrape_interval: 10s" in json.loads(body)["data"]["yaml"]
    installed.stack = changed


def test_broken_config_is_rejected_and_the_old_one_keeps_serving(installed: Installed) -> None:
    before_pid = main_process(installed.host, "prometheus")
    live = installed.host.read(layout.PROMETHEUS_CONFIG)
    # Whatever interval the live file has (this test must not rely on an earlier one's change).
    broken = re.sub(r"scrape_interval: \S+", "scrape_interval: often", live, count=1)
    assert broken != live
    stage_files(installed.host, {layout.PROMETHEUS_CONFIG: broken})
    spec = next(s for s in installed.stack.specs if s.name == "prometheus")
    result = run(installed.host, scripts.apply_script(spec))
    assert result.returncode != 0
    assert "prometheus rejected the new configuration; the running one is untouched" in result.stderr
    assert "often" in result.stderr, f"the validator's own message must reach the user:\n{result.stderr}"
    assert installed.host.read(layout.PROMETHEUS_CONFIG) == live
    assert main_process(installed.host, "prometheus") == before_pid
    assert https_get(installed, installed.stack.config.monitoring.ports.prometheus, "/-/ready")[0] == 200
    # Put the good one back in staging so later runs converge.
    stage_files(installed.host, {layout.PROMETHEUS_CONFIG: live})


def test_a_change_that_kills_the_daemon_is_rolled_back(installed: Installed) -> None:
    """Node exporter has no config check: a bad unit argument only shows when it restarts. The
    health check catches it, the previous arguments come back and the exporter serves again."""
    defaults = layout.defaults_file("prometheus-node-exporter")
    live = installed.host.read(defaults)
    broken = live.replace("--collector.systemd", "--collector.systemd --no-such-flag")
    assert broken != live
    stage_files(installed.host, {defaults: broken})
    spec = next(s for s in installed.stack.specs if s.name == "node_exporter")
    result = run(installed.host, scripts.apply_script(spec))
    assert result.returncode != 0
    assert "node_exporter did not come back healthy; the previous files are restored" in result.stderr
    assert "no-such-flag" in result.stderr, "the daemon's own complaint (journal) must reach the user"
    assert installed.host.read(defaults) == live
    assert must(run(installed.host, "systemctl is-active prometheus-node-exporter"), "is-active").strip() == "active"
    stage_files(installed.host, {defaults: live})
    assert "node_exporter unchanged" in must(run(installed.host, scripts.apply_script(spec)), "converge")


def test_grafana_repository_steps_run_up_to_the_key_fetch(installed: Installed) -> None:
    """An unreachable repository (here a closed loopback port, so the test means the same on a
    runner with internet access) stops the script at the key fetch with a clear message and leaves
    apt's sources untouched (no half-configured repository)."""
    mon = installed.stack.config.monitoring
    unreachable = "https://127.0.0.1:9/grafana"
    repo = scripts.GrafanaRepo(unreachable, mon.grafana_apt_key_fingerprint)
    result = run(installed.host, scripts.packages_script({"grafana": mon.versions.grafana}, None, repo))
    assert result.returncode != 0
    assert f"cannot fetch {unreachable}/gpg-full.key" in result.stderr
    assert must(run(installed.host, "ls /etc/apt/sources.list.d/"), "ls").split() == []
    assert must(run(installed.host, "dpkg-query -W -f='${Status}' gnupg"), "gnupg") == "install ok installed"


def test_prometheus_config_paths_resolve_on_the_host(installed: Installed) -> None:
    """The relative paths of prometheus.yml point at files that exist next to it on the host."""
    for relative in (prometheus.CA, prometheus.API_AUTH["password_file"], prometheus.SCRAPE_AUTH["password_file"]):
        must(run(installed.host, f"test -s {layout.PROMETHEUS_DIR}/{relative}"), relative)

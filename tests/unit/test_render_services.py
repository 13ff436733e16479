"""Web configs, grafana.ini, systemd drop-ins and blackbox.yml: the properties that matter."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import bcrypt
import pytest
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.monitoring import services
from components.render import blackbox, grafana_ini, host_files, secret_files, systemd, webconfig


def test_web_config_passes_promtool_with_real_certificates(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (apt-get install prometheus)"
    (tmp_path / "tls").mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "tls/server.key", "-out", "tls/server.crt", "-days", "1", "-subj", "/CN=t"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(webconfig.render({"obsstack": hashed}))
    result = subprocess.run(
        [promtool, "check", "web-config", "web.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    users = yaml.safe_load((tmp_path / "web.yml").read_text())["basic_auth_users"]
    assert bcrypt.checkpw(b"correct horse", users["obsstack"].encode())


def test_grafana_ini_is_locked_down(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(grafana_ini.render(example_config, example_inventory))
    assert ini["server"]["protocol"] == "https"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["security"]["cookie_secure"] == "true"
    assert ini["security"]["admin_password"] == "$__file{/etc/grafana/secrets/admin_password}"
    assert ini["security"]["secret_key"] == "$__file{/etc/grafana/secrets/secret_key}"
    for key in ("reporting_enabled", "check_for_updates", "check_for_plugin_updates"):
        assert ini["analytics"][key] == "false"


UNITS = sorted(systemd.HARDENING)


@pytest.mark.parametrize("unit", UNITS)
def test_dropins_harden_every_unit(unit: str) -> None:
    ini = configparser.ConfigParser(strict=False, interpolation=None)
    ini.read_string(systemd.dropin_text(unit))
    service = ini["Service"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes")):
        assert service[key] == value
    caps = service["CapabilityBoundingSet"]
    assert caps == ("CAP_NET_RAW" if unit == "prometheus-blackbox-exporter" else "")


def test_blackbox_defines_every_probe_module_the_inventory_uses(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    modules = yaml.safe_load(blackbox.render(example_config, example_inventory))["modules"]
    used = {job.probe_module for job in example_inventory.scrape_jobs if job.probe_module}
    assert used <= set(modules)


def test_secret_files_are_0600_and_owned_by_their_service(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    for item in secret_files(example_config, example_inventory):
        if item.source in ("tls:ca",) or item.source.startswith("tls:cert:"):
            assert item.mode == "0644"  # certificates are public
            continue
        assert item.mode == "0600", item
        if item.source.startswith("pve-exporter-env:"):
            # systemd reads it (EnvironmentFile=) as root before switching to the DynamicUser.
            assert item.owner == "root", item
            continue
        assert item.owner != "root", f"{item.path}: the service reading it must own it"


def test_every_shipped_file_belongs_to_a_service(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory
) -> None:
    """A file no service owns would be shipped but never validated or reloaded.

    The plain-files step only reloads systemd and enables timers: what it ships must be the
    stack's own data, tools or obs-* units (a timer for every service it ships).
    """
    files = host_files(example_config, example_inventory)
    for m in example_inventory.monitoring:
        plain = [f.path for f in files if f.host == m.name and services.owner_of(f.path) == "files"]
        for path in plain:
            assert path.startswith(
                (
                    "/etc/obsstack/",
                    "/opt/obsstack/",
                    "/usr/local/lib/obsstack/",
                    "/usr/local/bin/obs-",
                    "/etc/systemd/system/obs-",
                )
            ), path
            if path.startswith("/etc/systemd/system/") and path.endswith(".service"):
                assert path.removesuffix(".service") + ".timer" in plain, f"{path} has no timer to start it"
    for asset in example_inventory.managed_hosts:
        mine = [f for f in files if f.host == asset.name]
        specs = services.specs(example_config, str(asset.address), mine, [], only=services.AGENT_SERVICES)
        owned = {spec.name: {m.path for m in spec.files} for spec in specs}
        assert "/etc/default/prometheus-node-exporter" in owned["node_exporter"]
        assert "/etc/alloy/config.alloy" in owned["alloy"]


@pytest.mark.parametrize(("host", "has_requests"), [("mon-1", True), ("gitea", False)], ids=["monitoring", "agent"])
def test_python_requests_only_where_the_alerting_tools_run(
    example_config: stack_config.StackConfig,
    example_inventory: stack_inventory.Inventory,
    host: str,
    has_requests: bool,
) -> None:
    files = [f for f in host_files(example_config, example_inventory) if f.host == host]
    only = services.ORDER if host.startswith("mon-") else services.AGENT_SERVICES
    pinned = services.packages(example_config, services.specs(example_config, "10.0.0.1", files, [], only=only))
    assert ("python3-requests" in pinned) is has_requests
    if has_requests:
        assert pinned["python3-requests"] == example_config.monitoring.versions.python3_requests

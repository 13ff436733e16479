"""prometheus-pve-exporter: installed on every monitoring host from a hash-pinned lock into a venv
of its own, a hardened unit, and a read-only token the stack creates and ships only as a secret."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components import config as stack_config
from components.monitoring import scripts, services
from components.proxmox import exporter_token
from components.render import host_files, pve_exporter, secret_files, sources
from tools.plan import engine

LOCK_LINE = re.compile(r"^([a-z0-9-]+)==(\S+) \\$")


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from requirements-pve-exporter.txt."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in sources.PVE_EXPORTER_LOCK.splitlines():
        if match := LOCK_LINE.match(line):
            current = match.group(1)
            entries[current] = (match.group(2), [])
        elif line.strip().startswith("--hash=sha256:"):
            entries[current][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
    return entries


def test_lock_pins_the_configured_version_and_hashes_every_requirement() -> None:
    entries = _lock_entries()
    assert entries["prometheus-pve-exporter"][0] == stack_config.PVE_EXPORTER_VERSION
    # Its runtime dependencies (3.10.2's metadata) are all in the lock: --no-deps installs nothing else.
    assert {"proxmoxer", "prometheus-client", "werkzeug", "pyyaml", "gunicorn", "requests"} <= set(entries)
    for name, (_, hashes) in entries.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name


def test_another_exporter_version_is_refused_naming_the_field(example_sections) -> None:
    example_sections["monitoring"]["versions"] = {"pve_exporter": "3.4.5"}
    with pytest.raises(stack_config.ConfigError, match=r"monitoring\.versions.*pve_exporter.*no hash-pinned lock"):
        stack_config.validate(example_sections)


def test_installed_on_every_monitoring_host_with_pip_checking_hashes(example_config, example_inventory) -> None:
    files = host_files(example_config, example_inventory)
    for node in example_inventory.monitoring:
        mine = [f for f in files if f.host == node.name]
        (spec,) = [
            s
            for s in services.specs(example_config, node.ip, mine, [], only=services.ORDER)
            if s.name == "pve_exporter"
        ]
        assert spec.unit == "prometheus-pve-exporter" and not spec.reloadable
        (install,) = spec.validators
        assert "--require-hashes" in install and "--only-binary=:all:" in install and "--no-deps" in install
        assert f'-r "$candidate{pve_exporter.REQUIREMENTS}"' in install
        assert "python3-venv" in services.packages(example_config, [spec])
        assert spec.health is not None and spec.health.url.startswith("http://127.0.0.1:")
    assert example_inventory.job("pve").exporter == f"127.0.0.1:{example_config.monitoring.ports.pve_exporter}"


def test_a_new_lock_is_a_new_venv_and_a_new_unit() -> None:
    """The unit names the venv of its lock, so a changed lock restarts onto a fresh venv and a
    rollback of the unit returns to the old one."""
    assert pve_exporter.venv_dir("a") != pve_exporter.venv_dir("b")
    assert pve_exporter.venv_dir().startswith(f"{pve_exporter.HOME}/venv-")


def test_unit_listens_on_loopback_and_reads_the_token_from_a_root_only_file(example_config) -> None:
    text = pve_exporter.unit_text(example_config)
    port = example_config.monitoring.ports.pve_exporter
    assert f"ExecStart={pve_exporter.venv_dir()}/bin/pve_exporter --web.listen-address=127.0.0.1:{port}" in text
    assert f"EnvironmentFile={pve_exporter.TOKEN_ENV}" in text and "DynamicUser=yes" in text
    assert f"PVE_USER={example_config.stack_names.exporter_user} PVE_TOKEN_NAME={pve_exporter.TOKEN_NAME}" in text
    assert "PVE_TOKEN_VALUE" not in text  # only in the secret file


def test_unit_verifies_pve_against_the_hosts_ca_store_not_the_venvs_certifi(example_config) -> None:
    """A PVE node's certificate comes from its cluster CA, which an operator adds to the host's
    store: the venv's certifi bundle (public CAs only) would refuse every scrape."""
    text = pve_exporter.unit_text(example_config)
    assert "PVE_VERIFY_SSL=true" in text
    assert "Environment=REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt" in text


def test_pip_trusts_the_hosts_ca_store(example_config) -> None:
    """Behind a TLS-inspecting proxy the host trusts, the venv's certifi bundle refuses PyPI."""
    assert " --cert /etc/ssl/certs/ca-certificates.crt " in pve_exporter.install_command(example_config)


def test_unit_passes_systemd_analyze_verify(example_config, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required by this test (apt-get install systemd)"
    text = (
        pve_exporter.unit_text(example_config)
        .replace("Wants=network-online.target\n", "")
        .replace("After=network-online.target\n", "DefaultDependencies=no\n")
    )
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / f"{pve_exporter.UNIT}.service").write_text(text)
    binary = tmp_path / f"{pve_exporter.venv_dir().lstrip('/')}/bin/pve_exporter"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    env = tmp_path / pve_exporter.TOKEN_ENV.lstrip("/")
    env.parent.mkdir(parents=True)
    env.write_text("PVE_TOKEN_VALUE=x\n")
    run = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={tmp_path}", f"{pve_exporter.UNIT}.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr


@pytest.mark.parametrize(
    "value", ["obsstack-exporter@pve!metrics=0b1e-uuid", "0b1e-uuid"], ids=["full-token-id", "bare-secret"]
)
def test_token_env_holds_only_the_secret(value: str) -> None:
    assert pve_exporter.token_env(value) == "PVE_TOKEN_VALUE=0b1e-uuid\n"


def test_token_env_is_a_secret_file_per_monitoring_host(example_config, example_inventory) -> None:
    env_files = [s for s in secret_files(example_config, example_inventory) if s.path == pve_exporter.TOKEN_ENV]
    assert sorted(s.host for s in env_files) == sorted(m.name for m in example_inventory.monitoring)
    assert all(s.mode == "0600" and s.owner == "root" for s in env_files)


def test_read_only_token_created_by_the_stack(example_plan: engine.PlanResult, example_config) -> None:
    user, role_id = example_config.stack_names.exporter_user, example_config.stack_names.exporter_role
    role = example_plan.one("proxmoxve:index/roleLegacy:RoleLegacy", "pve-exporter-role")
    assert (
        set(role.inputs["privileges"]) == set(exporter_token.PRIVILEGES) == {"Sys.Audit", "VM.Audit", "Datastore.Audit"}
    )
    token = example_plan.one("proxmoxve:user/token:Token", "pve-exporter-token")
    assert token.inputs["privilegesSeparation"] is True and token.inputs["userId"] == user
    acls = [r.inputs for r in example_plan.find("proxmoxve:index/acl:Acl") if r.parent == "pve-exporter"]
    assert sorted(a.get("tokenId") or a["userId"] for a in acls) == [
        user,
        f"{user}!{pve_exporter.TOKEN_NAME}",
    ]
    assert all(a["path"] == "/" and a["roleId"] == role_id for a in acls)


def test_token_reaches_the_hosts_only_as_a_staged_secret(example_plan: engine.PlanResult, example_inventory) -> None:
    for node in example_inventory.monitoring:
        stage = example_plan.one("command:remote:Command", f"{node.name}-services-stage-secrets")
        assert stage.inputs["stdin"] == engine.SECRET
    for r in example_plan.resources:
        assert "mock-token-pve-exporter-token" not in str(r.inputs), r.name


def test_apply_script_installs_before_it_swaps(example_config, example_inventory) -> None:
    node = example_inventory.monitoring[0]
    mine = [f for f in host_files(example_config, example_inventory) if f.host == node.name]
    (spec,) = [s for s in services.specs(example_config, node.ip, mine, [], only=("pve_exporter",))]
    script = scripts.apply_script(spec)
    assert script.index("--require-hashes") < script.index("# Swap:")

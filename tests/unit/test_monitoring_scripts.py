"""Every script the monitoring components send passes shellcheck and bash's own parser, and the
command line that carries it survives SSH quoting unchanged."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.monitoring import scripts, services
from components.render import HostFile, host_files, layout, secret_files

PLAIN_FILES = services.ServiceSpec(
    "files",
    None,
    None,
    files=(
        services.ManagedFile("/etc/systemd/system/obs-check.service", "0644", "root", "root"),
        services.ManagedFile("/etc/systemd/system/obs-check.timer", "0644", "root", "root"),
        services.ManagedFile("/usr/local/bin/obs-check", "0755", "root", "root"),
    ),
)


def all_scripts() -> list[tuple[str, str]]:
    from tests.conftest import load_sections

    config = stack_config.validate(load_sections())
    inventory = stack_inventory.build(config)
    files, secrets = host_files(config, inventory), secret_files(config, inventory)
    found: list[tuple[str, str]] = []
    hosts = [(m.name, m.ip, services.ORDER) for m in inventory.monitoring]
    hosts += [(a.name, str(a.address), services.AGENT_SERVICES) for a in inventory.managed_hosts[:1]]
    for host, ip, only in hosts:
        mine = [f for f in files if f.host == host]
        my_secrets = [s for s in secrets if s.host == host]
        specs = services.specs(config, ip, mine, my_secrets, only=only)
        for spec in specs:
            found.append((f"{host}-apply-{spec.name}", scripts.apply_script(spec)))
        found.append(
            (
                f"{host}-layout",
                scripts.layout_script(
                    services.directories(specs), "debian", scripts.staging_dirs(specs), services.group_members(specs)
                ),
            )
        )
        found.append((f"{host}-stage-files", scripts.stage_script(secret=False)))
        found.append((f"{host}-stage-secrets", scripts.stage_script(secret=True)))
        packages = services.packages(config, specs)
        repo = scripts.GrafanaRepo(config.monitoring.grafana_apt_url, config.monitoring.grafana_apt_key_fingerprint)
        found.append((f"{host}-packages", scripts.packages_script(packages, None, repo)))
        found.append((f"{host}-packages-proxy", scripts.packages_script(packages, "http://10.0.10.5:3142", None)))
    with_rules = services.ServiceSpec(
        "prometheus",
        "prometheus",
        "prometheus",
        files=(services.ManagedFile("/etc/prometheus/rules/a.yml", "0644", "root", "root"),),
        prune_dirs=(("/etc/prometheus/rules", "*.yml"),),
    )
    found.append(("apply-with-rule-files", scripts.apply_script(with_rules)))
    found.append(("apply-plain-files-with-timer", scripts.apply_script(PLAIN_FILES)))
    return found


SCRIPTS = all_scripts()


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_shellcheck_passes(name: str, script: str) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (apt-get install shellcheck)"
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", "-"], input=script, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("name", "script"), SCRIPTS, ids=[n for n, _ in SCRIPTS])
def test_command_line_carries_the_script_verbatim(name: str, script: str) -> None:
    for user, prefix in (("root", ["bash", "-c"]), ("debian", ["sudo", "-n", "bash", "-c"])):
        argv = shlex.split(scripts.as_root(script, user))
        assert argv == [*prefix, script]


def test_secrets_are_read_from_stdin_never_from_arguments() -> None:
    script = scripts.stage_script(secret=True)
    assert "base64 -d | tar -xz" in script
    assert "umask 077" in script
    assert [line for line in script.splitlines() if "echo" in line] == ["echo 'obsstack: staged secrets'"]
    assert "$1" not in script


@pytest.mark.parametrize("secret", [False, True], ids=["files", "secrets"])
def test_staging_unpacks_every_file_with_its_exact_content(tmp_path: Path, secret: bool) -> None:
    """The payload round-trips through the very script (staging dir pointed at tmp_path)."""
    files = {"/etc/prometheus/prometheus.yml": "global: {}\n", "/etc/loki/secrets/p w": "s3cr3t 'x' $HOME\n"}
    script = scripts.stage_script(secret).replace(layout.STAGING_DIR, str(tmp_path))
    result = subprocess.run(
        ["bash", "-c", script], input=scripts.stage_payload(files), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    for path, content in files.items():
        staged = tmp_path / path.lstrip("/")
        assert staged.read_text() == content
        assert staged.stat().st_mode & 0o077 == 0, "staged files are private to their owner"


def test_staging_payload_is_deterministic() -> None:
    files = {"/b": "2", "/a": "1"}
    assert scripts.stage_payload(files) == scripts.stage_payload(dict(reversed(files.items())))
    assert scripts.stage_payload(files) != scripts.stage_payload({**files, "/a": "changed"})


def test_health_check_password_never_reaches_argv() -> None:
    spec = services.ServiceSpec(
        "prometheus",
        "prometheus",
        "prometheus",
        health=services.HealthCheck(
            url="https://10.0.0.1:9090/-/ready", ca_file="/ca", user="obsstack", password_file="/pw"
        ),
    )
    script = scripts.apply_script(spec)
    curl_lines = [line for line in script.splitlines() if "curl " in line]
    assert curl_lines
    for line in curl_lines:
        assert "-K -" in line and " -u " not in line and "--user" not in line
    assert "$(cat /pw)" in script


def test_validation_failure_exits_before_any_swap() -> None:
    spec = services.ServiceSpec("blackbox", "u", "p", validators=("false",))
    script = scripts.apply_script(spec)
    assert script.index("rejected the new configuration") < script.index("# Swap:")


def test_shipped_timers_are_loaded_and_enabled() -> None:
    script = scripts.apply_script(PLAIN_FILES)
    assert "systemctl daemon-reload" in script
    assert "systemctl enable --now --quiet obs-check.timer" in script
    assert "obs-check.service" not in script.split("# Swap:")[1].split("systemctl enable")[1]


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/etc/prometheus/alertmanager.yml", "alertmanager"),
        ("/etc/prometheus/alertmanager-web.yml", "alertmanager"),
        ("/etc/prometheus/alertmanager-secrets/slack.url", "alertmanager"),
        ("/etc/prometheus/prometheus.yml", "prometheus"),
        ("/etc/prometheus/rules/availability.yml", "prometheus"),
        ("/etc/prometheus/tls/server.key", "node_exporter"),
        ("/etc/default/prometheus", "prometheus"),
        ("/etc/default/prometheus-node-exporter", "node_exporter"),
        ("/etc/default/prometheus-alertmanager", "alertmanager"),
        ("/etc/loki/config.yml", "loki"),
        ("/usr/local/bin/obs-silences", "files"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_path_is_applied_by_the_service_that_reads_it(path: str, service: str) -> None:
    assert services.owner_of(path) == service


def test_layout_creates_the_loki_group_the_package_does_not(tmp_path: Path) -> None:
    """Loki's postinst makes user `loki` with primary group nogroup and no `loki` group: the
    layout must create it before any `install -g loki`, or the first `up` stops there."""
    from tests.conftest import load_sections

    config = stack_config.validate(load_sections())
    inventory = stack_inventory.build(config)
    host = inventory.monitoring[0]
    specs = services.specs(
        config, host.ip, [f for f in host_files(config, inventory) if f.host == host.name], [], only=services.ORDER
    )
    script = scripts.layout_script(
        services.directories(specs), "debian", scripts.staging_dirs(specs), services.group_members(specs)
    )
    log = tmp_path / "calls"
    stubs = {
        "getent": 'echo "getent $*" >>"$LOG"; [ "$2" != loki ] || [ -e "$STATE/loki" ]',
        "groupadd": 'echo "groupadd $*" >>"$LOG"; touch "$STATE/loki"',
        "install": 'echo "install $*" >>"$LOG"; for a; do [ "$a" != loki ] || [ -e "$STATE/loki" ] || exit 6; done',
        "id": "echo nogroup",
        "usermod": 'echo "usermod $*" >>"$LOG"',
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log), "STATE": str(tmp_path)}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert "groupadd --system loki" in calls
    assert "usermod -aG loki loki" in calls


@pytest.mark.parametrize(
    ("hook", "accepted"),
    [("#!/bin/bash\necho ok\n", True), ("#!/bin/bash\nif then fi\n", False)],
    ids=["parses", "does-not-parse"],
)
def test_plain_shell_scripts_are_checked_before_the_swap(
    tmp_path: Path, example_config: stack_config.StackConfig, hook: str, accepted: bool
) -> None:
    """The collector, the vzdump hook and the canary have no daemon to validate them: the install
    path's plain-files step refuses a script that does not parse, before anything is swapped."""
    path = "/usr/local/lib/obsstack/vzdump-hook.sh"
    shipped = [HostFile("pve1", path, hook, mode="0755"), HostFile("pve1", "/etc/obs.conf", "if then\n")]
    (files_spec,) = services.specs(example_config, "10.0.10.11", shipped, [], only=("files",))
    assert files_spec.validators == (f'bash -n "$candidate{path}"',)  # scripts only, not other files
    candidate = tmp_path / path.lstrip("/")
    candidate.parent.mkdir(parents=True)
    candidate.write_text(hook)
    env = {"PATH": "/usr/bin:/bin", "candidate": str(tmp_path)}
    done = subprocess.run(["bash", "-c", files_spec.validators[0]], env=env, capture_output=True, check=False)
    assert (done.returncode == 0) == accepted

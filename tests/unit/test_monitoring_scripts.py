"""Every script the monitoring components send passes shellcheck and bash's own parser, and the
command line that carries it survives SSH quoting unchanged."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
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
        units = {spec.package: spec.unit for spec in specs if spec.package and spec.unit}
        found.append((f"{host}-packages-held", scripts.packages_script(packages, None, repo, units)))
        found.append((f"{host}-packages-proxy", scripts.packages_script(packages, "http://10.0.10.5:3142", None)))
        releases = services.release_packages(config, specs)
        found.append((f"{host}-packages-releases", scripts.packages_script(packages, None, repo, units, releases)))
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


# ---------------------------------------------------------------------------------------------
# Behaviour on a fake host: every absolute path the scripts touch is moved under ROOT (checked),
# every command with effects outside it is a stub on PATH that logs its arguments.
# ---------------------------------------------------------------------------------------------

MOVED = ("/etc/", "/usr/sbin/", layout.CANDIDATE_PARENT)


def rooted(script: str, root: Path) -> str:
    """``script`` with every path it writes to moved under ``root`` (refusing to miss one)."""
    for prefix in MOVED:
        script = script.replace(prefix, f"{root}{prefix}")
    for prefix in MOVED:
        stray = re.search(rf"(?<!{re.escape(str(root))}){re.escape(prefix)}", script)
        assert stray is None, f"{prefix} left outside {root}: {script[stray.start() - 60 : stray.end() + 20]}"
    return script


def host_dirs(root: Path) -> None:
    for sub in (
        "usr/sbin",
        "etc/apt/apt.conf.d",
        "etc/apt/sources.list.d",
        "etc/apt/preferences.d",
        "etc/systemd/system",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n')
    Path(f"{root}{layout.STAGING_DIR}").mkdir(parents=True, exist_ok=True)


def stub_path(tmp_path: Path, stubs: dict[str, str]) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def run_script(script: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env=env, input=stdin, capture_output=True, text=True, check=False)


# dpkg-query: the bootstrap packages are installed; PACKAGE is installed at $STATE/installed-PACKAGE.
DPKG_QUERY = r"""pkg=${3:-$2}
case "$pkg" in ca-certificates|curl|gnupg) printf 'install ok installed'; exit 0 ;; esac
[ -e "$STATE/installed-$pkg" ] || exit 1
case "$2" in *Status*) printf 'install ok installed' ;; *) cat "$STATE/installed-$pkg" ;; esac"""

# systemctl, as far as these scripts need it: a start is skipped while a drop-in's
# ConditionPathExists=!PATH finds PATH (systemd: a failed condition skips the job, JOB_DONE).
SYSTEMCTL = r"""echo "systemctl $*" >>"$LOG"
[ "$1" = --quiet ] && shift
case "$1" in
  is-active) [ "$2" = --quiet ] && shift; [ -e "$STATE/running-$2" ] ;;
  stop) rm -f "$STATE/running-$2" ;;
  start|restart)
    for conf in "$ROOT/etc/systemd/system/$2.service.d/"*.conf; do
      [ -e "$conf" ] || continue
      gate=$(sed -n 's/^ConditionPathExists=!//p' "$conf")
      if [ -n "$gate" ] && [ -e "$gate" ]; then echo "skipped $2" >>"$LOG"; exit 0; fi
    done
    echo "started $2" >>"$LOG"; : >"$STATE/running-$2" ;;
esac"""

# apt-get install records each NAME=VERSION as installed and runs Loki's postinst for loki
# (grafana/loki tools/packaging/loki-postinstall.sh, cleanInstall: systemctl directly).
APT_GET = r"""echo "apt-get $*" >>"$LOG"
[ "$1" = update ] && { : >"$STATE/updated"; exit 0; }
for arg; do
  case "$arg" in *=*)
    name=${arg%%=*}; fresh=0; [ -e "$STATE/installed-$name" ] || fresh=1
    printf '%s' "${arg#*=}" >"$STATE/installed-$name"
    if [ "$name" = loki ] && [ "$fresh" = 1 ]; then
      systemctl daemon-reload || :; systemctl unmask loki || :; systemctl preset loki || :
      systemctl enable loki || :; systemctl restart loki || :
    fi ;;
  esac
done"""


def fake_host(tmp_path: Path, **extra: str) -> tuple[Path, Path, dict[str, str]]:
    root, state, log = tmp_path / "root", tmp_path / "state", tmp_path / "calls"
    host_dirs(root)
    state.mkdir()
    log.touch()
    stubs = {
        "dpkg-query": DPKG_QUERY,
        "systemctl": SYSTEMCTL,
        "apt-get": APT_GET,
        "apt-mark": 'echo "apt-mark $*" >>"$LOG"',
        "journalctl": ":",
        "sleep": ":",
        **extra,
    }
    env = {"PATH": stub_path(tmp_path, stubs), "LOG": str(log), "STATE": str(state), "ROOT": str(root)}
    return root, log, env


GRAFANA_INDEX = "https://apt.grafana.com stable/main amd64 Packages"


def madison(*versions: str, index: str = GRAFANA_INDEX, updated: tuple[str, ...] = ()) -> str:
    """An apt-cache stub: madison lists ``versions`` of any package (newest first, as apt does),
    after an ``apt-get update`` ``updated`` ones (of the binary index) too; ``show`` exits 0 whatever it is asked, as
    apt 2.6 does for NAME=VERSION with an unknown version (only a notice)."""
    rows = "".join(f'echo "      $2 | {v} | {index}"; ' for v in versions)
    fresh = "".join(f'echo "      $2 | {v} | {GRAFANA_INDEX}"; ' for v in updated)
    return (
        f'echo "apt-cache $*" >>"$LOG"; case "$1" in show) exit 0 ;; '
        f'madison) if [ -e "$STATE/updated" ]; then {fresh}:; fi; {rows}: ;; esac'
    )


@pytest.mark.parametrize(
    ("listed", "refreshes"),
    [((), True), (("3.3.1",), True), (("3.3.2",), False)],
    ids=["package-unknown", "other-version-only", "pinned-version-listed"],
)
def test_apt_lists_are_refreshed_only_when_the_pinned_version_is_not_in_them(
    tmp_path: Path, listed: tuple[str, ...], refreshes: bool
) -> None:
    """`apt-cache show loki=3.3.2` exits 0 even when apt knows no 3.3.2: the freshness check
    must look for the exact version (madison), or the install fails on stale lists."""
    root, log, env = fake_host(tmp_path, **{"apt-cache": madison(*listed, updated=("3.3.2",))})
    script = rooted(scripts.packages_script({"loki": "3.3.2"}), root)
    done = run_script(script, env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert ("apt-get update -q" in calls) == refreshes, calls
    assert any(c.startswith("apt-get install") and "loki=3.3.2" in c for c in calls)


def test_a_source_record_of_the_pinned_version_is_not_a_binary_one(tmp_path: Path) -> None:
    source_only = madison("3.3.2", index="https://x stable/main Sources", updated=("3.3.2",))
    root, log, env = fake_host(tmp_path, **{"apt-cache": source_only})
    done = run_script(rooted(scripts.packages_script({"loki": "3.3.2"}), root), env)
    assert done.returncode == 0, done.stderr
    assert "apt-get update -q" in log.read_text().splitlines()


def test_a_first_install_does_not_start_the_daemon_and_the_first_apply_does(tmp_path: Path) -> None:
    """Loki's postinst runs `systemctl unmask/enable/restart loki` itself (policy-rc.d does not
    apply): the packages step gates the unit, the apply step lifts the gate and starts it."""
    root, log, env = fake_host(tmp_path, **{"apt-cache": madison("3.3.2"), "curl": "echo 200"})
    packages = rooted(scripts.packages_script({"loki": "3.3.2"}, None, None, {"loki": "loki"}), root)
    done = run_script(packages, env)
    assert done.returncode == 0, done.stderr
    assert "systemctl restart loki" in log.read_text(), "the fake postinst ran"
    assert "started loki" not in log.read_text(), "loki started with the package's stock config"
    gate = Path(f"{root}{scripts.start_gate('loki')}")
    assert gate.exists()

    again = run_script(packages, env)  # installed now: no new gate, nothing started
    assert again.returncode == 0, again.stderr
    assert "already at their pinned versions" in again.stdout

    spec, staged = loki_spec(root)
    stage(staged, {"/etc/loki/config.yml": "validated\n", "/etc/loki/secrets/loki.env": "K=v\n"})
    applied = run_script(rooted(scripts.apply_script(spec), root), env)
    assert applied.returncode == 0, applied.stderr
    assert not gate.exists(), "the first activation lifts the gate"
    calls = log.read_text().splitlines()
    assert "started loki" in calls
    assert calls.index("started loki") > calls.index("skipped loki")


def test_a_failed_first_apply_keeps_the_daemon_stopped(tmp_path: Path) -> None:
    """Rolling back a first apply restores the package's stock files: the daemon must not be
    started on them, so the gate comes back instead."""
    root, log, env = fake_host(tmp_path, curl="echo 503")
    gate = Path(f"{root}{scripts.start_gate('loki')}")
    gate.parent.mkdir(parents=True)
    gate.write_text(f"[Unit]\nConditionPathExists=!{gate}\n")
    spec, staged = loki_spec(root)
    stage(staged, {"/etc/loki/config.yml": "validated\n", "/etc/loki/secrets/loki.env": "K=v\n"})
    dies = SYSTEMCTL.replace('echo "started $2" >>"$LOG"; : >"$STATE/running-$2"', 'echo "died $2" >>"$LOG"')
    assert dies != SYSTEMCTL
    env["PATH"] = stub_path(tmp_path, {"systemctl": dies})  # it exits at once on its new files
    done = run_script(rooted(scripts.apply_script(spec), root), env)
    assert done.returncode == 1
    assert "loki stays stopped until a configuration passes" in done.stderr
    assert gate.exists()
    assert "systemctl stop loki" in log.read_text().splitlines()


def loki_spec(root: Path) -> tuple[services.ServiceSpec, Path]:
    """A Loki-like service owned by the current user (so `install -o` works unprivileged), and
    where its staged files go under ``root``."""
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    spec = services.ServiceSpec(
        "loki",
        "loki",
        "loki",
        files=(
            services.ManagedFile("/etc/loki/config.yml", "0644", user, group),
            services.ManagedFile("/etc/loki/secrets/loki.env", "0600", user, group, secret=True),
        ),
        config_dirs=("/etc/loki",),
        reloadable=False,
        health=services.HealthCheck(url="http://127.0.0.1:3100/ready"),
    )
    return spec, Path(f"{root}{layout.STAGING_DIR}{root}")


def stage(staged: Path, files: dict[str, str]) -> None:
    for path, content in files.items():
        target = Path(f"{staged}{path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def test_applied_secrets_leave_the_staging_area_and_later_runs_converge(tmp_path: Path) -> None:
    """A staged secret is removed once applied; the next run (a changed plain file re-staged,
    no secret re-sent) still applies, from the live secret."""
    root, _, env = fake_host(tmp_path, curl="echo 200")
    spec, staged = loki_spec(root)
    stage(staged, {"/etc/loki/config.yml": "one\n", "/etc/loki/secrets/loki.env": "K=secret\n"})
    first = run_script(rooted(scripts.apply_script(spec), root), env)
    assert first.returncode == 0, first.stderr
    assert (root / "etc/loki/secrets/loki.env").read_text() == "K=secret\n"
    assert not Path(f"{staged}/etc/loki/secrets/loki.env").exists(), "the applied secret stayed staged"
    assert Path(f"{staged}/etc/loki/config.yml").exists(), "plain staged files stay (they are not secret)"

    stage(staged, {"/etc/loki/config.yml": "two\n"})
    second = run_script(rooted(scripts.apply_script(spec), root), env)
    assert second.returncode == 0, second.stderr
    assert (root / "etc/loki/config.yml").read_text() == "two\n"
    assert (root / "etc/loki/secrets/loki.env").read_text() == "K=secret\n"

    third = run_script(rooted(scripts.apply_script(spec), root), env)
    assert third.returncode == 0, third.stderr
    assert "obsstack: loki unchanged" in third.stdout


def test_a_never_applied_secret_that_is_not_staged_still_stops_the_apply(tmp_path: Path) -> None:
    root, _, env = fake_host(tmp_path, curl="echo 200")
    spec, staged = loki_spec(root)
    stage(staged, {"/etc/loki/config.yml": "one\n"})
    (root / "etc/loki/secrets").mkdir(parents=True)
    (root / "etc/loki/secrets/loki.env").write_text("K=the package's\n")
    done = run_script(rooted(scripts.apply_script(spec), root), env)
    assert done.returncode == 1
    assert f"{root}/etc/loki/secrets/loki.env was not staged" in done.stderr


def test_restaged_secrets_equal_to_the_live_ones_are_not_kept(tmp_path: Path) -> None:
    """The secrets payload carries every secret of the host, but only the services whose secrets
    changed apply again: a copy equal to the live file is dropped at staging time."""
    live, changed = tmp_path / "live/same.key", tmp_path / "live/new.key"
    live.parent.mkdir()
    live.write_text("unchanged secret\n")
    staging = tmp_path / "staging"
    script = scripts.stage_script(secret=True).replace(layout.STAGING_DIR, str(staging))
    payload = scripts.stage_payload({str(live): "unchanged secret\n", str(changed): "a new secret\n"})
    done = subprocess.run(["bash", "-c", script], input=payload, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert not Path(f"{staging}{live}").exists(), "a secret equal to the live one stayed staged"
    assert Path(f"{staging}{live}{scripts.APPLIED_SUFFIX}").exists()
    assert Path(f"{staging}{changed}").read_text() == "a new secret\n"
    assert not list(staging.glob(".incoming.*")), "no unpacked secrets are left aside"


def real_keys(home: Path, *names: str) -> tuple[dict[str, str], str]:
    """Real OpenPGP keys made with the machine's gpg: name -> fingerprint, and all of them armored
    in one file (as Grafana's gpg-full.key holds several)."""
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    home.mkdir(mode=0o700)
    fingerprints = {}
    for name in names:
        subprocess.run(
            [*gpg, "--quick-gen-key", f"{name} <{name}@example.net>", "ed25519", "sign", "1y"],
            check=True,
            capture_output=True,
        )
        listed = subprocess.run(
            [*gpg, "--with-colons", "--list-keys", f"{name}@example.net"], check=True, capture_output=True, text=True
        )
        fingerprints[name] = next(line.split(":")[9] for line in listed.stdout.splitlines() if line.startswith("fpr"))
    armored = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True, text=True).stdout
    return fingerprints, armored


def keyring_fingerprints(path: Path) -> set[str]:
    listed = subprocess.run(
        ["gpg", "--show-keys", "--with-colons", str(path)], check=True, capture_output=True, text=True
    )
    lines = listed.stdout.splitlines()
    return {lines[i + 1].split(":")[9] for i, line in enumerate(lines) if line.startswith("pub")}


@pytest.mark.parametrize("pin", ["signing", "none"], ids=["pinned-key-among-others", "no-pinned-key"])
def test_only_the_pinned_grafana_key_is_trusted(tmp_path: Path, pin: str) -> None:
    """Grafana's key file holds its current and its earlier (one leaked) keys: apt's keyring gets
    the pinned one only; a file without it is refused, naming what it holds."""
    keys, armored = real_keys(tmp_path / "gnupg", "signing", "leaked")
    pinned = (keys["signing"],) if pin == "signing" else ("0" * 40,)
    key_file = tmp_path / "served.key"
    key_file.write_text(armored)
    curl = 'echo "curl $*" >>"$LOG"; while [ $# -gt 1 ]; do [ "$1" = -o ] && cp "$KEY" "$2"; shift; done'
    root, log, env = fake_host(tmp_path, curl=curl, **{"apt-cache": madison("11.3.1")})
    env["KEY"] = str(key_file)
    (tmp_path / "state/installed-grafana").write_text("11.3.1")
    repo = scripts.GrafanaRepo("https://apt.grafana.com", pinned)
    script = rooted(scripts.packages_script({"grafana": "11.3.1"}, None, repo), root)
    done = run_script(script, env)
    assert [c.split()[-1] for c in log.read_text().splitlines() if c.startswith("curl")] == [
        "https://apt.grafana.com/gpg-full.key"
    ]
    keyring, source = root / "etc/apt/keyrings/grafana.asc", root / "etc/apt/sources.list.d/grafana.list"
    if pin == "none":
        assert done.returncode == 1
        assert keys["signing"] in done.stderr and keys["leaked"] in done.stderr, done.stderr
        assert "monitoring.grafana_apt_key_fingerprint" in done.stderr and "gpg --show-keys" in done.stderr
        assert not keyring.exists() and not source.exists()
        return
    assert done.returncode == 0, done.stderr
    assert keyring_fingerprints(keyring) == {keys["signing"]}, "the leaked key must not reach apt's keyring"
    assert f"deb [signed-by={keyring}] https://apt.grafana.com stable main" in source.read_text()
    again = run_script(script, env)
    assert again.returncode == 0, again.stderr
    assert len([c for c in log.read_text().splitlines() if c.startswith("curl")]) == 1, "the key is fetched once"


def test_a_keyring_from_the_old_gpg_key_is_fetched_again(tmp_path: Path) -> None:
    """Hosts set up from gpg.key (or another grafana_apt_url) hold a pinned key, but not the file
    Grafana's docs now use: the source file records the key URL, so the key is fetched once more."""
    keys, armored = real_keys(tmp_path / "gnupg", "signing")
    key_file = tmp_path / "served.key"
    key_file.write_text(armored)
    curl = 'echo "curl $*" >>"$LOG"; while [ $# -gt 1 ]; do [ "$1" = -o ] && cp "$KEY" "$2"; shift; done'
    root, log, env = fake_host(tmp_path, curl=curl, **{"apt-cache": madison("11.3.1")})
    env["KEY"] = str(key_file)
    (root / "etc/apt/keyrings").mkdir(parents=True)
    (root / "etc/apt/keyrings/grafana.asc").write_text(armored)
    (root / "etc/apt/sources.list.d/grafana.list").write_text(
        "deb [signed-by=/etc/apt/keyrings/grafana.asc] https://apt.grafana.com stable main\n"
    )
    (tmp_path / "state/installed-grafana").write_text("11.3.1")
    repo = scripts.GrafanaRepo("https://apt.grafana.com", (keys["signing"],))
    done = run_script(rooted(scripts.packages_script({"grafana": "11.3.1"}, None, repo), root), env)
    assert done.returncode == 0, done.stderr
    assert [c.split()[-1] for c in log.read_text().splitlines() if c.startswith("curl")] == [
        "https://apt.grafana.com/gpg-full.key"
    ]


@pytest.mark.parametrize(("answer", "applied"), [("200", True), ("400", False)], ids=["taken", "refused"])
def test_alloy_is_reloaded_through_its_endpoint_and_a_refusal_rolls_back(
    tmp_path: Path, example_config: stack_config.StackConfig, answer: str, applied: bool
) -> None:
    """SIGHUP leaves a refused config unnoticed (the old pipeline keeps running); /-/reload
    answers 400 and the apply restores the previous file."""
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    real = services._bases(example_config, "10.0.20.10")["alloy"]
    assert real.reload_url == "https://10.0.20.10:12345/-/reload"
    spec = dataclasses.replace(
        real, files=(services.ManagedFile("/etc/alloy/config.alloy", "0644", user, group),), validators=()
    )
    reload = f'echo "reload answer" >"$3"; printf {answer}'
    curl = f'echo "curl $*" >>"$LOG"; case "$*" in *-/reload*) {reload} ;; *) printf 200 ;; esac'
    root, log, env = fake_host(tmp_path, curl=curl)
    (root / "etc/alloy").mkdir(parents=True)
    (root / "etc/alloy/config.alloy").write_text("old\n")
    (tmp_path / "state/running-alloy").touch()
    staged = Path(f"{root}{layout.STAGING_DIR}{root}/etc/alloy/config.alloy")
    staged.parent.mkdir(parents=True)
    staged.write_text("new\n")
    done = run_script(rooted(scripts.apply_script(spec), root), env)
    calls = log.read_text().splitlines()
    reloads = [c for c in calls if c.startswith("curl") and "-/reload" in c]
    assert reloads, calls
    # Alloy on a monitoring host demands the host certificate (mutual TLS) on /-/reload too.
    assert all(re.search(rf"--cert \S*{layout.ALLOY_TLS_DIR}/{layout.CERT_FILE} ", c) for c in reloads), reloads
    assert not any(c.startswith("systemctl reload") for c in calls), "no SIGHUP reload"
    if applied:
        assert done.returncode == 0, done.stderr
        assert (root / "etc/alloy/config.alloy").read_text() == "new\n"
    else:
        assert done.returncode == 1
        assert "alloy refused the new configuration (HTTP 400)" in done.stderr
        assert (root / "etc/alloy/config.alloy").read_text() == "old\n"

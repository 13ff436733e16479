"""Every shell script the monitoring components send to a host, as pure functions.

The components (pulumi-command) and the real-host test run exactly these strings. Each script is
bash, passes shellcheck, is idempotent (a second run changes nothing and says so) and never
prints or passes a secret on a command line: secrets arrive on stdin and are written to 0600
files.
"""

from __future__ import annotations

import base64
import gzip
import io
import re
import shlex
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from components.monitoring.services import Directory, HealthCheck, ServiceSpec
from components.render import layout

HEADER = "#!/usr/bin/env bash\nset -euo pipefail\numask 022\n"
HEALTH_TIMEOUT_SECONDS = 60


def q(value: str) -> str:
    return shlex.quote(value)


def as_root(script: str, user: str) -> str:
    """The command line that runs a script as root over SSH (sudo unless already root)."""
    runner = "bash -c" if user == "root" else "sudo -n bash -c"
    return f"{runner} {q(script)}"


@dataclass(frozen=True)
class GrafanaRepo:
    url: str
    fingerprint: str


# ---------------------------------------------------------------------------------------------
# Packages: apt proxy, Grafana's signed repository, pinned versions held
# ---------------------------------------------------------------------------------------------

BOOTSTRAP_PACKAGES = ("ca-certificates", "curl", "gnupg")


def packages_script(
    packages: Mapping[str, str],
    apt_proxy: str | None = None,
    grafana: GrafanaRepo | None = None,
) -> str:
    """Install ``packages`` (name -> exact version) and hold them; nothing runs twice.

    Daemons do not start on install (policy-rc.d): they start once their validated config is in
    place. ``apt-get update`` runs only when a source changed or a pinned version is unknown.
    """
    lines = [HEADER, "export DEBIAN_FRONTEND=noninteractive", "sources_changed=0", ""]
    lines += _write_if_changed_function() + _proxy_lines(apt_proxy) + _apt_functions() + _bootstrap_lines()
    if grafana:
        lines += _grafana_repository_lines(grafana)
    lines += _install_pinned_lines(packages)
    return "\n".join(lines) + "\n"


def _write_if_changed_function() -> list[str]:
    return [
        "# write_if_changed FILE CONTENT: replace FILE only when its content differs",
        "write_if_changed() {",
        '  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then return 1; fi',
        '  printf \'%s\\n\' "$2" >"$1.obsstack-new"',
        '  mv -f "$1.obsstack-new" "$1"',
        "}",
        "",
    ]


def _proxy_lines(apt_proxy: str | None) -> list[str]:
    proxy_conf = "/etc/apt/apt.conf.d/80obsstack-proxy"
    if not apt_proxy:
        return [f"if [ -e {q(proxy_conf)} ]; then rm -f {q(proxy_conf)}; sources_changed=1; fi"]
    content = f'Acquire::http::Proxy "{apt_proxy}";\nAcquire::https::Proxy "{apt_proxy}";'
    return [
        f"if write_if_changed {q(proxy_conf)} {q(content)}; then sources_changed=1; fi",
        f"export http_proxy={q(apt_proxy)} https_proxy={q(apt_proxy)}",
    ]


def _apt_functions() -> list[str]:
    return [
        "",
        "# pinned PACKAGE=VERSION pairs not installed at that version yet",
        "missing() {",
        '  for pair in "$@"; do',
        '    if [ "$(dpkg-query -W -f=\'${Version}\' "${pair%%=*}" 2>/dev/null || true)" != "${pair#*=}" ]; then',
        "      printf '%s\\n' \"$pair\"",
        "    fi",
        "  done",
        "}",
        "",
        "apt_install() {",
        "  # Daemons start later, with their validated config, not with the package's defaults.",
        "  printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d",
        "  chmod 0755 /usr/sbin/policy-rc.d",
        "  trap 'rm -f /usr/sbin/policy-rc.d' EXIT",
        "  apt-get install -y -q --no-install-recommends --allow-change-held-packages \\",
        '    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"',
        "  rm -f /usr/sbin/policy-rc.d",
        "  trap - EXIT",
        "}",
        "",
        "refresh_if_needed() {",
        '  if [ "$sources_changed" = 1 ] || ! apt-cache show "$@" >/dev/null 2>&1; then',
        "    apt-get update -q",
        "    sources_changed=0",
        "  fi",
        "}",
        "",
    ]


def _bootstrap_lines() -> list[str]:
    return [
        f"for pkg in {' '.join(BOOTSTRAP_PACKAGES)}; do",
        '  if ! dpkg-query -W -f=\'${Status}\' "$pkg" 2>/dev/null | grep -q "install ok installed"; then',
        '    refresh_if_needed "$pkg"',
        '    apt_install "$pkg"',
        "  fi",
        "done",
        "",
    ]


def _grafana_repository_lines(grafana: GrafanaRepo) -> list[str]:
    """Grafana's APT source, its key accepted only with the pinned fingerprint."""
    keyring = "/etc/apt/keyrings/grafana.asc"
    key_url = f"{grafana.url.rstrip('/')}/gpg.key"
    source = f"deb [signed-by={keyring}] {grafana.url.rstrip('/')} stable main"
    return [
        "# Grafana's repository: the key is accepted only with the pinned fingerprint.",
        "key_fingerprints() {",
        '  gpg --show-keys --with-colons "$1" 2>/dev/null | awk -F: \'$1 == "fpr" {print $10}\'',
        "}",
        "install -d -m 0755 /etc/apt/keyrings",
        f"if ! key_fingerprints {keyring} | grep -qx {q(grafana.fingerprint)}; then",
        "  key_tmp=$(mktemp)",
        f'  if ! curl -fsSL --retry 2 --connect-timeout 15 --max-time 60 -o "$key_tmp" {q(key_url)}; then',
        '    rm -f "$key_tmp"',
        f"    echo {q(f'obsstack: cannot fetch {key_url}: the host needs HTTPS access to it')} >&2",
        "    echo 'obsstack: (or set monitoring.apt_proxy to a proxy that reaches it)' >&2",
        "    exit 1",
        "  fi",
        f'  if ! key_fingerprints "$key_tmp" | grep -qx {q(grafana.fingerprint)}; then',
        '    rm -f "$key_tmp"',
        f"    echo {q(f'obsstack: {key_url} is not the pinned key {grafana.fingerprint}: refusing it')} >&2",
        "    exit 1",
        "  fi",
        f'  install -m 0644 "$key_tmp" {keyring}',
        '  rm -f "$key_tmp"',
        "  sources_changed=1",
        "fi",
        f"if write_if_changed /etc/apt/sources.list.d/grafana.list {q(source)}; then sources_changed=1; fi",
        "",
    ]


def _install_pinned_lines(packages: Mapping[str, str]) -> list[str]:
    pairs = " ".join(q(f"{name}={version}") for name, version in sorted(packages.items()))
    names = " ".join(q(name) for name in sorted(packages))
    return [
        f"mapfile -t todo < <(missing {pairs})",
        'if [ "${#todo[@]}" -gt 0 ]; then',
        '  refresh_if_needed "${todo[@]}"',
        '  apt_install "${todo[@]}"',
        f"  apt-mark hold {names} >/dev/null",
        '  echo "obsstack: installed ${todo[*]}"',
        "else",
        f"  apt-mark hold {names} >/dev/null",
        '  echo "obsstack: packages already at their pinned versions"',
        "fi",
    ]


# ---------------------------------------------------------------------------------------------
# Users, groups and directories; the staging area the SSH user copies files into
# ---------------------------------------------------------------------------------------------


def layout_script(
    directories: Sequence[Directory],
    staging_owner: str,
    staging_dirs: Iterable[str],
    group_members: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Create the groups members need, directories with exact modes/owners, the staging tree, and
    group memberships (groups first: ``install -g`` fails on a group that does not exist)."""
    lines = [HEADER]
    for group in sorted({g for groups in (group_members or {}).values() for g in groups}):
        lines.append(f"getent group {q(group)} >/dev/null || groupadd --system {q(group)}")
    lines += [
        f"install -d -m 0755 -o root -g root {q(layout.CANDIDATE_PARENT)}",
        f"install -d -m 0700 -o {q(staging_owner)} {q(layout.STAGING_DIR)}",
    ]
    for d in directories:
        lines.append(f"install -d -m {d.mode} -o {q(d.owner)} -g {q(d.group)} {q(d.path)}")
    for path in sorted(set(staging_dirs)):
        lines.append(f"install -d -m 0700 -o {q(staging_owner)} {q(layout.STAGING_DIR + path)}")
    for user, groups in sorted((group_members or {}).items()):
        for group in groups:
            lines += [
                f'if ! id -nG {q(user)} | tr " " "\\n" | grep -qx {q(group)}; then',
                f"  usermod -aG {q(group)} {q(user)}",
                f"  echo {q(f'obsstack: added {user} to {group}')}",
                "fi",
            ]
    lines.append("echo obsstack: layout in place")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Staging: one stdin payload (base64 of a gzipped tar) per host for all plain files and one for
# all secrets, so a host costs two resources however many files it gets. Secrets are written
# 0600 by root (umask 077), never on a command line, never echoed; the apply step installs
# them with their final owner and mode.
# ---------------------------------------------------------------------------------------------


def stage_payload(files: Mapping[str, str]) -> str:
    """``files`` (absolute path -> content) as the stdin of ``stage_script``.

    Deterministic (sorted entries, fixed mtimes and owners) so unchanged files give an
    unchanged payload and the staging step does not re-run.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, content in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            archive.addfile(info, io.BytesIO(data))
    return base64.b64encode(gzip.compress(buffer.getvalue(), mtime=0)).decode() + "\n"


def stage_script(secret: bool) -> str:
    """Unpack a ``stage_payload`` from stdin into the staging tree (created by layout_script)."""
    what = "secrets" if secret else "files"
    header = HEADER.replace("umask 022", "umask 077") if secret else HEADER
    return "\n".join(
        [
            header,
            f"install -d -m 0700 {q(layout.STAGING_DIR)}",
            f"base64 -d | tar -xz --no-same-owner --no-same-permissions -C {q(layout.STAGING_DIR)}",
            f"echo {q(f'obsstack: staged {what}')}",
        ]
    )


# ---------------------------------------------------------------------------------------------
# Apply: validate a candidate tree, swap changed files atomically, reload, health check, and
# roll back if the service does not come back healthy.
# ---------------------------------------------------------------------------------------------


def _health_function(check: HealthCheck | None, unit: str | None) -> list[str]:
    if check is None:
        return ["healthy() { return 0; }"]
    # A daemon that exits on its new arguments is not waited for: fail at once and roll back.
    alive = (
        [
            f"    if ! systemctl is-active --quiet {q(unit)}; then",
            f"      echo {q(f'obsstack: {unit} is not running')} >&2",
            "      return 1",
            "    fi",
        ]
        if unit
        else []
    )
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "'%{http_code}'", "--max-time", "5"]
    if check.ca_file:
        curl += ["--cacert", q(check.ca_file)]
    if check.client_cert and check.client_key:
        curl += ["--cert", q(check.client_cert), "--key", q(check.client_key)]
    feed = ""
    if check.user and check.password_file:
        # curl reads `user = "name:password"` from stdin: the password never reaches argv.
        feed = f'printf \'user = "%s:%s"\\n\' {q(check.user)} "$(cat {q(check.password_file)})" | '
        curl += ["-K", "-"]
    curl.append(q(check.url))
    return [
        "healthy() {",
        f"  local deadline=$((SECONDS + {HEALTH_TIMEOUT_SECONDS})) code",
        '  while [ "$SECONDS" -lt "$deadline" ]; do',
        f"    code=$({feed}{' '.join(curl)} 2>/dev/null || true)",
        f'    if [ "$code" = {check.expect_status} ]; then return 0; fi',
        "    sleep 1",
        *alive,
        "  done",
        f'  echo "obsstack: {check.url} answered ${{code:-nothing}}, expected {check.expect_status}" >&2',
        "  return 1",
        "}",
    ]


def apply_script(spec: ServiceSpec) -> str:
    """Validate the staged files of one service and make them live, or change nothing.

    1. candidate = live config dirs + staged files (so relative references resolve);
    2. every validator runs on the candidate; the first failure exits with its message and
       the running config is untouched;
    3. each changed file is swapped in by rename (atomic per file), the old one kept aside;
    4. reload (or restart when unit arguments, drop-ins or a non-reloadable daemon changed);
    5. health check; on failure the previous files come back and the service is reloaded again.
    """
    lines = [HEADER, f"staging={q(layout.STAGING_DIR)}"]
    lines += _candidate_lines(spec) + _validate_lines(spec) + _health_function(spec.health, spec.unit)
    lines += _changed_lines(spec) + _swap_lines(spec)
    lines += _activate_lines(spec) if spec.unit else _plain_files_lines(spec)
    return "\n".join(lines) + "\n"


def _candidate_lines(spec: ServiceSpec) -> list[str]:
    """Step 1: the candidate tree, live config dirs plus the staged files, pruned to what ships."""
    lines = [
        f"candidate=$(mktemp -d {q(layout.CANDIDATE_PARENT + '/candidate.XXXXXX')})",
        'backup="$candidate.prev"',
        'mkdir -p "$backup"',
        'trap \'rm -rf "$candidate" "$backup"\' EXIT',
    ]
    for d in spec.config_dirs:
        lines += [
            f'mkdir -p "$candidate"{q(d)}',
            f'if [ -d {q(d)} ]; then cp -a {q(d)}/. "$candidate"{q(d)}/; fi',
        ]
    for m in spec.files:
        lines += [
            f'if [ ! -f "$staging"{q(m.path)} ]; then echo {q(f"obsstack: {m.path} was not staged")} >&2; exit 1; fi',
            f'install -D -m {m.mode} -o {q(m.owner)} -g {q(m.group)} "$staging"{q(m.path)} "$candidate"{q(m.path)}',
        ]
    for directory, pattern in spec.prune_dirs:
        managed = [m.path for m in spec.files if m.path.startswith(directory + "/")]
        remove = 'rm -f "$f"'
        if managed:
            remove = f'case "${{f#"$candidate"}}" in {"|".join(q(p) for p in managed)}) ;; *) {remove} ;; esac'
        lines += [
            f"# {directory} holds exactly the shipped {pattern} files",
            f'for f in "$candidate"{q(directory)}/{pattern}; do',
            '  [ -e "$f" ] || continue',
            f"  {remove}",
            "done",
        ]
    return lines


def _validate_lines(spec: ServiceSpec) -> list[str]:
    """Step 2: every validator on the candidate; the first failure leaves everything as it is."""
    lines: list[str] = []
    for validator in spec.validators:
        lines += [
            f"if ! out=$({validator} 2>&1); then",
            f"  echo {q(f'obsstack: {spec.name} rejected the new configuration; the running one is untouched:')} >&2",
            "  printf '%s\\n' \"$out\" >&2",
            "  exit 1",
            "fi",
        ]
    return lines


def _changed_lines(spec: ServiceSpec) -> list[str]:
    """Which live files differ from the candidate (content, mode or owner), and whether to restart."""
    lines = ["changed=()"] + (["restart=0"] if spec.unit else [])
    for m in spec.files:
        need_restart = "restart=1; " if spec.unit and spec.restart_needed_for(m.path) else ""
        lines += [
            f'if ! cmp -s "$candidate"{q(m.path)} {q(m.path)} || '
            f'[ "$(stat -c %a:%U:%G {q(m.path)})" != {q(f"{int(m.mode, 8):o}:{m.owner}:{m.group}")} ]; then',
            f"  changed+=({q(m.path)}); {need_restart}:",
            "fi",
        ]
    for directory, pattern in spec.prune_dirs:
        lines += [
            f"for f in {q(directory)}/{pattern}; do",
            '  [ -e "$f" ] || continue',
            '  if [ ! -e "$candidate$f" ]; then changed+=("$f"); fi',
            "done",
        ]
    return lines


def _swap_lines(spec: ServiceSpec) -> list[str]:
    """Step 3: nothing to do, or each changed file swapped in by rename, the old one kept aside."""
    active = f"systemctl is-active --quiet {q(spec.unit)}" if spec.unit else "true"
    return [
        f'if [ "${{#changed[@]}}" -eq 0 ] && {active}; then',
        f"  echo {q(f'obsstack: {spec.name} unchanged')}",
        "  exit 0",
        "fi",
        "",
        "# Swap: each file by rename; keep the previous version aside for a rollback.",
        'for f in "${changed[@]}"; do',
        '  if [ -e "$f" ]; then mkdir -p "$backup$(dirname "$f")"; cp -a "$f" "$backup$f"; fi',
        '  if [ -e "$candidate$f" ]; then',
        '    mkdir -p "$(dirname "$f")"',
        '    cp -a "$candidate$f" "$f.obsstack-new"',
        '    mv -f "$f.obsstack-new" "$f"',
        "  else",
        '    rm -f "$f"',
        "  fi",
        "done",
    ]


def _activate_lines(spec: ServiceSpec) -> list[str]:
    """Steps 4 and 5: reload or restart, health check, and the rollback when it fails."""
    unit = q(str(spec.unit))
    return [
        "activate() {",
        '  if [ "$restart" = 1 ] || ! systemctl is-active --quiet ' + unit + "; then",
        "    systemctl daemon-reload",
        f"    systemctl enable --quiet {unit}",
        f"    systemctl restart {unit}",
        "  else",
        f"    systemctl reload {unit}",
        "  fi",
        "}",
        "rollback() {",
        '  for f in "${changed[@]}"; do',
        '    if [ -e "$backup$f" ]; then cp -a "$backup$f" "$f.obsstack-new"; mv -f "$f.obsstack-new" "$f"; '
        'else rm -f "$f"; fi',
        "  done",
        "  restart=1",
        "  activate || true",
        "}",
        "if ! activate || ! healthy; then",
        "  # The daemon's own complaint first: the rollback's restart would push it out of the tail.",
        f"  journalctl -u {unit} -n 20 --no-pager >&2 || true",
        "  rollback",
        f"  echo {q(f'obsstack: {spec.name} did not come back healthy; the previous files are restored')} >&2",
        "  exit 1",
        "fi",
        f'echo "obsstack: {spec.name} $([ "$restart" = 1 ] && echo restarted || echo reloaded): ${{changed[*]}}"',
    ]


def _plain_files_lines(spec: ServiceSpec) -> list[str]:
    """Plain files may include systemd units and timers (other parts' jobs): load and enable them."""
    timers = [m.path for m in spec.files if re.fullmatch(r"/etc/systemd/system/[^/]+\.timer", m.path)]
    return [
        'for f in "${changed[@]}"; do',
        '  case "$f" in /etc/systemd/system/*) systemctl daemon-reload; break ;; esac',
        "done",
        *[f"systemctl enable --now --quiet {q(t.rsplit('/', 1)[1])}" for t in timers],
        'echo "obsstack: updated ${changed[*]}"',
    ]


def staging_dirs(specs: Iterable[ServiceSpec]) -> list[str]:
    """Every directory the staged files of these services live in (created by layout_script)."""
    return sorted({m.path.rsplit("/", 1)[0] for spec in specs for m in spec.files})

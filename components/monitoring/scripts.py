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
from components.render.pbs_certificate import CA_TRUST_DIR

HEADER = "#!/usr/bin/env bash\nset -euo pipefail\numask 022\n"
HEALTH_TIMEOUT_SECONDS = 60


def q(value: str) -> str:
    return shlex.quote(value)


# What a command inside a container starts with: no environment from the node's SSH session
# (`pct exec` keeps it by default on PVE 8, and PVE 9 changes that default: pve-container
# src/PVE/CLI/pct.pm, exec, `keep-env` "will be disabled by default with PVE 9"), a PATH of its own.
CONTAINER_ENV = "env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def as_root(script: str, user: str, container: int | None = None) -> str:
    """The command line that runs a script as root over SSH (sudo unless already root).

    ``container``: the VMID of an LXC guest on the host SSH reaches (its PVE node), the way
    Proxmox users run commands in containers: ``pct exec <vmid> -- <command>``, which is
    ``lxc-attach -n <vmid> -- <command>`` (pve-container src/PVE/CLI/pct.pm, exec), so the guest
    needs neither sshd nor sudo. Its stdin (the staged payloads) reaches the command: lxc-attach
    allocates no pseudo terminal when no standard descriptor is a terminal and attaches them as they
    are (lxc-attach(1)), and an SSH command without a TTY has pipes."""
    sudo = "" if user == "root" else "sudo -n "
    if container is not None:
        return f"{sudo}pct exec {int(container)} -- {CONTAINER_ENV} bash -c {q(script)}"
    return f"{sudo}bash -c {q(script)}"


@dataclass(frozen=True)
class GrafanaRepo:
    """Grafana's APT repository and the primary-key fingerprints its key file may hold."""

    url: str
    fingerprints: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Packages: apt proxy, Grafana's signed repository, pinned versions held
# ---------------------------------------------------------------------------------------------

BOOTSTRAP_PACKAGES = ("ca-certificates", "curl", "gnupg")
HOLD_DROPIN = "00-obsstack-hold.conf"


def start_gate(unit: str) -> str:
    """The drop-in that keeps ``unit`` from starting until the apply step has put its validated
    config in place (written by the packages step for a package installed for the first time)."""
    return f"/etc/systemd/system/{unit}.service.d/{HOLD_DROPIN}"


def _write_gate(path: str) -> str:
    """The command writing the start gate at ``path`` (a shell word: quoted path or "$var").

    A ``Condition*=`` that fails skips the start without failing it: systemd's unit_start()
    returns -ECOMM ("Starting requested but condition not met") and job.c finishes that job as
    JOB_DONE (systemd/systemd src/core/unit.c, src/core/job.c), so a postinst's
    ``systemctl restart`` under ``set -e`` still succeeds. A drop-in applies wherever the unit
    file lives: "Drop-in files under any of these directories take precedence over unit files
    wherever located" (systemd.unit(5)). A mask would not do: Loki's deb puts its unit in
    /etc/systemd/system (grafana/loki tools/packaging/nfpm.jsonnet), which outranks a
    ``mask --runtime`` in /run/systemd/system (systemd.unit(5), unit load path), dpkg replaces a
    mask symlink there with the unit file, and its postinst runs ``systemctl unmask loki``
    before ``enable`` and ``restart`` (tools/packaging/loki-postinstall.sh, cleanInstall)."""
    return (
        f"mkdir -p \"$(dirname {path})\" && printf '%s\\n' "
        "'# obsstack: not started until its validated configuration is in place (the apply step removes this)' "
        f"'[Unit]' \"ConditionPathExists=!\"{path} >{path}"
    )


def packages_script(
    packages: Mapping[str, str],
    apt_proxy: str | None = None,
    grafana: GrafanaRepo | None = None,
    units: Mapping[str, str] | None = None,
    releases: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """Install ``packages`` (name -> configured version, pinned by :func:`pin_pattern`); nothing
    runs twice.

    Daemons do not start on install: policy-rc.d covers invoke-rc.d/deb-systemd-invoke, and
    ``units`` (package -> its systemd unit) get a start gate when their package is installed for
    the first time, because Loki's postinst calls ``systemctl restart`` itself (see
    :func:`_write_gate`). The apply step's first activation lifts the gate. ``releases`` (Debian
    VERSION_ID -> packages) pins other versions on hosts of that release. ``apt-get update``
    runs only when a source changed or a pinned version is not in the package lists.
    """
    lines = [HEADER, "export DEBIAN_FRONTEND=noninteractive", "sources_changed=0", ""]
    lines += _write_if_changed_function() + _proxy_lines(apt_proxy) + _apt_functions() + _bootstrap_lines()
    if grafana:
        lines += _grafana_repository_lines(grafana)
    lines += _install_pinned_lines(packages, units or {}, releases or {})
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
        "# pinned PACKAGE=PIN pairs (PIN a version or a version glob) not installed at a matching version",
        "missing() {",
        "  local pair have",
        '  for pair in "$@"; do',
        "    have=$(dpkg-query -W -f='${Version}' \"${pair%%=*}\" 2>/dev/null || true)",
        "    # shellcheck disable=SC2254 # the pin is a glob on purpose",
        '    case "$have" in ${pair#*=}) ;; *) printf \'%s\\n\' "$pair" ;; esac',
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
        # `apt-cache show NAME=VERSION` is no test: an unknown version is only a notice and it
        # exits 0 (apt: VersionContainerInterface::FromString -> canNotGetVerFromVersionNumber
        # inserts at the helper's ErrorType, which apt-cache show sets to GlobalError::NOTICE in
        # apt-private/private-show.cc ShowPackage; seen with apt 2.6.1 on Debian 12). madison
        # prints "NAME | VERSION | index" only for versions in the configured indexes
        # (cmdline/apt-cache.cc Madison), never for dpkg's status file, walking the package's
        # version list, which apt's cache keeps newest first (apt-pkg/pkgcachegen.cc NewVersion
        # inserts by CompareVer); deb-src lines end in "Sources" and are skipped.
        "# candidate NAME [PIN]: the newest version of NAME in the package lists matching PIN (a glob)",
        "candidate() {",
        "  local pin=${2:-*} ver index",
        "  while IFS='|' read -r _ ver index; do",
        "    ver=${ver//[[:space:]]/}",
        '    case "$index" in *Sources*) continue ;; esac',
        "    # shellcheck disable=SC2254 # the pin is a glob on purpose",
        '    case "$ver" in $pin) printf \'%s\\n\' "$ver"; return 0 ;; esac',
        '  done < <(apt-cache madison "$1" 2>/dev/null)',
        "  return 1",
        "}",
        "",
        "# known NAME[=PIN]...: each package (at a version matching its pin) is in the package lists",
        "known() {",
        "  local pair",
        '  for pair in "$@"; do',
        '    case "$pair" in',
        '      *=*) candidate "${pair%%=*}" "${pair#*=}" >/dev/null || return 1 ;;',
        '      *) candidate "$pair" >/dev/null || return 1 ;;',
        "    esac",
        "  done",
        "}",
        "",
        "refresh_if_needed() {",
        '  if [ "$sources_changed" = 1 ] || ! known "$@"; then',
        "    apt-get update -q",
        "    sources_changed=0",
        "  fi",
        "}",
        "",
        "# hold_if_new PACKAGE UNIT: a package installed for the first time does not start its unit",
        "hold_if_new() {",
        '  if [ "$(dpkg-query -W -f=\'${Status}\' "$1" 2>/dev/null || true)" = "install ok installed" ]; then',
        "    return 0",
        "  fi",
        '  local gate="/etc/systemd/system/$2.service.d/' + HOLD_DROPIN + '"',
        "  " + _write_gate('"$gate"'),
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
    """Grafana's APT source, trusting only the pinned key(s) out of Grafana's key file.

    gpg-full.key, not gpg.key: Grafana's install docs fetch https://apt.grafana.com/gpg-full.key
    into /etc/apt/keyrings/grafana.asc after the December 2025 key rotation (grafana/grafana PR
    #116093), when apt reported NO_PUBKEY 963FA27710458545 with the old file: the repository is
    signed by B53AE77B...963FA27710458545 (voxpupuli/puppet-grafana PR #336). The file also holds
    Grafana's earlier keys (one of them leaked in 2023): only the pinned ones are exported into
    the keyring apt uses, so nothing else in the file is ever trusted. The source file names the
    key URL, so a host whose keyring came from another URL fetches the key again once.
    """
    keyring = "/etc/apt/keyrings/grafana.asc"
    base = grafana.url.rstrip("/")
    key_url = f"{base}/gpg-full.key"
    source = f"# signed-by key from {key_url}\ndeb [signed-by={keyring}] {base} stable main"
    allowed = " ".join(grafana.fingerprints)
    setting = "monitoring.grafana_apt_key_fingerprint"
    primary = '$1 == "pub" { want = 1; next } $1 == "sub" { want = 0 } $1 == "fpr" && want { print $10; want = 0 }'
    current = f'key_is_pinned {keyring} && [ "$(cat /etc/apt/sources.list.d/grafana.list 2>/dev/null)" = {q(source)} ]'
    refused = f"and none is pinned in {setting} ({allowed}): refusing it"
    how = [
        f"obsstack: read them yourself with: curl -fsSL {key_url} | gpg --show-keys --with-fingerprint",
        f"obsstack: if Grafana announced a new signing key, add its fingerprint to {setting}",
    ]
    return [
        "# Grafana's repository: only the pinned key(s) of its key file go into apt's keyring.",
        # `gpg --with-colons`: a "pub" record (primary key) or "sub" record (subkey) is followed
        # by its "fpr" record, the fingerprint in field 10 (gpg/gnupg doc/DETAILS).
        "primary_fingerprints() {",
        '  gpg --show-keys --with-colons "$1" 2>/dev/null |',
        f"    awk -F: {q(primary)}",
        "}",
        f"pinned={q(allowed)}",
        "# key_is_pinned FILE: FILE holds at least one primary key, and each one is in $pinned",
        "key_is_pinned() {",
        "  local fpr found=0",
        "  while read -r fpr; do",
        "    found=1",
        '    case " $pinned " in *" $fpr "*) ;; *) return 1 ;; esac',
        '  done < <(primary_fingerprints "$1" || true)',
        '  [ "$found" = 1 ]',
        "}",
        "install -d -m 0755 /etc/apt/keyrings",
        f"if ! {{ {current}; }}; then",
        "  key_tmp=$(mktemp)",
        "  gnupg_tmp=$(mktemp -d)",
        f'  if ! curl -fsSL --retry 2 --connect-timeout 15 --max-time 60 -o "$key_tmp" {q(key_url)}; then',
        '    rm -rf "$key_tmp" "$gnupg_tmp"',
        f"    echo {q(f'obsstack: cannot fetch {key_url}: the host needs HTTPS access to it')} >&2",
        "    echo 'obsstack: (or set monitoring.apt_proxy to a proxy that reaches it)' >&2",
        "    exit 1",
        "  fi",
        '  gpg --homedir "$gnupg_tmp" --batch --quiet --import "$key_tmp" 2>/dev/null || true',
        "  # shellcheck disable=SC2086 # one argument per pinned fingerprint",
        '  gpg --homedir "$gnupg_tmp" --batch --armor --export $pinned >"$key_tmp.pinned" 2>/dev/null || true',
        '  if ! key_is_pinned "$key_tmp.pinned"; then',
        '    found=$(primary_fingerprints "$key_tmp" | tr "\\n" " " || true)',
        '    rm -rf "$key_tmp" "$key_tmp.pinned" "$gnupg_tmp"',
        f'    echo "obsstack: {key_url} holds the primary key(s) ${{found:-(none) }}{refused}" >&2',
        *[f"    echo {q(line)} >&2" for line in how],
        "    exit 1",
        "  fi",
        f'  install -m 0644 "$key_tmp.pinned" {keyring}',
        '  rm -rf "$key_tmp" "$key_tmp.pinned" "$gnupg_tmp"',
        "  sources_changed=1",
        "fi",
        f"if write_if_changed /etc/apt/sources.list.d/grafana.list {q(source)}; then sources_changed=1; fi",
        "",
    ]


PREFERENCES = "/etc/apt/preferences.d/obsstack-pins"


def pin_pattern(version: str) -> str:
    """The apt pin for a configured version: its Debian revision left open (``1.5.0-1+b6`` pins
    ``1.5.0-*``; ``2.42.0+ds-5+deb12u1`` pins ``2.42.0+ds-*``), a version without one (Grafana's
    ``11.3.1``) exactly. A point release replaces a revision in the archive (``+deb12u1`` ->
    ``+deb12u2``) and the old one is gone from the indexes: an exact pin then finds nothing to
    install, while the upstream version, which is what was tested, stays the same. Debian
    versions are ``[epoch:]upstream[-revision]`` with the revision after the last hyphen (Debian
    Policy 5.6.12)."""
    upstream, hyphen, _revision = version.rpartition("-")
    return f"{upstream}-*" if hyphen else version


def preferences(packages: Mapping[str, str]) -> str:
    """apt_preferences(5) records holding each package at its pin: ``Pin: version`` takes a glob,
    and a priority of 1000 or more makes that version the candidate even over a newer one (or as
    a downgrade), so ``apt upgrade`` brings a pinned package only the Debian revisions of its
    upstream version (security and point-release fixes), never another upstream version."""
    stanzas = [
        f"Package: {name}\nPin: version {pin_pattern(version)}\nPin-Priority: 1001"
        for name, version in sorted(packages.items())
    ]
    return "# Managed by obsstack: the versions monitoring.versions pins.\n\n" + "\n\n".join(stanzas)


def _pin_lines(packages: Mapping[str, str], indent: str) -> list[str]:
    pins = " ".join(q(f"{name}={pin_pattern(version)}") for name, version in sorted(packages.items()))
    return [f"{indent}pins=({pins})", f"{indent}prefs={q(preferences(packages))}"]


def _release_lines(packages: Mapping[str, str], releases: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The pins for this host's Debian release (VERSION_ID of /etc/os-release): ``packages`` on
    Debian 12, ``releases[<id>]`` on the others listed."""
    if not releases:
        return _pin_lines(packages, "")
    supported = ", ".join(["12", *sorted(releases)])
    lines = [
        "# shellcheck source=/dev/null",
        "release=$(. /etc/os-release && printf '%s' \"${VERSION_ID:-}\")",
        'case "$release" in',
        "  12)",
        *_pin_lines(packages, "    "),
        "    ;;",
    ]
    for release, pinned in sorted(releases.items()):
        lines += [f"  {release})", *_pin_lines(pinned, "    "), "    ;;"]
    return [
        *lines,
        "  *)",
        f'    echo "obsstack: Debian ${{release:-(unknown)}} has no pinned versions (supported: {supported})" >&2',
        "    exit 1",
        "    ;;",
        "esac",
    ]


def _install_pinned_lines(
    packages: Mapping[str, str], units: Mapping[str, str], releases: Mapping[str, Mapping[str, str]]
) -> list[str]:
    names = " ".join(q(name) for name in sorted(packages))
    holds = [f"  hold_if_new {q(name)} {q(units[name])}" for name in sorted(packages) if name in units]
    return [
        *_release_lines(packages, releases),
        f'write_if_changed {q(PREFERENCES)} "$prefs" || :',
        # The pins replace the holds earlier runs set (held packages got no security revisions).
        # Only held ones: apt-mark refuses a package the lists do not know yet.
        "mapfile -t held < <(apt-mark showhold 2>/dev/null || true)",
        f"for name in {names}; do",
        '  case " ${held[*]} " in *" $name "*) apt-mark unhold "$name" >/dev/null ;; esac',
        "done",
        'mapfile -t todo < <(missing "${pins[@]}")',
        'if [ "${#todo[@]}" -gt 0 ]; then',
        '  refresh_if_needed "${todo[@]}"',
        "  resolved=()",
        '  for pair in "${todo[@]}"; do',
        '    if ! version=$(candidate "${pair%%=*}" "${pair#*=}"); then',
        '      echo "obsstack: no ${pair%%=*} matching ${pair#*=} in the package lists (monitoring.versions)" >&2',
        "      exit 1",
        "    fi",
        '    resolved+=("${pair%%=*}=$version")',
        "  done",
        *holds,
        '  apt_install "${resolved[@]}"',
        '  echo "obsstack: installed ${resolved[*]}"',
        "else",
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
    """Unpack a ``stage_payload`` from stdin into the staging tree (created by layout_script).

    Secrets equal to their live copy are not kept: the payload carries every secret of the host
    while only the services whose secrets changed re-apply (and remove theirs), so a kept copy
    would stay on the host. The marker left instead lets the apply step use the live copy.
    """
    if not secret:
        return "\n".join(
            [
                HEADER,
                f"install -d -m 0700 {q(layout.STAGING_DIR)}",
                f"base64 -d | tar -xz --no-same-owner --no-same-permissions -C {q(layout.STAGING_DIR)}",
                "echo 'obsstack: staged files'",
            ]
        )
    return "\n".join(
        [
            HEADER.replace("umask 022", "umask 077"),
            f"staging={q(layout.STAGING_DIR)}",
            'install -d -m 0700 "$staging"',
            'rm -rf "$staging"/.incoming.*  # an interrupted run\'s unpacked secrets',
            'incoming=$(mktemp -d "$staging/.incoming.XXXXXX")',
            "trap 'rm -rf \"$incoming\"' EXIT",
            'base64 -d | tar -xz --no-same-owner --no-same-permissions -C "$incoming"',
            "while IFS= read -r -d '' f; do",
            '  path=${f#"$incoming"}',
            '  mkdir -p "$(dirname "$staging$path")"',
            '  if [ -f "$path" ] && cmp -s "$f" "$path"; then',
            f'    rm -f "$f" "$staging$path"; : >"$staging$path{APPLIED_SUFFIX}"',
            "  else",
            '    mv -f "$f" "$staging$path"',
            "  fi",
            'done < <(find "$incoming" -type f -print0)',
            "echo 'obsstack: staged secrets'",
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
    curl = ["curl", "-sS", "-o", "/dev/null", "-w", "'%{http_code}'", "--max-time", "5", *_tls_args(check)]
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
    lines += _consumed_function(spec) + _changed_lines(spec) + _stale_lines(spec) + _swap_lines(spec)
    lines += _activate_lines(spec) if spec.unit else _plain_files_lines(spec)
    return "\n".join(lines) + "\n"


APPLIED_SUFFIX = ".obsstack-applied"


def _secrets(spec: ServiceSpec) -> list[str]:
    return [m.path for m in spec.files if m.secret]


def _consumed_function(spec: ServiceSpec) -> list[str]:
    """Once applied (or found unchanged), a staged secret is removed; an empty marker next to
    where it was says the live copy is the applied one, for later runs that stage no secrets.

    Plain staged files stay: they are not secret, the stage-files step re-sends them only when
    one changes, and they keep every re-run applying exactly the shipped content."""
    if not _secrets(spec):
        return []
    return [
        "consumed() {",
        f"  local f secrets=({' '.join(q(p) for p in _secrets(spec))})",
        '  for f in "${secrets[@]}"; do',
        f'    if [ -f "$staging$f" ]; then rm -f "$staging$f"; : >"$staging$f{APPLIED_SUFFIX}"; fi',
        "  done",
        "}",
    ]


def _consumed_call(spec: ServiceSpec, indent: str = "") -> list[str]:
    return [f"{indent}consumed"] if _secrets(spec) else []


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
        # A secret an earlier run applied and consumed is taken from its live copy.
        fallback = (
            [f'if [ ! -f "$src" ] && [ -f "$src{APPLIED_SUFFIX}" ] && [ -f {q(m.path)} ]; then src={q(m.path)}; fi']
            if m.secret
            else []
        )
        lines += [
            f'src="$staging"{q(m.path)}',
            *fallback,
            f'if [ ! -f "$src" ]; then echo {q(f"obsstack: {m.path} was not staged")} >&2; exit 1; fi',
            f'install -D -m {m.mode} -o {q(m.owner)} -g {q(m.group)} "$src" "$candidate"{q(m.path)}',
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
    if _shipped_units(spec):
        active = f'[ "${{#stale[@]}}" -eq 0 ] && [ -f {q(str(spec.units_manifest))} ]'
    return [
        f'if [ "${{#changed[@]}}" -eq 0 ] && {active}; then',
        *_consumed_call(spec, "  "),
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
    gate = q(start_gate(str(spec.unit)))
    return [
        # Held by the packages step (a first install): the first activation lifts the gate, and
        # a failed one puts it back rather than start the package's defaults.
        f"held=0; if [ -e {gate} ]; then held=1; fi",
        "activate() {",
        '  if [ "$restart" = 1 ] || ! systemctl is-active --quiet ' + unit + "; then",
        f"    rm -f {gate}",
        "    systemctl daemon-reload",
        f"    systemctl enable --quiet {unit}",
        f"    systemctl restart {unit}",
        "  else",
        *_reload_lines(spec),
        "  fi",
        "}",
        "rollback() {",
        '  for f in "${changed[@]}"; do',
        '    if [ -e "$backup$f" ]; then cp -a "$backup$f" "$f.obsstack-new"; mv -f "$f.obsstack-new" "$f"; '
        'else rm -f "$f"; fi',
        "  done",
        '  if [ "$held" = 1 ]; then',
        f"    systemctl stop {unit} || true",
        f"    {_write_gate(gate)}",
        "    systemctl daemon-reload || true",
        f"    echo {q(f'obsstack: {spec.unit} stays stopped until a configuration passes')} >&2",
        "    return 0",
        "  fi",
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
        *_consumed_call(spec),
        f'echo "obsstack: {spec.name} $([ "$restart" = 1 ] && echo restarted || echo reloaded): ${{changed[*]}}"',
    ]


def _tls_args(check: HealthCheck) -> list[str]:
    """curl's CA and client certificate for a check (mutual TLS where the service demands it).
    A check by name (tls.mode acme) reaches the address through ``--resolve`` (no DNS lookup) and
    trusts the system store beside the stack CA: the listener serves the stack CA's pair until
    lego's first certificate, then the ACME one (components/render/acme.py)."""
    args = ["--cacert", q(check.ca_file)] if check.ca_file else []
    if check.resolve:
        args += ["--capath", "/etc/ssl/certs", "--resolve", q(check.resolve)]
    if check.client_cert and check.client_key:
        args += ["--cert", q(check.client_cert), "--key", q(check.client_key)]
    return args


def _reload_lines(spec: ServiceSpec) -> list[str]:
    """Reload a running daemon: its own reload endpoint when it has one (it answers whether the
    new configuration was taken; it takes the health check's TLS), else systemd's reload."""
    if spec.reload_url is None:
        return [f"    systemctl reload {q(str(spec.unit))}"]
    answer = '"$candidate/.reload-answer"'
    tls = " ".join(_tls_args(spec.health)) + " " if spec.health else ""
    return [
        f"    code=$(curl -sS -o {answer} -w '%{{http_code}}' --max-time 60 {tls}{q(spec.reload_url)} || true)",
        '    if [ "$code" != 200 ]; then',
        f'      echo "obsstack: {spec.name} refused the new configuration (HTTP ${{code:-no answer}}):" >&2',
        f"      cat {answer} >&2 2>/dev/null || true",
        "      return 1",
        "    fi",
    ]


def _plain_files_lines(spec: ServiceSpec) -> list[str]:
    """Plain files may include systemd units and timers (other parts' jobs): load and enable them,
    and remove the ones this target shipped before and ships no more."""
    timers = [m.path for m in spec.files if re.fullmatch(r"/etc/systemd/system/[^/]+\.timer", m.path)]
    return [
        *_remove_stale_lines(spec),
        'for f in "${changed[@]}"; do',
        '  case "$f" in /etc/systemd/system/*) systemctl daemon-reload; break ;; esac',
        "done",
        # A CA for the system's trust store (render/pbs_certificate.py): update-ca-certificates(8).
        'for f in "${changed[@]}"; do',
        f'  case "$f" in {CA_TRUST_DIR}*) update-ca-certificates >/dev/null; break ;; esac',
        "done",
        *[f"systemctl enable --now --quiet {q(t.rsplit('/', 1)[1])}" for t in timers],
        *_record_units_lines(spec),
        *_consumed_call(spec),
        'echo "obsstack: updated ${changed[*]}"',
    ]


UNITS_DIR = "/var/lib/obsstack/units"
# The names of the units the plain-files step ships (tests/unit/test_stale_units.py holds every
# shipped one to them): with no manifest yet, installed units of these names that are not shipped
# are the ones an earlier version left.
OWN_UNIT_GLOBS = ("obs-*.service", "obs-*.timer", "obsstack-*.service", "obsstack-*.timer")


def units_manifest(target: str) -> str:
    """The manifest of the units one install target put on its host."""
    return f"{UNITS_DIR}/{target}.list"


def _shipped_units(spec: ServiceSpec) -> list[str]:
    if spec.units_manifest is None:
        return []
    return sorted(
        m.path.rsplit("/", 1)[1]
        for m in spec.files
        if re.fullmatch(r"/etc/systemd/system/[^/]+\.(service|timer)", m.path)
    )


def _stale_lines(spec: ServiceSpec) -> list[str]:
    """``stale``: units in the previous manifest (or, before the first one, installed units of
    obsstack's names) that this target no longer ships."""
    if not _shipped_units(spec):
        return []
    manifest = q(str(spec.units_manifest))
    globs = " ".join(f"/etc/systemd/system/{g}" for g in OWN_UNIT_GLOBS)
    return [
        f"shipped_units=({' '.join(q(u) for u in _shipped_units(spec))})",
        "stale=()",
        f"if [ -f {manifest} ]; then",
        f"  mapfile -t previous <{manifest}",
        "else",
        "  previous=()",
        f'  for f in {globs}; do [ -e "$f" ] && previous+=("${{f##*/}}"); done',
        "fi",
        'for unit in "${previous[@]}"; do',
        '  [ -n "$unit" ] || continue',
        '  case " ${shipped_units[*]} " in *" $unit "*) ;; *) stale+=("$unit") ;; esac',
        "done",
    ]


def _remove_stale_lines(spec: ServiceSpec) -> list[str]:
    """Timers first (they would start their service again), then the services: stopped, disabled,
    their unit files removed and systemd reloaded."""
    if not _shipped_units(spec):
        return []
    return [
        'if [ "${#stale[@]}" -gt 0 ]; then',
        "  mapfile -t stale < <(printf '%s\\n' \"${stale[@]}\" | sort -t. -k2,2r)",
        '  for unit in "${stale[@]}"; do',
        '    systemctl disable --now --quiet "$unit" || true',
        '    rm -f "/etc/systemd/system/$unit"',
        '    echo "obsstack: removed $unit (no longer shipped)"',
        "  done",
        "  systemctl daemon-reload",
        "  systemctl reset-failed || true",
        "fi",
    ]


def _record_units_lines(spec: ServiceSpec) -> list[str]:
    if not _shipped_units(spec):
        return []
    manifest = q(str(spec.units_manifest))
    return [
        f'install -d -m 0755 "$(dirname {manifest})"',
        f"printf '%s\\n' \"${{shipped_units[@]}}\" >{manifest}.new",
        f"mv -f {manifest}.new {manifest}",
    ]


def staging_dirs(specs: Iterable[ServiceSpec]) -> list[str]:
    """Every directory the staged files of these services live in (created by layout_script)."""
    return sorted({m.path.rsplit("/", 1)[0] for spec in specs for m in spec.files})

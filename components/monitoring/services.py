"""The services a host runs, as data: package, unit, which shipped files belong to it, how a
candidate config is validated, whether it reloads, and how its health is checked.

components/monitoring/scripts.py turns a :class:`ServiceSpec` into the shell script that applies
it; the components and the host test both use these specs, so they run the same commands.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from components.config import StackConfig
from components.render import HostFile, SecretFile, acme, alloy, cloud_init, layout, pbs_certificate, pve_exporter


@dataclass(frozen=True)
class Directory:
    path: str
    mode: str = "0755"
    owner: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class ManagedFile:
    path: str
    mode: str
    owner: str
    group: str
    secret: bool = False


@dataclass(frozen=True)
class HealthCheck:
    """An HTTP(S) check after a (re)load; ``expect_status`` 401 proves auth is enforced."""

    url: str
    ca_file: str | None = None
    user: str | None = None
    password_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    expect_status: int = 200
    # curl --resolve <name>:<port>:<address>: the url names the host, the connection goes to the address.
    resolve: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    unit: str | None
    package: str | None
    files: tuple[ManagedFile, ...] = ()
    config_dirs: tuple[str, ...] = ()
    validators: tuple[str, ...] = ()
    reloadable: bool = True
    health: HealthCheck | None = None
    prune_dirs: tuple[tuple[str, str], ...] = ()
    # An HTTP endpoint that reloads the daemon and answers 200 only when it took the new config.
    reload_url: str | None = None
    # Where the plain-files step records the units it installed, so a unit it no longer ships is
    # stopped, disabled and removed (set per install target by components/monitoring/install.py).
    units_manifest: str | None = None

    def restart_needed_for(self, path: str) -> bool:
        """Unit arguments and drop-ins only take effect on a restart."""
        return not self.reloadable or path.startswith(("/etc/default/", "/etc/systemd/"))


# Which service a shipped file belongs to: the first matching prefix wins.
OWNERS: tuple[tuple[str, str], ...] = (
    (layout.TLS_DIR + "/", "node_exporter"),
    (layout.NODE_EXPORTER_WEB, "node_exporter"),
    (layout.defaults_file("prometheus-node-exporter"), "node_exporter"),
    (layout.dropin("prometheus-node-exporter"), "node_exporter"),
    (layout.BLACKBOX_CONFIG, "blackbox"),
    (layout.BLACKBOX_WEB, "blackbox"),
    (layout.defaults_file("prometheus-blackbox-exporter"), "blackbox"),
    (layout.dropin("prometheus-blackbox-exporter"), "blackbox"),
    (layout.PUSHGATEWAY_WEB, "pushgateway"),
    (layout.defaults_file("prometheus-pushgateway"), "pushgateway"),
    (layout.dropin("prometheus-pushgateway"), "pushgateway"),
    (pbs_certificate.PROXY_CERT, "pbs_proxy"),
    (pbs_certificate.PROXY_KEY, "pbs_proxy"),
    (pbs_certificate.CA_TRUST_DIR, "ca_trust"),
    (pve_exporter.HOME + "/", "pve_exporter"),
    (pve_exporter.CONFIG_DIR + "/", "pve_exporter"),
    (pve_exporter.UNIT_PATH, "pve_exporter"),
    (layout.PROMETHEUS_DIR + "/alertmanager", "alertmanager"),
    (layout.defaults_file("prometheus-alertmanager"), "alertmanager"),
    (layout.dropin("prometheus-alertmanager"), "alertmanager"),
    (layout.PROMETHEUS_DIR + "/", "prometheus"),
    (layout.defaults_file("prometheus"), "prometheus"),
    (layout.dropin("prometheus"), "prometheus"),
    (layout.LOKI_DIR + "/", "loki"),
    (layout.dropin("loki"), "loki"),
    (layout.GRAFANA_DIR + "/", "grafana"),
    (layout.dropin("grafana-server"), "grafana"),
    (layout.ALLOY_DIR + "/", "alloy"),
    (layout.defaults_file("alloy"), "alloy"),
    (layout.dropin("alloy"), "alloy"),
)

# Order of application on a host: exporters first, Prometheus before Alertmanager (its health
# check reads the API password Prometheus' step installs), Alloy last (it ships to Loki).
ORDER = (
    "node_exporter",
    "blackbox",
    "pushgateway",
    "pve_exporter",
    "prometheus",
    "alertmanager",
    "loki",
    "grafana",
    "alloy",
    "pbs_proxy",
    "ca_trust",
    "files",
)
AGENT_SERVICES = ("node_exporter", "alloy", "pbs_proxy", "ca_trust")


def owner_of(path: str) -> str:
    """The first OWNERS prefix the path starts with (specific prefixes are listed first)."""
    for prefix, service in OWNERS:
        if path.startswith(prefix):
            return service
    return "files"


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _https(ip: str, port: int, path: str) -> str:
    return f"https://{_host(ip)}:{port}{path}"


def acme_name(config: StackConfig, ip: str) -> str | None:
    """The dns_name the host's ACME certificate names (tls.mode acme, monitoring hosts), else None."""
    if not acme.enabled(config):
        return None
    return next((h.dns_name for h in config.monitoring.hosts if str(ipaddress.ip_interface(h.address).ip) == ip), None)


def _human_facing_check(config: StackConfig, ip: str, port: int, path: str, **kwargs: Any) -> HealthCheck:
    """A check of Prometheus, Alertmanager or Grafana: by the host's dns_name when they serve its
    ACME certificate, else by address."""
    name = acme_name(config, ip)
    if name is None:
        return HealthCheck(_https(ip, port, path), **kwargs)
    return HealthCheck(f"https://{name}:{port}{path}", resolve=f"{name}:{port}:{_host(ip)}", **kwargs)


def _alloy_check(config: StackConfig, ip: str, path: str) -> HealthCheck:
    """Alloy on a monitoring host demands the host certificate (render/alloy.py); on loopback it
    is plain HTTP."""
    if not alloy.serves_lan(config, ip):
        return HealthCheck(url=f"http://127.0.0.1:{config.monitoring.ports.alloy}{path}")
    return HealthCheck(
        url=_https(ip, config.monitoring.ports.alloy, path),
        ca_file=f"{layout.ALLOY_TLS_DIR}/{layout.CA_FILE}",
        client_cert=f"{layout.ALLOY_TLS_DIR}/{layout.CERT_FILE}",
        client_key=f"{layout.ALLOY_TLS_DIR}/{layout.KEY_FILE}",
    )


def _bases(config: StackConfig, ip: str) -> dict[str, ServiceSpec]:
    """Every service with its unit, package, validators and health check (files added later)."""
    return {**_exporter_bases(config, ip), **_alerting_bases(config, ip), **_log_and_ui_bases(config, ip)}


def _exporter_bases(config: StackConfig, ip: str) -> dict[str, ServiceSpec]:
    ports = config.monitoring.ports
    ca = f"{layout.TLS_DIR}/{layout.CA_FILE}"
    has_promtool = "command -v promtool >/dev/null"
    return {
        "node_exporter": ServiceSpec(
            "node_exporter",
            "prometheus-node-exporter",
            "prometheus-node-exporter",
            reloadable=False,  # node exporter has no SIGHUP handler: Debian's ExecReload kills it
            config_dirs=(layout.PROMETHEUS_DIR,),
            # Agents have no promtool: there the health check (and its rollback) is the test.
            validators=(
                f'if {has_promtool}; then promtool check web-config "$candidate{layout.NODE_EXPORTER_WEB}"; fi',
            ),
            health=HealthCheck(url=_https(ip, ports.node_exporter, "/metrics"), ca_file=ca, expect_status=401),
        ),
        "blackbox": ServiceSpec(
            "blackbox",
            "prometheus-blackbox-exporter",
            "prometheus-blackbox-exporter",
            config_dirs=(layout.PROMETHEUS_DIR,),
            validators=(
                f'prometheus-blackbox-exporter --config.check --config.file="$candidate{layout.BLACKBOX_CONFIG}"',
                f'promtool check web-config "$candidate{layout.BLACKBOX_WEB}"',
            ),
            # 401 without credentials: probes need Prometheus' scrape user (TLS + basic auth).
            health=HealthCheck(url=_https(ip, ports.blackbox, "/-/healthy"), ca_file=ca, expect_status=401),
        ),
        "pushgateway": ServiceSpec(
            "pushgateway",
            "prometheus-pushgateway",
            "prometheus-pushgateway",
            reloadable=False,  # exporter-toolkit re-reads its web config per request; the rest are arguments
            config_dirs=(layout.PROMETHEUS_DIR,),
            validators=(f'promtool check web-config "$candidate{layout.PUSHGATEWAY_WEB}"',),
            # 401 without credentials: TLS is up and pushes need a writer's password.
            health=HealthCheck(url=_https(ip, ports.pushgateway, "/-/ready"), ca_file=ca, expect_status=401),
        ),
        # From PyPI into a venv (no Debian package): the validator installs the candidate lock's
        # venv, so a failed install leaves the running exporter as it is.
        "pve_exporter": ServiceSpec(
            "pve_exporter",
            pve_exporter.UNIT,
            None,
            validators=(pve_exporter.install_command(config),),
            reloadable=False,  # it reads its configuration once, at start
            health=HealthCheck(url=f"http://127.0.0.1:{ports.pve_exporter}/metrics"),
        ),
    }


def _alerting_bases(config: StackConfig, ip: str) -> dict[str, ServiceSpec]:
    ports = config.monitoring.ports
    ca = f"{layout.TLS_DIR}/{layout.CA_FILE}"
    api_password = f"{layout.SECRETS_DIR}/{layout.API_PASSWORD_FILE}"

    # With tls.mode acme the web configs name the ACME pair: the candidate gets the stack CA's pair
    # in its place until lego deployed one, so `promtool check web-config` can load it.
    seed = (acme.seed_command(layout.TLS_DIR, "prometheus", root='"$candidate"'),) if acme.enabled(config) else ()

    def api_check(port: int) -> HealthCheck:
        """/-/ready of Prometheus or Alertmanager: TLS + the API user's basic auth."""
        return _human_facing_check(
            config, ip, port, "/-/ready", ca_file=ca, user=layout.API_USER, password_file=api_password
        )

    return {
        "prometheus": ServiceSpec(
            "prometheus",
            "prometheus",
            "prometheus",
            config_dirs=(layout.PROMETHEUS_DIR,),
            validators=(
                *seed,
                f'promtool check config "$candidate{layout.PROMETHEUS_CONFIG}"',
                f'promtool check web-config "$candidate{layout.PROMETHEUS_WEB}"',
                *_on_data_disk(config, cloud_init.DATA_DIRS["prometheus"]),
            ),
            health=api_check(ports.prometheus),
            prune_dirs=((layout.RULES_DIR, "*.yml"),),
        ),
        "alertmanager": ServiceSpec(
            "alertmanager",
            "prometheus-alertmanager",
            "prometheus-alertmanager",
            config_dirs=(layout.PROMETHEUS_DIR,),
            validators=(
                *seed,
                f'amtool check-config "$candidate{layout.PROMETHEUS_DIR}/alertmanager.yml"',
                f'promtool check web-config "$candidate{layout.ALERTMANAGER_WEB}"',
            ),
            health=api_check(ports.alertmanager),
        ),
    }


def _log_and_ui_bases(config: StackConfig, ip: str) -> dict[str, ServiceSpec]:
    ports = config.monitoring.ports
    return {
        "loki": ServiceSpec(
            "loki",
            "loki",
            "loki",
            config_dirs=(layout.LOKI_DIR,),
            validators=(
                f'loki -verify-config -config.expand-env=true -config.file="$candidate{layout.LOKI_CONFIG}"',
                *_on_data_disk(config, cloud_init.DATA_DIRS["loki"]),
            ),
            reloadable=False,  # Loki re-reads only its runtime config; the main config needs a restart
            health=HealthCheck(
                url=_https(ip, ports.loki, "/ready"),
                ca_file=f"{layout.LOKI_TLS_DIR}/{layout.CA_FILE}",
                client_cert=f"{layout.LOKI_TLS_DIR}/{layout.CERT_FILE}",
                client_key=f"{layout.LOKI_TLS_DIR}/{layout.KEY_FILE}",
            ),
        ),
        "grafana": ServiceSpec(
            "grafana",
            "grafana-server",
            "grafana",
            config_dirs=(layout.GRAFANA_DIR,),
            reloadable=False,  # grafana-server has no reload
            health=_human_facing_check(
                config, ip, ports.grafana, "/api/health", ca_file=f"{layout.GRAFANA_TLS_DIR}/{layout.CA_FILE}"
            ),
        ),
        "alloy": ServiceSpec(
            "alloy",
            "alloy",
            "alloy",
            config_dirs=(layout.ALLOY_DIR,),
            # `alloy fmt` checks only the syntax; a SIGHUP reload that fails is only logged while
            # the old pipeline keeps running. /-/reload answers 400 Bad Request when the file
            # cannot be loaded (grafana/alloy docs/sources/reference/http/_index.md), and the
            # apply then rolls back.
            validators=(f'alloy fmt "$candidate{layout.ALLOY_CONFIG}" >/dev/null',),
            health=_alloy_check(config, ip, "/-/ready"),
            reload_url=_alloy_check(config, ip, "/-/reload").url,
        ),
        # PBS's proxy certificate from the stack's CA (render/pbs_certificate.py): reloaded, then
        # PBS must serve a chain the CA verifies for the host's address. The CA file is the node
        # exporter's, installed by its step before this one.
        "pbs_proxy": ServiceSpec(
            "pbs_proxy",
            pbs_certificate.PROXY_UNIT,
            None,
            health=HealthCheck(url=_https(ip, config.pbs.port, "/"), ca_file=f"{layout.TLS_DIR}/{layout.CA_FILE}"),
        ),
        # The stack's CA in the system trust store (update-ca-certificates runs on a change).
        "ca_trust": ServiceSpec("ca_trust", None, None),
        "files": ServiceSpec("files", None, None),
    }


def specs(
    config: StackConfig,
    ip: str,
    files: Iterable[HostFile],
    secrets: Iterable[SecretFile],
    only: Iterable[str] = ORDER,
) -> list[ServiceSpec]:
    """The ServiceSpecs for one host's shipped files, in application order."""
    bases = _bases(config, ip)
    grouped: dict[str, list[ManagedFile]] = {name: [] for name in bases}
    shell_scripts = []
    for f in files:
        grouped[owner_of(f.path)].append(ManagedFile(f.path, f.mode, f.owner, f.group))
        if owner_of(f.path) == "files" and _is_shell(f):
            shell_scripts.append(f.path)
    for s in secrets:
        grouped[owner_of(s.path)].append(ManagedFile(s.path, s.mode, s.owner, s.group, secret=True))
    wanted = set(only)
    # Plain files have no daemon to check them: their shell scripts must at least parse.
    bases["files"] = replace(
        bases["files"], validators=tuple(f'bash -n "$candidate{path}"' for path in sorted(shell_scripts))
    )
    result = []
    for name in ORDER:
        if name in wanted and grouped[name]:
            base = bases[name]
            result.append(
                ServiceSpec(
                    name=base.name,
                    unit=base.unit,
                    package=base.package,
                    files=tuple(sorted(grouped[name], key=lambda m: m.path)),
                    config_dirs=base.config_dirs,
                    validators=base.validators,
                    reloadable=base.reloadable,
                    health=base.health,
                    prune_dirs=base.prune_dirs,
                    reload_url=base.reload_url,
                )
            )
    return result


def _on_data_disk(config: StackConfig, directory: str) -> tuple[str, ...]:
    """A check that ``directory`` is on the data mount (same device) and the mount is not the root
    filesystem: Prometheus or Loki writing to the root disk would fill it in days."""
    mount = config.monitoring.vm.data_mount
    if mount is None:
        return ()
    return (
        f'[ "$(stat -c %d {directory})" = "$(stat -c %d {mount})" ] && [ "$(stat -c %d {mount})" != "$(stat -c %d /)" ]'
        f" || {{ echo '{directory} is not on the data disk mounted at {mount} (cloud-init mounts it at first boot;"
        f" see docs/monitoring-host.md): refusing to fill the root disk'; false; }}",
    )


def _is_shell(f: HostFile) -> bool:
    return f.mode == "0755" and f.content.startswith(("#!/bin/bash", "#!/bin/sh", "#!/usr/bin/env bash"))


# Debian/Grafana package of each service and the Versions field pinning it.
PACKAGE_VERSIONS = {
    "prometheus-node-exporter": "node_exporter",
    "prometheus-blackbox-exporter": "blackbox_exporter",
    "prometheus-pushgateway": "pushgateway",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "alertmanager",
    "loki": "loki",
    "grafana": "grafana",
    "alloy": "alloy",
}
GRAFANA_REPO_PACKAGES = frozenset({"loki", "grafana", "alloy"})

DIRECTORIES: dict[str, tuple[Directory, ...]] = {
    "node_exporter": (
        Directory(layout.PROMETHEUS_DIR),
        Directory(layout.TLS_DIR, "0750", "root", "prometheus"),
        Directory(layout.TEXTFILE_DIR, "0755", "prometheus", "prometheus"),
    ),
    "prometheus": (
        Directory(layout.SECRETS_DIR, "0750", "root", "prometheus"),
        Directory(layout.RULES_DIR),
    ),
    "pve_exporter": (Directory(pve_exporter.HOME), Directory(pve_exporter.CONFIG_DIR, "0750")),
    "alertmanager": (Directory(layout.ALERTMANAGER_DATA, "0750", "prometheus", "prometheus"),),
    "loki": (
        Directory(layout.LOKI_TLS_DIR, "0750", "root", "loki"),
        Directory(layout.LOKI_DIR + "/secrets", "0750", "root", "loki"),
        Directory(layout.LOKI_DATA, "0750", "loki", "loki"),
    ),
    "grafana": (
        Directory(layout.GRAFANA_TLS_DIR, "0750", "root", "grafana"),
        Directory(layout.GRAFANA_SECRETS_DIR, "0750", "root", "grafana"),
    ),
    "alloy": (
        Directory(layout.ALLOY_TLS_DIR, "0750", "root", "alloy"),
        Directory(layout.ALLOY_DATA, "0750", "alloy", "alloy"),
    ),
}
# Alloy reads the journal and /var/log. Loki's package creates its user with `adduser --system`
# and no `--group` (grafana/loki tools/packaging/loki-postinstall.sh), so its primary group is
# nogroup and no `loki` group exists: the layout step creates it for the files Loki must read.
GROUP_MEMBERS: dict[str, dict[str, tuple[str, ...]]] = {
    "alloy": {"alloy": ("adm", "systemd-journal")},
    "loki": {"loki": ("loki",)},
}


def packages(config: StackConfig, services: Iterable[ServiceSpec]) -> dict[str, str]:
    """Package name -> pinned version for these services."""
    versions = config.monitoring.versions
    services = list(services)
    pinned = {s.package: getattr(versions, PACKAGE_VERSIONS[s.package]) for s in services if s.package}
    if "prometheus-alertmanager" in pinned:
        # tools/silences and tools/oncall_drill run on the Alertmanager hosts with Debian's python3.
        pinned["python3-requests"] = versions.python3_requests
    if any(s.name == "pve_exporter" for s in services):
        pinned["python3-venv"] = versions.python3_venv
    if any(m.path == acme.RENEW_SCRIPT for s in services for m in s.files):
        pinned["lego"] = versions.lego  # the ACME renewer's client (components/render/acme.py)
    return pinned


# Packages whose Debian 13 version differs, by the Debian13Versions field pinning it there.
DEBIAN13_VERSIONS = {"prometheus-node-exporter": "node_exporter", "lego": "lego"}


def release_packages(config: StackConfig, services: Iterable[ServiceSpec]) -> dict[str, dict[str, str]]:
    """Debian VERSION_ID -> package -> version where a release differs from ``packages()``: agents
    go to PVE 8/PBS 3 (Debian 12) and PVE 9/PBS 4 (Debian 13) nodes alike."""
    bookworm = packages(config, services)
    trixie = config.monitoring.versions.debian13
    overrides = {name: getattr(trixie, field) for name, field in DEBIAN13_VERSIONS.items() if name in bookworm}
    return {"13": {**bookworm, **overrides}} if overrides else {}


def directories(services: Iterable[ServiceSpec]) -> list[Directory]:
    return [d for s in services for d in DIRECTORIES.get(s.name, ())]


def group_members(services: Iterable[ServiceSpec]) -> dict[str, tuple[str, ...]]:
    members: dict[str, tuple[str, ...]] = {}
    for s in services:
        members.update(GROUP_MEMBERS.get(s.name, {}))
    return members

"""Unit arguments (/etc/default/<unit>) and hardened systemd drop-ins for every daemon we run.

Debian's units already drop most privileges; the drop-ins add what they leave open (a strict
read-only root with explicit write paths, no kernel/clock/hostname access, a syscall allow-list,
only the address families the daemon needs, umask 077) and give the blackbox exporter exactly
CAP_NET_RAW for ICMP probes.

LXC guests get the same drop-in without the directives that need a mount namespace (see
:data:`MOUNT_NAMESPACE_KEYS`): under Proxmox's container AppArmor profile systemd cannot set one up
and the unit dies with 226/NAMESPACE before the daemon runs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.config import StackConfig
from components.inventory import Inventory, MonitoringNode
from components.render import HostFile, acme, alloy, layout, yamlout


@dataclass(frozen=True)
class Hardening:
    writable: tuple[str, ...] = ()
    protect_home: str = "yes"
    capabilities: tuple[str, ...] = ()
    address_families: tuple[str, ...] = ("AF_INET", "AF_INET6", "AF_UNIX")
    memory_deny_write_execute: bool = True


HARDENING: dict[str, Hardening] = {
    "prometheus": Hardening(writable=("/var/lib/prometheus",)),
    "prometheus-alertmanager": Hardening(writable=(layout.ALERTMANAGER_DATA,)),
    # node exporter reads every mount (statfs) and netlink for network stats.
    "prometheus-node-exporter": Hardening(
        protect_home="read-only", address_families=("AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK")
    ),
    "prometheus-blackbox-exporter": Hardening(
        capabilities=("CAP_NET_RAW",), address_families=("AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK")
    ),
    "prometheus-pushgateway": Hardening(writable=("/var/lib/prometheus",)),
    "loki": Hardening(writable=(layout.LOKI_DATA,)),
    "grafana-server": Hardening(writable=("/var/lib/grafana", "/var/log/grafana")),
    # Alloy reads the journal and /var/log, keeps positions under its data dir.
    "alloy": Hardening(
        writable=(layout.ALLOY_DATA,), address_families=("AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK")
    ),
}


# Keys that make systemd give the unit its own mount namespace: exec_needs_mount_namespace() in
# systemd's src/core/execute.c returns true for ReadWritePaths/ReadOnlyPaths/InaccessiblePaths,
# PrivateTmp, PrivateDevices, PrivateMounts, ProtectSystem, ProtectHome, ProtectKernelTunables,
# ProtectKernelModules, ProtectKernelLogs, ProtectControlGroups, ProtectProc, ProcSubset, any
# BindPaths/BindReadOnlyPaths and TemporaryFileSystem; systemd.exec(5) under PrivateMounts=:
# "PrivateTmp=, PrivateDevices=, ProtectSystem=, ProtectHome=, ReadOnlyPaths=,
# InaccessiblePaths=, ReadWritePaths=, ... also enable file system namespacing".
# Setting one up remounts / as rslave and mounts proc under /run/systemd/unit-root, which the
# AppArmor profile of an unprivileged (and a privileged) LXC container denies: "Failed to set up
# mount namespacing: Permission denied" / "Failed at step NAMESPACE", status 226 (lxc/lxc#3371 and
# lxc/lxc#2778 with Proxmox's lxc-container-default-cgns profile, systemd/systemd#17866 "not our
# bug"; only the container's nesting feature relaxes the profile, lxc/lxc#4668). LXC's own image
# generator turns the same keys off in containers without nesting (lxc/distrobuilder,
# distrobuilder/lxc.generator: ProtectProc, ProcSubset, ProtectControlGroups, ProtectKernelTunables
# always; ProtectHome, ProtectSystem, PrivateDevices, PrivateTmp, ProtectKernelLogs,
# ProtectKernelModules, ReadWritePaths in privileged ones too). The inventory does not record
# whether a container is privileged or nested, so every LXC guest leaves all of them out.
MOUNT_NAMESPACE_KEYS = frozenset(
    {
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectProc",
        "ProcSubset",
        "ReadWritePaths",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
    }
)

# What an LXC guest keeps, and why it works there:
# - NoNewPrivileges: prctl(PR_SET_NO_NEW_PRIVS) needs no privilege ("Any task can set
#   no_new_privs", kernel Documentation/userspace-api/no_new_privs.rst; NoNewPrivileges=yes in an
#   unprivileged container reported working in lxc/distrobuilder#873). Images built by distrobuilder
#   still turn it off without nesting: their generator writes NoNewPrivileges=no into
#   /run/systemd/system/service.d/zzz-lxc-service.conf, and drop-ins "are applied in lexicographic
#   order, regardless of which of the directories they reside in" (systemd.unit(5)), so that file
#   wins over obsstack.conf. Nothing here fights it.
# - SystemCallFilter/SystemCallArchitectures/SystemCallErrorNumber, RestrictAddressFamilies,
#   RestrictNamespaces, RestrictRealtime, RestrictSUIDSGID, LockPersonality,
#   MemoryDenyWriteExecute: seccomp filters, not mounts (systemd.exec(5)); installing one needs
#   CAP_SYS_ADMIN or no_new_privs (PR_SET_SECCOMP(2const), EACCES), and NoNewPrivileges=yes sets
#   the latter. systemd.exec(5), Sandboxing: they are "gracefully turned off ... in containers where
#   support for this is turned off" rather than failing the unit.
# - CapabilityBoundingSet/AmbientCapabilities: PR_CAPBSET_DROP needs CAP_SETPCAP only in the
#   caller's user namespace (kernel commit 160da84dbb39 "userns: Allow PR_CAPBSET_DROP in a user
#   namespace"). The empty set also drops CAP_SYS_MODULE, CAP_SYSLOG, CAP_SYS_RAWIO and CAP_MKNOD,
#   and @system-service does not contain @module, @raw-io or @mount (systemd
#   src/shared/seccomp-util.c), so the capability and syscall halves of the dropped
#   ProtectKernelModules/ProtectKernelLogs/PrivateDevices still hold.
# - ProtectClock: capability bounding set + seccomp + DeviceAllow=char-rtc (systemd.exec(5)), no
#   mount namespace; where BPF device control cannot be loaded systemd marks it unsupported
#   instead of failing (bpf_devices_supported(), systemd src/core/bpf-devices.c).
# - ProtectHostname: a UTS namespace, not a mount namespace; if unshare(CLONE_NEWUTS) is refused
#   systemd logs "UTS namespace setup is prohibited (container manager?), ignoring" and still
#   installs the sethostname() filter (apply_protect_hostname(), systemd src/core/exec-invoke.c).
LXC_NOTE = (
    "# LXC guest: no ProtectSystem/ProtectHome/PrivateTmp/PrivateDevices/ProtectKernel*/",
    "# ProtectControlGroups/ReadWritePaths here. Each needs a mount namespace, which the container's",
    "# AppArmor profile does not allow: the unit would fail with 226/NAMESPACE. Every seccomp and",
    "# capability restriction below still applies.",
)


def dropin_text(unit: str, extra: tuple[str, ...] = (), *, lxc: bool = False) -> str:
    """The drop-in for ``unit``; ``lxc`` leaves out what needs a mount namespace (see above)."""
    h = HARDENING[unit]
    caps = " ".join(h.capabilities)
    lines = [
        "# Managed by obsstack: hardening on top of the package's unit.",
        *(LXC_NOTE if lxc else ()),
        "[Service]",
        *extra,
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ProtectHome={h.protect_home}",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        f"MemoryDenyWriteExecute={'yes' if h.memory_deny_write_execute else 'no'}",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        f"RestrictAddressFamilies={' '.join(h.address_families)}",
        f"CapabilityBoundingSet={caps}",
        f"AmbientCapabilities={caps}",
        "UMask=0077",
        "Restart=on-failure",
        "RestartSec=5s",
    ]
    if h.writable:
        lines.append(f"ReadWritePaths={' '.join(h.writable)}")
    if lxc:
        lines = [line for line in lines if line.partition("=")[0] not in MOUNT_NAMESPACE_KEYS]
    return "\n".join(lines) + "\n"


def cluster_tls_config() -> str:
    """Alertmanager gossip over mutual TLS with the host certificates (both sides verify the
    stack's CA; peers dial addresses, which the certificates name). Format: prometheus/alertmanager
    docs/https.md, "Gossip Traffic" (``--cluster.tls-config``, experimental in 0.25)."""
    tls = layout.TLS_DIR
    document = {
        "tls_server_config": {
            "cert_file": f"{tls}/{layout.CERT_FILE}",
            "key_file": f"{tls}/{layout.KEY_FILE}",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": f"{tls}/{layout.CA_FILE}",
            "min_version": "TLS12",
        },
        "tls_client_config": {
            "ca_file": f"{tls}/{layout.CA_FILE}",
            "cert_file": f"{tls}/{layout.CERT_FILE}",
            "key_file": f"{tls}/{layout.KEY_FILE}",
        },
    }
    return "# Managed by obsstack.\n" + yamlout.dump(document)


def _args(*flags: str) -> str:
    return f"ARGS={shlex.quote(' '.join(flags))}\n"


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def node_exporter_files(host: str, ip: str, port: int, *, lxc: bool = False) -> list[HostFile]:
    """node exporter on any host: TLS + basic auth, textfile collector directory."""
    unit = "prometheus-node-exporter"
    return [
        HostFile(
            host,
            layout.defaults_file(unit),
            "# Managed by obsstack.\n"
            + _args(
                f"--web.listen-address={_addr(ip, port)}",
                f"--web.config.file={layout.NODE_EXPORTER_WEB}",
                f"--collector.textfile.directory={layout.TEXTFILE_DIR}",
                "--collector.systemd",
            ),
        ),
        HostFile(host, layout.dropin(unit), dropin_text(unit, lxc=lxc)),
    ]


def alloy_files(config: StackConfig, host: str, ip: str, *, lxc: bool = False) -> list[HostFile]:
    listen = _addr(alloy.listen_ip(config, ip), config.monitoring.ports.alloy)
    # No /debug/pprof (a heap dump holds every credential Alloy read): `--server.http.enable-pprof`,
    # default true (grafana/agent CHANGELOG.md, "Add CLI flag --server.http.enable-pprof to
    # grafana-agent-flow"; Alloy docs reference/cli/run). No support bundle (/-/support: config,
    # environment and logs in plain text; new in Alloy 1.5, docs/alloy/v1.5/troubleshoot/
    # support_bundle): the flag is `server.http.disable-support-bundle` in grafana/alloy
    # internal/alloycli/cmd_run.go (`BoolVar(&r.disableSupportBundle,
    # "server.http.disable-support-bundle", ...)`, as in docs reference/cli/run.md); the bare
    # `--disable-support-bundle` of the troubleshooting page is grafana/agent's static-mode flag.
    custom = (
        f"--server.http.listen-addr={listen} --storage.path={layout.ALLOY_DATA} --disable-reporting"
        " --server.http.enable-pprof=false --server.http.disable-support-bundle"
    )
    defaults = (
        "# Managed by obsstack.\n"
        f"CONFIG_FILE={layout.ALLOY_CONFIG}\n"
        f"CUSTOM_ARGS={shlex.quote(custom)}\n"
        "RESTART_ON_UPGRADE=true\n"
    )
    return [
        HostFile(host, layout.defaults_file("alloy"), defaults),
        HostFile(host, layout.dropin("alloy"), dropin_text("alloy", lxc=lxc)),
    ]


def monitoring_files(config: StackConfig, inventory: Inventory, node: MonitoringNode) -> list[HostFile]:
    mon = config.monitoring
    ports = mon.ports
    ip = node.ip
    peers = [m for m in inventory.monitoring if m.name != node.name]
    cluster = (
        [f"--cluster.listen-address={_addr(ip, ports.alertmanager_cluster)}"]
        + [f"--cluster.peer={_addr(p.ip, ports.alertmanager_cluster)}" for p in peers]
        + [f"--cluster.tls-config={layout.ALERTMANAGER_CLUSTER_TLS}"]
        if peers
        else ["--cluster.listen-address="]  # a single Alertmanager: no gossip port open
    )
    defaults = {
        "prometheus": _args(
            f"--config.file={layout.PROMETHEUS_CONFIG}",
            f"--web.config.file={layout.PROMETHEUS_WEB}",
            f"--web.listen-address={_addr(ip, ports.prometheus)}",
            f"--web.external-url=https://{_addr(node.public_host, ports.prometheus)}/",
            f"--storage.tsdb.path={layout.PROMETHEUS_DATA}",
            f"--storage.tsdb.retention.time={mon.retention}",
            f"--storage.tsdb.retention.size={mon.retention_size_gb}GB",
        ),
        "prometheus-alertmanager": _args(
            f"--config.file={layout.PROMETHEUS_DIR}/alertmanager.yml",
            f"--web.config.file={layout.ALERTMANAGER_WEB}",
            f"--web.listen-address={_addr(ip, ports.alertmanager)}",
            f"--web.external-url=https://{_addr(node.public_host, ports.alertmanager)}/",
            f"--storage.path={layout.ALERTMANAGER_DATA}",
            *cluster,
        ),
        "prometheus-blackbox-exporter": _args(
            f"--config.file={layout.BLACKBOX_CONFIG}",
            f"--web.listen-address={_addr(ip, ports.blackbox)}",
            f"--web.config.file={layout.BLACKBOX_WEB}",
        ),
        "prometheus-pushgateway": _args(
            f"--web.listen-address={_addr(ip, ports.pushgateway)}",
            f"--web.config.file={layout.PUSHGATEWAY_WEB}",
            "--persistence.file=/var/lib/prometheus/pushgateway.data",
        ),
    }
    shipped = [
        HostFile(node.name, layout.defaults_file(unit), "# Managed by obsstack.\n" + text)
        for unit, text in defaults.items()
    ]
    if peers:
        shipped.append(
            HostFile(node.name, layout.ALERTMANAGER_CLUSTER_TLS, cluster_tls_config(), mode="0640", group="prometheus")
        )
    # With tls.mode acme the human-facing daemons start on the stack CA's pair until lego's first
    # certificate is deployed (components/render/acme.py, seed_command).
    seeds = {
        "prometheus": acme.exec_start_pre(config, layout.TLS_DIR, "prometheus"),
        "prometheus-alertmanager": acme.exec_start_pre(config, layout.TLS_DIR, "prometheus"),
        "grafana-server": acme.exec_start_pre(config, layout.GRAFANA_TLS_DIR, "grafana"),
    }
    shipped += [HostFile(node.name, layout.dropin(unit), dropin_text(unit, seeds.get(unit, ()))) for unit in defaults]
    loki_exec = (
        "ExecStart=",
        f"ExecStart=/usr/bin/loki -config.file={layout.LOKI_CONFIG} -config.expand-env=true",
        f"EnvironmentFile=-{layout.LOKI_ENV}",
    )
    shipped.append(HostFile(node.name, layout.dropin("loki"), dropin_text("loki", loki_exec)))
    grafana = dropin_text("grafana-server", seeds["grafana-server"])
    shipped.append(HostFile(node.name, layout.dropin("grafana-server"), grafana))
    shipped += node_exporter_files(node.name, ip, ports.node_exporter)
    shipped += alloy_files(config, node.name, ip)
    return shipped


def is_lxc_guest(config: StackConfig, host: str) -> bool:
    """True when ``host`` is an inventory asset of kind lxc (monitoring hosts are VMs)."""
    asset = config.inventory.by_name().get(host)
    return asset is not None and asset.kind == "lxc"


def agent_files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    shipped: list[HostFile] = []
    for asset in inventory.managed_hosts:
        ip = str(asset.address)
        lxc = is_lxc_guest(config, asset.name)
        shipped += node_exporter_files(asset.name, ip, config.monitoring.ports.node_exporter, lxc=lxc)
        shipped += alloy_files(config, asset.name, ip, lxc=lxc)
    return shipped


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    shipped: list[HostFile] = []
    for node in inventory.monitoring:
        shipped += monitoring_files(config, inventory, node)
    return shipped + agent_files(config, inventory)

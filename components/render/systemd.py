"""Unit arguments (/etc/default/<unit>) and hardened systemd drop-ins for every daemon we run.

Debian's units already drop most privileges; the drop-ins add what they leave open (a strict
read-only root with explicit write paths, no kernel/clock/hostname access, a syscall allow-list,
only the address families the daemon needs, umask 077) and give the blackbox exporter exactly
CAP_NET_RAW for ICMP probes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from components.config import StackConfig
from components.inventory import Inventory, MonitoringNode
from components.render import HostFile, alloy, layout


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


def dropin_text(unit: str, extra: tuple[str, ...] = ()) -> str:
    h = HARDENING[unit]
    caps = " ".join(h.capabilities)
    lines = [
        "# Managed by obsstack: hardening on top of the package's unit.",
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
    return "\n".join(lines) + "\n"


def _args(*flags: str) -> str:
    return f"ARGS={shlex.quote(' '.join(flags))}\n"


def _addr(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def node_exporter_files(host: str, ip: str, port: int) -> list[HostFile]:
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
        HostFile(host, layout.dropin(unit), dropin_text(unit)),
    ]


def alloy_files(config: StackConfig, host: str, ip: str) -> list[HostFile]:
    listen = _addr(alloy.listen_ip(config, ip), config.monitoring.ports.alloy)
    custom = f"--server.http.listen-addr={listen} --storage.path={layout.ALLOY_DATA} --disable-reporting"
    defaults = (
        "# Managed by obsstack.\n"
        f"CONFIG_FILE={layout.ALLOY_CONFIG}\n"
        f"CUSTOM_ARGS={shlex.quote(custom)}\n"
        "RESTART_ON_UPGRADE=true\n"
    )
    return [
        HostFile(host, layout.defaults_file("alloy"), defaults),
        HostFile(host, layout.dropin("alloy"), dropin_text("alloy")),
    ]


def monitoring_files(config: StackConfig, inventory: Inventory, node: MonitoringNode) -> list[HostFile]:
    mon = config.monitoring
    ports = mon.ports
    ip = node.ip
    peers = [m for m in inventory.monitoring if m.name != node.name]
    cluster = (
        [f"--cluster.listen-address={_addr(ip, ports.alertmanager_cluster)}"]
        + [f"--cluster.peer={_addr(p.ip, ports.alertmanager_cluster)}" for p in peers]
        if peers
        else ["--cluster.listen-address="]  # a single Alertmanager: no gossip port open
    )
    defaults = {
        "prometheus": _args(
            f"--config.file={layout.PROMETHEUS_CONFIG}",
            f"--web.config.file={layout.PROMETHEUS_WEB}",
            f"--web.listen-address={_addr(ip, ports.prometheus)}",
            f"--web.external-url=https://{_addr(ip, ports.prometheus)}/",
            f"--storage.tsdb.path={layout.PROMETHEUS_DATA}",
            f"--storage.tsdb.retention.time={mon.retention}",
            f"--storage.tsdb.retention.size={mon.retention_size_gb}GB",
        ),
        "prometheus-alertmanager": _args(
            f"--config.file={layout.PROMETHEUS_DIR}/alertmanager.yml",
            f"--web.config.file={layout.ALERTMANAGER_WEB}",
            f"--web.listen-address={_addr(ip, ports.alertmanager)}",
            f"--web.external-url=https://{_addr(ip, ports.alertmanager)}/",
            f"--storage.path={layout.ALERTMANAGER_DATA}",
            *cluster,
        ),
        "prometheus-blackbox-exporter": _args(
            f"--config.file={layout.BLACKBOX_CONFIG}",
            f"--web.listen-address={_addr(ip, ports.blackbox)}",
        ),
        "prometheus-pushgateway": _args(
            f"--web.listen-address={_addr(ip, ports.pushgateway)}",
            "--persistence.file=/var/lib/prometheus/pushgateway.data",
        ),
    }
    shipped = [
        HostFile(node.name, layout.defaults_file(unit), "# Managed by obsstack.\n" + text)
        for unit, text in defaults.items()
    ]
    shipped += [HostFile(node.name, layout.dropin(unit), dropin_text(unit)) for unit in defaults]
    loki_exec = (
        "ExecStart=",
        f"ExecStart=/usr/bin/loki -config.file={layout.LOKI_CONFIG} -config.expand-env=true",
        f"EnvironmentFile=-{layout.LOKI_ENV}",
    )
    shipped.append(HostFile(node.name, layout.dropin("loki"), dropin_text("loki", loki_exec)))
    shipped.append(HostFile(node.name, layout.dropin("grafana-server"), dropin_text("grafana-server")))
    shipped += node_exporter_files(node.name, ip, ports.node_exporter)
    shipped += alloy_files(config, node.name, ip)
    return shipped


def agent_files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    shipped: list[HostFile] = []
    for asset in inventory.managed_hosts:
        ip = str(asset.address)
        shipped += node_exporter_files(asset.name, ip, config.monitoring.ports.node_exporter)
        shipped += alloy_files(config, asset.name, ip)
    return shipped


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    shipped: list[HostFile] = []
    for node in inventory.monitoring:
        shipped += monitoring_files(config, inventory, node)
    return shipped + agent_files(config, inventory)

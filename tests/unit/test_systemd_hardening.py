"""Hardening drop-ins per host kind: LXC guests get none of the directives that need a mount namespace.

In an unprivileged Proxmox container systemd cannot set up a unit's mount namespace (the container's
AppArmor profile denies the mounts) and the unit fails with 226/NAMESPACE; see the comments on
``MOUNT_NAMESPACE_KEYS`` in components/render/systemd.py for the sources.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import HostFile, systemd

# Written out here rather than imported, so an emptied constant in the renderer cannot pass.
MOUNT_NAMESPACE = {
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
# NoNewPrivileges plus the seccomp-, capability- and UTS-based restrictions an LXC guest keeps.
KEPT = {
    "NoNewPrivileges": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
    "SystemCallErrorNumber": "EPERM",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "UMask": "0077",
}
LXC_GUESTS = ("dns1", "jellyfin", "mqtt")  # kind: lxc in Pulumi.prod.yaml
FULL_HOSTS = ("gitea", "pve1", "pbs1", "mon-1")  # a VM, a PVE node, the PBS host, a monitoring host
AGENT_UNITS = ("prometheus-node-exporter", "alloy")


def _service(text: str) -> configparser.SectionProxy:
    ini = configparser.ConfigParser(strict=False, interpolation=None)
    ini.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
    ini.read_string(text)
    return ini["Service"]


def _dropins(config: stack_config.StackConfig, inventory: stack_inventory.Inventory, host: str) -> dict[str, HostFile]:
    """unit -> its hardening drop-in on ``host``."""
    found = {}
    for item in systemd.files(config, inventory):
        if item.host == host and item.path.endswith(".service.d/obsstack.conf"):
            found[item.path.removeprefix("/etc/systemd/system/").removesuffix(".service.d/obsstack.conf")] = item
    return found


@pytest.mark.parametrize("host", LXC_GUESTS)
def test_lxc_guest_dropins_need_no_mount_namespace(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory, host: str
) -> None:
    assert example_config.inventory.by_name()[host].kind == "lxc"
    dropins = _dropins(example_config, example_inventory, host)
    assert set(dropins) == set(AGENT_UNITS)
    for unit, item in dropins.items():
        assert item.path == f"/etc/systemd/system/{unit}.service.d/obsstack.conf"  # the path does not move
        service = _service(item.content)
        assert not MOUNT_NAMESPACE & set(service), f"{host} {unit}: {sorted(MOUNT_NAMESPACE & set(service))}"
        for key, value in KEPT.items():
            assert service.get(key) == value, f"{host} {unit}: {key}"
        assert "AF_NETLINK" in service["RestrictAddressFamilies"].split()
        assert "226/NAMESPACE" in item.content  # the drop-in says why


@pytest.mark.parametrize("host", FULL_HOSTS)
def test_other_hosts_keep_the_full_hardening_lxc_guests_lose_only_mount_namespaces(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory, host: str
) -> None:
    kind = {a.name: a.kind for a in example_config.inventory.assets}.get(host, "monitoring host")
    assert kind in ("vm", "pve_node", "pbs_host", "monitoring host")
    guest = _dropins(example_config, example_inventory, "jellyfin")
    full = _dropins(example_config, example_inventory, host)
    for unit in AGENT_UNITS:
        service = _service(full[unit].content)
        for key, value in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes")):
            assert service[key] == value, f"{host} {unit}: {key}"
        for key in ("ProtectHome", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups"):
            assert key in service, f"{host} {unit}: {key}"
        for key, value in KEPT.items():
            assert service.get(key) == value, f"{host} {unit}: {key}"
        lost = set(service) - set(_service(guest[unit].content))
        assert lost, f"{unit}: the LXC guest has the same drop-in as {host}"
        assert lost <= MOUNT_NAMESPACE, f"{unit}: the LXC guest also lost {sorted(lost - MOUNT_NAMESPACE)}"
    assert "alloy" in full and full["alloy"].content == systemd.dropin_text("alloy")


def _verify(analyze: str, root: Path, unit: str, dropin: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify a stand-in unit plus ``dropin`` under a private --root.

    The stand-in has no default dependencies (the root holds no targets) and every ExecStart= binary
    exists as a stub, so what is left to report is the drop-in itself: an unknown key, a value
    systemd cannot parse, an unknown syscall group. Those are warnings with exit status 0, so the
    caller checks stderr too.
    """
    units = root / "etc/systemd/system"
    (units / f"{unit}.service.d").mkdir(parents=True)
    (units / f"{unit}.service").write_text(
        f"[Unit]\nDescription=stand-in for {unit}\nDefaultDependencies=no\n\n[Service]\nExecStart=/usr/bin/true\n"
    )
    (units / f"{unit}.service.d/obsstack.conf").write_text(dropin)
    binaries = {"/usr/bin/true"}
    for line in dropin.splitlines():
        if line.startswith("ExecStart=/"):
            binaries.add(line.removeprefix("ExecStart=").split()[0])
    for binary in binaries:
        stub = root / binary.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", f"{unit}.service"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_dropin_variant_passes_systemd_analyze_verify(
    example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory, tmp_path: Path
) -> None:
    """systemd-analyze verify works without systemd as PID 1 (it only loads units): every distinct
    drop-in shipped anywhere, the full ones and the LXC ones, parses cleanly under this systemd."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required by this test (apt-get install systemd)"
    variants: dict[tuple[str, str], None] = {}
    for host in {item.host for item in systemd.files(example_config, example_inventory)}:
        for unit, item in _dropins(example_config, example_inventory, host).items():
            variants[(unit, item.content)] = None
    for unit in AGENT_UNITS:  # both kinds are covered: with and without mount namespaces
        kinds = {"ProtectSystem" in _service(text) for name, text in variants if name == unit}
        assert kinds == {True, False}, unit
    assert {unit for unit, _ in variants} == set(systemd.HARDENING)
    for n, (unit, text) in enumerate(sorted(variants)):
        run = _verify(analyze, tmp_path / str(n), unit, text)
        assert run.returncode == 0 and not run.stderr.strip(), f"{unit}:\n{text}\n{run.stderr}"

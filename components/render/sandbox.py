"""The systemd sandbox of obsstack's own tool units (restore drill, canary, PBS collector, ACME
renewal): every directive `systemd-analyze security` scores, set as tight as the tool allows, so
each unit's exposure stays at or under 3.0 (tests/unit/test_tool_unit_security.py prints them).

Directives and their meaning: systemd.exec(5) and systemd.resource-control(5) of systemd 252
(Debian 12); the scoring is systemd's src/analyze/analyze-security.c. ``DynamicUser=yes`` gives a
unit a user of its own that exists only while it runs (and implies ProtectSystem=strict,
PrivateTmp, RemoveIPC, NoNewPrivileges, RestrictSUIDSGID); a secret it needs is passed with
``LoadCredential=`` and lands in ``/run/credentials/<unit>/``, readable by that user alone.
"""

from __future__ import annotations

from dataclasses import dataclass

NETWORK_FAMILIES = "AF_UNIX AF_INET AF_INET6"


@dataclass(frozen=True)
class Sandbox:
    dynamic_user: bool = True
    network: bool = False
    writable: tuple[str, ...] = ()
    credentials: tuple[tuple[str, str], ...] = ()  # (name, root-only file)
    capabilities: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        caps = " ".join(self.capabilities)
        lines = [
            *(["DynamicUser=yes"] if self.dynamic_user else []),
            *(f"LoadCredential={name}:{path}" for name, path in self.credentials),
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            # '-': a path that does not exist yet (no node exporter on the host so far) is skipped
            # instead of failing the unit with 226/NAMESPACE.
            *([f"ReadWritePaths={' '.join('-' + p for p in self.writable)}"] if self.writable else []),
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            *([] if self.network else ["PrivateNetwork=yes", "IPAddressDeny=any"]),
            *(["PrivateUsers=yes"] if self.dynamic_user else []),
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "ProtectProc=invisible",
            "ProcSubset=pid",
            "RestrictSUIDSGID=yes",
            "RestrictRealtime=yes",
            "RestrictNamespaces=yes",
            "LockPersonality=yes",
            "MemoryDenyWriteExecute=yes",
            "SystemCallArchitectures=native",
            # One line: unit parsers (and the tests' configparser) may refuse a repeated key.
            "SystemCallFilter=@system-service",
            "SystemCallErrorNumber=EPERM",
            f"RestrictAddressFamilies={NETWORK_FAMILIES if self.network else 'AF_UNIX'}",
            f"CapabilityBoundingSet={caps}",
            f"AmbientCapabilities={caps}" if self.dynamic_user else "AmbientCapabilities=",
            "DevicePolicy=closed",
            "KeyringMode=private",
            "UMask=0077",
        ]
        return lines

    def text(self) -> str:
        return "\n".join(self.lines()) + "\n"

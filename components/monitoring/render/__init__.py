"""Pure renderers: (config, inventory) -> file contents. Components, the offline plan, the lab
and the tests all call these; nothing renders twice.

:func:`host_files` is the single list of every file the program ships to any host, and
:func:`secret_files` the files whose content is a secret (shipped 0600, never rendered here).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from components.config import StackConfig
from components.inventory import Inventory


@dataclass(frozen=True)
class HostFile:
    """A file shipped to a host: where, what, and who may read it."""

    host: str
    path: str
    content: str
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"


@dataclass(frozen=True)
class SecretFile:
    """A file whose content is a secret Output (a config secret or a generated one)."""

    host: str
    path: str
    source: str
    mode: str = "0600"
    owner: str = "root"
    group: str = "root"


def coverage_register(config: StackConfig, inventory: Inventory) -> str:
    """The registered targets, so coverage is measured against the inventory, not the config."""
    entries = [
        {"asset": e.asset, "job": e.job, "instance": e.instance, "service": e.service, "tier": e.tier}
        for e in inventory.coverage
    ]
    return json.dumps({"cluster": config.cluster, "targets": entries}, indent=2, sort_keys=True) + "\n"


def host_files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    files: list[HostFile] = []
    for mon in inventory.monitoring:
        files.append(HostFile(mon.name, "/etc/obsstack/coverage-register.json", coverage_register(config, inventory)))
    return files


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    return []

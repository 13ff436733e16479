"""Pure renderers: (config, inventory) -> file contents. Components, the offline plan, the lab
and the tests all call these; nothing renders twice.

Every submodule of this package that defines ``files(config, inventory) -> list[HostFile]``
(and optionally ``secret_files(config, inventory) -> list[SecretFile]``) contributes to
:func:`host_files` / :func:`secret_files`: the single list of what the program ships to hosts.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

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
    """A file whose content is a secret Output (a config secret or a generated one).

    ``source`` names it: a secret config key, or ``generated:<resource>``.
    """

    host: str
    path: str
    source: str
    mode: str = "0600"
    owner: str = "root"
    group: str = "root"


def _renderers() -> Iterator[ModuleType]:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        yield importlib.import_module(f"{__name__}.{info.name}")


def _unique(items: list[HostFile] | list[SecretFile]) -> None:
    seen: set[tuple[str, str]] = set()
    for item in items:
        key = (item.host, item.path)
        if key in seen:
            raise ValueError(f"two renderers ship {item.path} to {item.host}")
        seen.add(key)


def host_files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    files: list[HostFile] = [
        HostFile(mon.name, "/etc/obsstack/coverage-register.json", coverage_register(config, inventory))
        for mon in inventory.monitoring
    ]
    for module in _renderers():
        if hasattr(module, "files"):
            files.extend(module.files(config, inventory))
    _unique(files)
    return sorted(files, key=lambda f: (f.host, f.path))


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    files: list[SecretFile] = []
    for module in _renderers():
        if hasattr(module, "secret_files"):
            files.extend(module.secret_files(config, inventory))
    _unique(files)
    return sorted(files, key=lambda f: (f.host, f.path))


def coverage_register(config: StackConfig, inventory: Inventory) -> str:
    """The registered targets, so coverage is measured against the inventory, not the config."""
    entries = [
        {"asset": e.asset, "job": e.job, "instance": e.instance, "service": e.service, "tier": e.tier}
        for e in inventory.coverage
    ]
    return json.dumps({"cluster": config.cluster, "targets": entries}, indent=2, sort_keys=True) + "\n"

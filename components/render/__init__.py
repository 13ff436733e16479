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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, cast

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
class Board:
    """One dashboard as deployed: file name, Grafana folder, uid, JSON."""

    name: str
    folder: str
    uid: str
    json: str

    @property
    def file(self) -> str:
        return f"{self.name}.json"


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


T = TypeVar("T", HostFile, SecretFile)
R = TypeVar("R")


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


@dataclass(frozen=True)
class Shipment:
    """Everything shipped to every host for one (config, inventory), grouped by host."""

    files: tuple[HostFile, ...]
    secrets: tuple[SecretFile, ...]
    files_by_host: dict[str, tuple[HostFile, ...]]
    secrets_by_host: dict[str, tuple[SecretFile, ...]]


# The last few renders, with the objects they were rendered from (so an id is never reused while
# cached): every component asks for its host's files, and rendering the whole stack once per host
# would make planning quadratic in the number of hosts.
_RENDERED: list[tuple[str, StackConfig, Inventory, Any]] = []
_CACHE_SIZE = 8


def rendered_once(what: str, config: StackConfig, inventory: Inventory, render: Callable[[], R]) -> R:
    """``render()`` once per (what, config, inventory); both are frozen, so the result is too.
    Equal copies count as the same: `make plan` validates the stack file and the program validates
    it again from Pulumi config, and comparing them costs far less than rendering twice."""
    for cached_what, cached_config, cached_inventory, cached in _RENDERED:
        if cached_what == what and _same(cached_config, config) and _same(cached_inventory, inventory):
            return cast(R, cached)
    result = render()
    _RENDERED.insert(0, (what, config, inventory, result))
    del _RENDERED[_CACHE_SIZE:]
    return result


def _same(cached: object, given: object) -> bool:
    return cached is given or cached == given


def _group(items: list[T]) -> dict[str, tuple[T, ...]]:
    grouped: dict[str, list[T]] = {}
    for item in items:
        grouped.setdefault(item.host, []).append(item)
    return {host: tuple(group) for host, group in grouped.items()}


def shipment(config: StackConfig, inventory: Inventory) -> Shipment:
    """Every file for every host, rendered once per (config, inventory)."""
    return rendered_once("shipment", config, inventory, lambda: _render_shipment(config, inventory))


def _render_shipment(config: StackConfig, inventory: Inventory) -> Shipment:
    files: list[HostFile] = [
        HostFile(mon.name, "/etc/obsstack/coverage-register.json", coverage_register(config, inventory))
        for mon in inventory.monitoring
    ]
    secrets: list[SecretFile] = []
    for module in _renderers():
        if hasattr(module, "files"):
            files.extend(module.files(config, inventory))
        if hasattr(module, "secret_files"):
            secrets.extend(module.secret_files(config, inventory))
    _unique(files)
    _unique(secrets)
    files.sort(key=lambda f: (f.host, f.path))
    secrets.sort(key=lambda f: (f.host, f.path))
    return Shipment(tuple(files), tuple(secrets), _group(files), _group(secrets))


def host_files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    return list(shipment(config, inventory).files)


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    return list(shipment(config, inventory).secrets)


def files_for(config: StackConfig, inventory: Inventory, host: str) -> tuple[list[HostFile], list[SecretFile]]:
    """The files and secret files shipped to one host."""
    shipped = shipment(config, inventory)
    return list(shipped.files_by_host.get(host, ())), list(shipped.secrets_by_host.get(host, ()))


def coverage_register(config: StackConfig, inventory: Inventory) -> str:
    """The registered targets, so coverage is measured against the inventory, not the config."""
    entries = [
        {"asset": e.asset, "job": e.job, "instance": e.instance, "service": e.service, "tier": e.tier}
        for e in inventory.coverage
    ]
    return json.dumps({"cluster": config.cluster, "targets": entries}, indent=2, sort_keys=True) + "\n"

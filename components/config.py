"""The one typed model of an environment (stack), and the only place that reads Pulumi config.

Every section is a frozen pydantic model with ``extra="forbid"``: a typo in the stack YAML fails
with its path instead of silently vanishing. Cross-field checks live in ``model_validator``s and
report *every* problem at once (see :class:`ConfigError`).

Secrets are never values in this model: fields ending in ``_secret`` name a top-level Pulumi
config key set with ``pulumi config set --secret``; :func:`load_secrets` turns them into secret
``Output``s.
"""

from __future__ import annotations

import contextvars
import difflib
import ipaddress
import json
import math
import re
import urllib.parse
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import email_validator
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from components import calendar_event, stack_yaml
from components.names import StackNames

NAMESPACE = "obsstack"
SECTIONS = (
    "cluster",
    "proxmox",
    "pbs",
    "inventory",
    "monitoring",
    "alerting",
    "grafana",
    "loki",
    "backups",
    "names",
)

# ---------------------------------------------------------------------------------------------
# CrossFieldError and the error that lists them all
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the config: where (YAML path) and what to write instead."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class CrossFieldError(ValueError):
    """Raised by cross-field validators; carries every problem found, with relative paths."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class ConfigError(Exception):
    """Invalid stack config: one message listing every problem, each with its YAML path."""

    def __init__(self, problems: Iterable[Problem], source: str = "stack config") -> None:
        self.problems = sorted(set(problems))
        self.source = source
        lines = [f"{len(self.problems)} problem(s) in {source}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


# Off during validate()'s second pass: section-level checks (already reported) must not stop the
# stack-level cross-references from running on an otherwise well-typed config.
_SECTION_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("section_checks", default=True)


class _Collector:
    """Accumulates problems inside a model_validator; raises them together at the end."""

    def __init__(self, stack_level: bool = False) -> None:
        self.problems: list[Problem] = []
        self.stack_level = stack_level

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def raise_if_any(self) -> None:
        if self.problems and (self.stack_level or _SECTION_CHECKS.get()):
            raise CrossFieldError(self.problems)


# ---------------------------------------------------------------------------------------------
# Scalar types
# ---------------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = (86400, 3600, 60, 1)


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus-style duration such as ``15s``, ``1m``, ``1h30m`` or ``14d``."""
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"'{text}' is not a duration: write e.g. 15s, 1m, 2h or 14d")
    return sum(int(g or 0) * unit for g, unit in zip(match.groups(), _DURATION_UNITS, strict=True))


def _check_duration(text: str) -> str:
    if duration_seconds(text) <= 0:
        raise ValueError(f"'{text}' must be longer than zero")
    return text


def _check_name(text: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", text):
        raise ValueError(
            f"'{text}' is not a valid name: use lowercase letters, digits and '-', "
            "starting with a letter (it becomes a hostname, a label value and a resource name)"
        )
    return text


def _check_host(text: str) -> str:
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified:
            raise ValueError(f"'{text}' is the unspecified address: write the host's own address")
        return text
    if re.fullmatch(r"[0-9.]+", text):
        raise ValueError(f"'{text}' looks like an IPv4 address but is not one (each part is 0..255)")
    if not re.fullmatch(r"(?=.{1,253}$)([a-zA-Z0-9-]{1,63}\.)*[a-zA-Z0-9-]{1,63}", text):
        raise ValueError(f"'{text}' is neither an IP address nor a DNS name")
    return text


def _check_dns_name(text: str) -> str:
    """A fully qualified DNS name (at least one dot), never an address: it goes into certificates'
    DNS SANs and the URLs people open."""
    checked = _check_host(text)
    try:
        ipaddress.ip_address(checked)
    except ValueError:
        if "." not in checked:
            raise ValueError(f"'{text}' is not fully qualified: write e.g. grafana.lab.example.net") from None
        return checked.lower()
    raise ValueError(f"'{text}' is an address: write the DNS name that resolves to it (e.g. mon-1.lab.example.net)")


def _check_ip(text: str) -> str:
    """An address where a name cannot go: the VM's cloud-init gateway and DNS servers become PVE's
    `ipconfigN: gw=` (an IPv4/IPv6 address) and `nameserver` (a list of addresses), through
    pulumi-proxmoxve's initialization.ip_config / dns (components/proxmox/vm.py); a resolver or a
    default route found by name would need the very network it configures."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an IP address: write e.g. 10.0.20.1") from None
    if address.is_unspecified:
        raise ValueError(f"'{text}' is the unspecified address: write the host's own address")
    return text


def _check_cidr(text: str) -> str:
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an address with prefix: write e.g. 10.0.20.10/24") from None
    if "/" not in text:
        raise ValueError(f"'{text}' needs a prefix length: write e.g. {iface.ip}/24")
    return text


def _check_url(text: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        # Go's net/url (Alertmanager, Prometheus) refuses it: "net/url: invalid control character
        # in URL" (url.go, stringContainsCTLByte); Python's \S lets most of them through.
        raise ValueError("a URL must not contain a control character: retype it without the invisible character")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ValueError(f"'{text}' is not an http(s) URL: write e.g. https://host:8006/")
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        # Go's net/url (Alertmanager, Prometheus) refuses it: "invalid URL escape" (url.go, unescape).
        raise ValueError(f"'{text}' has a '%' that is no %XX escape: write %25 for a literal '%'")
    if "@" in urllib.parse.urlsplit(text).netloc:
        # Do not echo the value: it holds a credential.
        raise ValueError(
            "a URL must not carry credentials (user:password@): they would be written into the plan, "
            "the outputs and host files; put the secret in the field's *_secret key instead"
        )
    return text


def _check_host_port(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"'{text}' must be host:port with a port 1..65535 (e.g. smtp.example.net:587)")
    _check_host(host)
    return text


def _check_unix_user(text: str) -> str:
    # useradd(8) on Debian: [a-z_][a-z0-9_-]*[$]?, at most 32 characters; nothing a shell or a
    # sudoers line would read as syntax.
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", text):
        raise ValueError(f"{text!r} is not a Unix user name: lowercase letters, digits, '_' and '-' (e.g. debian)")
    return text


def _check_single_line(text: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("must be one line of printable text (no newline or control character)")
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _check_email(text: str) -> str:
    try:
        # A well-kept parser of RFC 5322/6531 addresses; no DNS lookups at plan time.
        return str(email_validator.validate_email(text, check_deliverability=False).normalized)
    except email_validator.EmailNotValidError as err:
        raise ValueError(f"{text!r} is not an email address: {err}") from None


def _check_secret_key(text: str) -> str:
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9]*", text):
        # The value is not echoed: what lands here by mistake is often the secret itself.
        raise ValueError(
            f"is not a config key name (the value, {len(text)} characters, is not shown: it may be the secret "
            f"itself): name a secret set with `pulumi config set --secret {NAMESPACE}:<name>` "
            "(camelCase, letters and digits)"
        )
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
Name = Annotated[str, AfterValidator(_check_name)]
Host = Annotated[str, AfterValidator(_check_host)]
DnsName = Annotated[str, AfterValidator(_check_dns_name)]
IpAddress = Annotated[str, AfterValidator(_check_ip)]
Cidr = Annotated[str, AfterValidator(_check_cidr)]
Url = Annotated[str, AfterValidator(_check_url)]
SecretKey = Annotated[str, AfterValidator(_check_secret_key)]
UnixUser = Annotated[str, AfterValidator(_check_unix_user)]
Line = Annotated[str, AfterValidator(_check_single_line)]
Email = Annotated[str, AfterValidator(_check_email)]


def _check_calendar(text: str) -> str:
    try:
        return calendar_event.check(text)
    except calendar_event.CalendarError as err:
        raise ValueError(f"{text!r} is not a calendar event (systemd.time(7)): {err}") from None


# A systemd OnCalendar= value, or a PVE/PBS job schedule (the same syntax for what is used here).
CalendarEvent = Annotated[str, AfterValidator(_check_calendar)]
# Strict: YAML `true` is not port 1.
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Tier = Literal["critical", "important", "best-effort"]
Severity = Literal["critical", "warning", "info"]

TIER_SEVERITY: dict[str, Severity] = {
    "critical": "critical",
    "important": "warning",
    "best-effort": "info",
}


class Model(BaseModel):
    # No inf/nan: `inf` reaches a float field as a string pydantic would otherwise take.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def secret_keys(self) -> Iterator[tuple[str, str]]:
        """(relative path, secret key name) for every ``*_secret`` field, recursively."""
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if field_name.endswith("_secret") and isinstance(value, str):
                yield field_name, value
            for sub_path, sub in _walk_models(value):
                for path, key in sub.secret_keys():
                    yield f"{field_name}{sub_path}.{path}", key


def _walk_models(value: Any) -> Iterator[tuple[str, Model]]:
    if isinstance(value, Model):
        yield "", value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, Model):
                yield f"[{i}]", item
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, Model):
                yield f".{key}", item


def _duplicates(values: Iterable[Any]) -> set[Any]:
    return {v for v, n in Counter(values).items() if n > 1 and v is not None}


# ---------------------------------------------------------------------------------------------
# Proxmox VE
# ---------------------------------------------------------------------------------------------


# A dated Debian 12 image and its SHA512 as Debian's SHA512SUMS beside it lists it (quoted from a
# public Proxmox config, not re-downloaded here: check it against
# https://cloud.debian.org/images/cloud/bookworm/20250210-2019/SHA512SUMS before relying on it).
DEBIAN_IMAGE_URL = (
    "https://cloud.debian.org/images/cloud/bookworm/20250210-2019/debian-12-genericcloud-amd64-20250210-2019.qcow2"
)
DEBIAN_IMAGE_SHA512 = (
    "a58d86525d75fd8e139a2302531ce5d2ab75ef0273cfe78f9d53aada4b23efd4"
    "5f8433b4806fa4570cfe981c8fae26f5e5e855cbd66ba2198862f28125fd2d45"
)
CHECKSUM_HEX_LENGTH = {"sha256": 64, "sha512": 128}


class CloudImage(Model):
    """The Debian 12 cloud image monitoring VMs boot from (downloaded once per node).

    A checksum is required: the provider verifies it after the download, so a truncated or
    tampered image never becomes a VM's boot disk. Pin a dated image, not ``latest``: its
    checksum changes with every Debian build.
    """

    url: Url = DEBIAN_IMAGE_URL
    checksum: str = DEBIAN_IMAGE_SHA512
    checksum_algorithm: Literal["sha256", "sha512"] = "sha512"
    file_name: str = "debian-12-genericcloud-amd64-20250210-2019.img"
    storage: str = "local"

    @model_validator(mode="after")
    def _checksum_matches_algorithm(self) -> CloudImage:
        want = CHECKSUM_HEX_LENGTH[self.checksum_algorithm]
        if len(self.checksum) != want or any(c not in "0123456789abcdef" for c in self.checksum.lower()):
            raise ValueError(
                f"checksum must be the image's {self.checksum_algorithm} as {want} hex digits "
                "(the line for this file in the SHA*SUMS published beside it)"
            )
        if "/latest/" in self.url:
            raise ValueError("url: pin a dated image (…/bookworm/<date>/…), not latest: its checksum changes")
        return self


class NfsStorage(Model):
    """An NFS or SMB share the program registers in PVE for durable data volumes."""

    name: Name
    type: Literal["nfs", "cifs"] = "nfs"
    server: Host
    export: str = Field(description="NFS export path or SMB share name")
    content: tuple[Literal["images", "rootdir", "backup", "iso", "vztmpl"], ...] = ("images",)
    username: str | None = None
    password_secret: SecretKey | None = None

    @model_validator(mode="after")
    def _smb_needs_credentials(self) -> NfsStorage:
        if self.type == "cifs" and (self.username is None or self.password_secret is None):
            raise ValueError("an SMB (cifs) storage needs username and password_secret")
        return self


class ProxmoxSection(Model):
    endpoint: Url
    insecure: bool = False
    api_token_secret: SecretKey = "proxmoxApiToken"
    ssh_user: UnixUser = "root"
    ssh_private_key_secret: SecretKey = "sshPrivateKey"
    # Storages that already exist on the cluster and may be referenced (disks, images).
    existing_storages: tuple[Name, ...] = ("local", "local-lvm")
    durable_storages: tuple[NfsStorage, ...] = ()
    cloud_image: CloudImage = CloudImage()
    snippets_storage: Name = Field(
        default="local", description="storage with the 'snippets' content type, for cloud-init user data"
    )

    def storage_names(self) -> set[str]:
        return set(self.existing_storages) | {s.name for s in self.durable_storages}


# ---------------------------------------------------------------------------------------------
# Inventory: every asset the platform watches, each with a service tag and a tier
# ---------------------------------------------------------------------------------------------

AssetKind = Literal["vm", "lxc", "pve_node", "pbs_host", "service"]
ProbeModule = Literal["http_2xx", "tcp_connect", "icmp"]


class Probe(Model):
    module: ProbeModule
    target: str = Field(description="URL for http_2xx, host:port for tcp_connect, host for icmp")

    @model_validator(mode="after")
    def _target_fits_module(self) -> Probe:
        if self.module == "http_2xx" and not self.target.startswith(("http://", "https://")):
            raise ValueError(f"http_2xx probe target '{self.target}' must be an http(s) URL")
        if self.module == "tcp_connect":
            host, _, port = self.target.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"tcp_connect probe target '{self.target}' must be host:port, port 1..65535")
            _check_host(host.strip("[]"))
        if self.module == "icmp":
            _check_host(self.target)
        if self.module == "http_2xx" and not urllib.parse.urlsplit(self.target).hostname:
            raise ValueError(f"http_2xx probe target '{self.target}' has no host")
        return self


class AppCheck(Model):
    """One application check run inside the restored guest once the canary is verified
    (docs/restore-drill.md). It is retried until it passes or ``timeout`` runs out; a failure
    fails the drill. ``tcp`` connects with bash's /dev/tcp, ``http`` asks curl for the status
    code, ``command`` runs an argv (``pg_isready``, ``psql -tAc 'select 1'``) that must exit 0."""

    name: Name
    type: Literal["tcp", "http", "command"]
    timeout: Duration = "2m"
    port: Port | None = None
    host: Host = "127.0.0.1"
    url: Url | None = None
    expect_status: int = Field(default=200, ge=100, le=599)
    command: tuple[Annotated[str, Field(min_length=1)], ...] = ()

    @model_validator(mode="after")
    def _fields_fit_type(self) -> AppCheck:
        col = _Collector()
        for field_name, kind in (("port", "tcp"), ("url", "http"), ("command", "command")):
            given = bool(getattr(self, field_name))
            if kind == self.type and not given:
                col.add(field_name, f"a {kind} check needs `{field_name}`")
            elif kind != self.type and given:
                col.add(field_name, f"only {kind} checks have `{field_name}`: remove it")
        col.raise_if_any()
        return self


class DrillSpec(Model):
    """Marks a guest (VM or container) as a restore-drill target: the data paths a restore must bring
    back, its budgets and its application checks.

    The canary proves the bytes with files of its own; ``canary_paths`` must exist in the restored
    guest (their content changes after the canary ran and is not compared).
    """

    canary_paths: tuple[str, ...] = ("/etc",)
    rpo: Duration = "24h"
    rto: Duration = "2h"
    checks: tuple[AppCheck, ...] = Field(default=(), description="application checks in the restored guest")

    @model_validator(mode="after")
    def _absolute_paths(self) -> DrillSpec:
        bad = [p for p in self.canary_paths if not p.startswith("/")]
        if bad:
            raise ValueError(f"canary_paths must be absolute paths, got {bad}")
        names = [c.name for c in self.checks]
        if dups := sorted(_duplicates(names)):
            raise ValueError(f"checks: duplicate check names {dups}: give every check its own name")
        return self


class Asset(Model):
    name: Name
    kind: AssetKind
    service: Name
    tier: Tier
    address: Host | None = None
    vmid: int | None = Field(default=None, ge=100, le=999_999_999)
    node: Name | None = None
    managed: bool = Field(default=True, description="install node_exporter and Alloy over SSH (hosts only)")
    backup: bool | None = Field(default=None, description="protect with nightly backups")
    probes: tuple[Probe, ...] = ()
    drill: DrillSpec | None = None
    ssh_user: UnixUser | None = None
    depends_on: tuple[Name, ...] = Field(
        default=(),
        description="assets this one is unreachable without, beyond what the inventory derives "
        "(its PVE node, the monitoring hosts' gateway): their outage suppresses this asset's alerts",
    )

    @property
    def is_guest(self) -> bool:
        return self.kind in ("vm", "lxc")

    @property
    def is_host(self) -> bool:
        return self.kind != "service"

    @property
    def protected(self) -> bool:
        """Guests are backed up unless they opt out."""
        return self.is_guest and self.backup is not False

    def reached_hosts(self) -> list[str]:
        """Every host name or IP the monitoring host reaches this asset by (address and probes)."""
        hosts = [self.address] if self.address else []
        for probe in self.probes:
            if probe.module == "http_2xx":
                hosts.append(urllib.parse.urlsplit(probe.target).hostname or "")
            elif probe.module == "tcp_connect":
                hosts.append(probe.target.rpartition(":")[0].strip("[]"))
            else:
                hosts.append(probe.target)
        return hosts

    @property
    def runs_on(self) -> str | None:
        """The PVE node whose loss takes this asset down (a PVE node runs on itself)."""
        return self.name if self.kind == "pve_node" else self.node

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Asset:
        col = _Collector()
        if self.is_guest:
            if self.vmid is None:
                col.add("vmid", f"a {self.kind} needs its VMID: add `vmid: <100..999999999>`")
            if self.node is None:
                col.add("node", f"a {self.kind} needs the PVE node it runs on: add `node: <name>`")
        else:
            for field_name in ("vmid", "node", "backup"):
                if getattr(self, field_name) is not None:
                    col.add(field_name, f"only vm and lxc assets have `{field_name}`: remove it")
        if self.is_host and self.address is None:
            col.add("address", f"a {self.kind} needs `address: <ip or dns name>` to be scraped")
        if self.kind == "service" and not self.probes:
            col.add("probes", "a service asset needs at least one probe (http_2xx, tcp_connect, icmp)")
        if self.kind == "lxc" and self.ssh_user is not None:
            col.add(
                "ssh_user",
                "an LXC guest is reached through its node (`pct exec` over the node's SSH, no sshd or sudo "
                "in the container): remove ssh_user here, or set it on the pve_node",
            )
        if self.drill is not None and not self.is_guest:
            col.add("drill", "restore drills restore guests (vm or lxc) only: remove `drill`")
        if self.drill is not None and self.backup is False:
            col.add("drill", "a drill target must be backed up: remove `backup: false`")
        col.raise_if_any()
        return self


class InventorySection(Model):
    assets: tuple[Asset, ...] = Field(min_length=1)

    def by_name(self) -> dict[str, Asset]:
        return {a.name: a for a in self.assets}

    def of_kind(self, *kinds: str) -> list[Asset]:
        return [a for a in self.assets if a.kind in kinds]

    @model_validator(mode="after")
    def _unique(self) -> InventorySection:
        col = _Collector()
        for attr in ("name", "vmid", "address"):
            dups = _duplicates(getattr(a, attr) for a in self.assets)
            for i, asset in enumerate(self.assets):
                if getattr(asset, attr) in dups:
                    col.add(
                        f"assets[{i}].{attr}",
                        f"duplicate {attr} {getattr(asset, attr)!r} (also used by another asset): "
                        f"every asset needs its own {attr}",
                    )
        _check_dependencies(self.assets, col)
        col.raise_if_any()
        return self


# --- Dependencies between assets (docs/alerting.md, "Dependency model") ---


def placement_edges(assets: Iterable[Asset]) -> dict[str, tuple[str, ...]]:
    """asset -> the assets it needs: its PVE node (guests) and its explicit ``depends_on``."""
    return {a.name: tuple(dict.fromkeys(((a.node,) if a.node else ()) + a.depends_on)) for a in assets}


def dependency_cycle(edges: Mapping[str, Iterable[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start through ``edges``, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, path = stack.pop()
        for upstream in edges.get(name, ()):
            if upstream == start:
                return [*path, start]
            if upstream not in seen:
                seen.add(upstream)
                stack.append((upstream, [*path, upstream]))
    return None


def upstream_down_seconds(config: StackConfig) -> int:
    """UpstreamDown's hold: the dependents' shortest hold minus one scrape and one evaluation of
    phase skew each, so the upstream's alert always reaches Alertmanager first and inhibits."""
    th, mon = config.alerting.thresholds, config.monitoring
    shortest = min(duration_seconds(th.target_down_for), duration_seconds(th.probe_failed_for))
    skew = duration_seconds(mon.scrape_interval) + duration_seconds(mon.evaluation_interval)
    return shortest - skew


def _check_upstream_timing(config: StackConfig, col: _Collector) -> None:
    if upstream_down_seconds(config) < duration_seconds(config.monitoring.evaluation_interval):
        col.add(
            "alerting.thresholds.target_down_for",
            "target_down_for and probe_failed_for must exceed scrape_interval + 2 x evaluation_interval: "
            "the alert of a dependency (UpstreamDown) must fire before the alerts it suppresses",
        )


def _check_resolvers_span_nodes(config: StackConfig, col: _Collector) -> None:
    """Losing the one PVE node every resolver runs on leaves a monitoring host on another node
    alive but unable to resolve a receiver's name: the outage it should page about pages nobody.
    (Monitoring hosts on that same node die with it; the dead-man's switch covers that.)"""
    resolvers = config.resolvers()
    nodes = {a.runs_on for a in resolvers}
    if not resolvers or len(nodes) != 1 or None in nodes:
        return
    (node,) = nodes
    survivors = [h for h in config.monitoring.hosts if h.node != node]
    if survivors:
        names = ", ".join(a.name for a in resolvers)
        col.add(
            "monitoring.vm.dns",
            f"every resolver ({names}) runs on PVE node {node}: losing {node} leaves {survivors[0].name} "
            f"(on {survivors[0].node}) unable to resolve receivers and probes, so nobody is paged; add a "
            f"resolver on another node or outside the cluster (the router, a public resolver) to monitoring.vm.dns",
        )


def _check_dependencies(assets: tuple[Asset, ...], col: _Collector) -> None:
    names = {a.name for a in assets}
    for i, asset in enumerate(assets):
        for j, upstream in enumerate(asset.depends_on):
            path = f"assets[{i}].depends_on[{j}]"
            if upstream == asset.name:
                col.add(path, f"{asset.name!r} cannot depend on itself: remove it")
            elif upstream not in names:
                col.add(path, f"unknown asset {upstream!r}: use one of {sorted(names - {asset.name})}")
    edges = placement_edges(assets)
    for i, asset in enumerate(assets):
        cycle = dependency_cycle(edges, asset.name) if asset.depends_on else None
        if cycle:
            col.add(
                f"assets[{i}].depends_on",
                f"dependency cycle {' -> '.join(cycle)}: an outage would suppress every alert of the cycle; "
                "remove one of these dependencies",
            )


# ---------------------------------------------------------------------------------------------
# Backups: PVE backup job and PBS datastores
# ---------------------------------------------------------------------------------------------


class Retention(Model):
    """PBS/vzdump prune options (documented semantics, applied in this order)."""

    keep_last: int | None = Field(default=None, ge=1)
    keep_hourly: int | None = Field(default=None, ge=1)
    keep_daily: int | None = Field(default=30, ge=1)
    keep_weekly: int | None = Field(default=None, ge=1)
    keep_monthly: int | None = Field(default=None, ge=1)
    keep_yearly: int | None = Field(default=None, ge=1)

    def days_of_nightly_backups_kept(self) -> int:
        """Consecutive days of nightly backups this policy keeps (the guarantee we promise)."""
        return max(self.keep_last or 0, self.keep_daily or 0)

    def as_pve_string(self) -> str:
        """`keep-daily=30,keep-weekly=8` as PVE and PBS write it."""
        parts = []
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if value:
                parts.append(f"{field_name.replace('_', '-')}={value}")
        return ",".join(parts)


class SyncJob(Model):
    remote: Name | None = Field(default=None, description="PBS remote name; omit for a local datastore")
    remote_store: Name
    schedule: CalendarEvent = "daily"


class PbsDatastore(Model):
    name: Name
    # It lands in shell scripts on the PBS host: an absolute path of plain characters only.
    path: str = Field(pattern=r"^/[A-Za-z0-9._/-]+$")
    # The mount point of the disk the datastore lives on (a USB disk, an extra drive): the datastore
    # is created only while that disk is mounted, never on the root filesystem underneath.
    mounted_at: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9._/-]+$")

    @model_validator(mode="after")
    def _path_on_its_disk(self) -> PbsDatastore:
        if self.mounted_at is not None and not self.path.startswith(self.mounted_at.rstrip("/") + "/"):
            raise ValueError(
                f"path {self.path} is not under mounted_at {self.mounted_at}: put the datastore on that disk"
            )
        return self

    prune: Retention = Retention()
    prune_schedule: CalendarEvent = "daily"
    gc_schedule: CalendarEvent = "sat 03:30"
    verify_new_schedule: CalendarEvent = "daily"
    full_verify_schedule: CalendarEvent = "monthly"
    sync: SyncJob | None = None


class PbsSection(Model):
    host: Name = Field(description="the inventory asset (kind: pbs_host) running PBS")
    port: Port = 8007
    fingerprint: str | None = Field(
        default=None,
        pattern=r"^([0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$",
        description="SHA-256 of PBS's certificate that PVE pins; omitted, PVE verifies PBS by CA",
    )
    certificate: Literal["self_signed", "stack_ca"] = Field(
        default="self_signed",
        description="what PBS serves: its own self-signed certificate (pinned by fingerprint) or one of the "
        "stack's CA, which every PVE node is made to trust (tls.mode internal_ca)",
    )
    datastores: tuple[PbsDatastore, ...] = Field(min_length=1)
    storage_id: Name = Field(description="the PVE storage entry that points at the datastore")
    datastore: Name = Field(description="which datastore the PVE storage entry uses")
    api_token_secret: SecretKey = "pbsApiToken"
    token_user: str = Field(
        default="obsstack@pbs", pattern=r"^[A-Za-z0-9._-]+@pbs$", description="PBS user owning the token"
    )
    token_name: Name = Field(default="pve", description="the API token PVE uses: <token_user>!<token_name>")
    encryption_key_secret: SecretKey | None = "pbsEncryptionKey"

    @model_validator(mode="after")
    def _datastore_exists(self) -> PbsSection:
        col = _Collector()
        names = [d.name for d in self.datastores]
        if self.datastore not in names:
            col.add("datastore", f"unknown datastore {self.datastore!r}: use one of {names}")
        for i, d in enumerate(self.datastores):
            if d.name in _duplicates(names):
                col.add(f"datastores[{i}].name", f"duplicate datastore {d.name!r}")
            if d.sync is not None and d.sync.remote is None and d.sync.remote_store not in names:
                col.add(
                    f"datastores[{i}].sync.remote_store",
                    f"unknown local datastore {d.sync.remote_store!r}: use one of {names} or set `remote`",
                )
        col.raise_if_any()
        return self


class DrillSection(Model):
    every: Duration = "14d"
    node: Name | None = Field(default=None, description="PVE node to restore on (default: the guest's)")
    scratch_storage: Name = "local-lvm"
    scratch_vmid_range: tuple[int, int] = (9900, 9999)
    isolation: Literal["link_down", "bridge"] = "link_down"
    isolated_bridge: str | None = None
    agent_timeout: Duration = "10m"
    restore_timeout: Duration = "90m"
    verify_timeout: Duration = Field(default="30m", description="bound on sha256sum -c inside the guest")
    pool: Name | None = Field(
        default=None, description="PVE pool scratch VMs are restored into (token ACL); default: the stack's own"
    )
    check_at: str = Field(
        default="10:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="daily time the monitoring host checks which targets are due (every `every`)",
    )
    canary_lead: Duration = Field(default="30m", description="canary runs this long before the backup window")
    canary_schedule: CalendarEvent | None = Field(
        default=None, description="systemd OnCalendar for the canary; default: backups.schedule minus canary_lead"
    )
    metrics: Literal["textfile", "pushgateway"] = "textfile"
    pve_version: Literal[8, 9] = Field(
        default=9, description="PVE major version: 9 replaced VM.Monitor by VM.GuestAgent.* privileges"
    )

    @model_validator(mode="after")
    def _coherent(self) -> DrillSection:
        col = _Collector()
        low, high = self.scratch_vmid_range
        if not 100 <= low <= high:
            col.add("scratch_vmid_range", "write [low, high] with 100 <= low <= high, e.g. [9900, 9999]")
        if self.isolation == "bridge" and not self.isolated_bridge:
            col.add("isolated_bridge", "isolation: bridge needs `isolated_bridge: <bridge without uplink>`")
        col.raise_if_any()
        return self


class BackupsSection(Model):
    storage: Name = Field(description="PVE storage id backups go to (the PBS storage entry)")
    schedule: CalendarEvent = "02:00"
    mode: Literal["snapshot", "suspend", "stop"] = "snapshot"
    compress: Literal["zstd", "lzo", "gzip"] = "zstd"
    retention: Retention = Retention()
    retention_days: int = Field(default=30, ge=1, description="the promise: days of nightly restore points")
    selection: Literal["protected", "all_except"] = "protected"
    exclude: tuple[Name, ...] = ()
    rpo: Duration = "24h"
    rpo_grace: Duration = "2h"
    rto: Duration = "2h"
    drill: DrillSection = DrillSection()

    @model_validator(mode="after")
    def _retention_keeps_promise(self) -> BackupsSection:
        col = _Collector()
        if self.retention.days_of_nightly_backups_kept() < self.retention_days:
            col.add(
                "retention.keep_daily",
                f"keeps {self.retention.days_of_nightly_backups_kept()} nightly backups but "
                f"retention_days is {self.retention_days}: set keep_daily: {self.retention_days} or more",
            )
        if self.exclude and self.selection != "all_except":
            col.add("exclude", "exclude only applies with `selection: all_except`: set it or remove exclude")
        if self.drill.canary_schedule is None and canary_calendar(self.schedule, self.drill.canary_lead) is None:
            col.add(
                "drill.canary_schedule",
                f"cannot derive the canary time from schedule {self.schedule!r}: set canary_schedule "
                "to a systemd OnCalendar expression before the backup window, e.g. '*-*-* 01:30:00'",
            )
        col.raise_if_any()
        return self

    def canary_on_calendar(self) -> str:
        """systemd OnCalendar of the guest canary: explicit, or the backup window minus the lead."""
        return self.drill.canary_schedule or canary_calendar(self.schedule, self.drill.canary_lead) or ""


_SCHEDULE_RE = re.compile(r"^(?:([a-z]{3}(?:[.,][a-z]{3})*) )?(\d{1,2}):(\d{2})$")


def canary_calendar(schedule: str, lead: str) -> str | None:
    """OnCalendar ``[weekdays] *-*-* HH:MM:00`` ``lead`` before a simple PVE schedule (``[dow ]HH:MM``).

    None when the schedule is not that simple or the lead would cross midnight on a weekday schedule.
    """
    match = _SCHEDULE_RE.match(schedule.strip())
    if match is None:
        return None
    days, hour, minute = match.group(1), int(match.group(2)), int(match.group(3))
    if hour > 23 or minute > 59:
        return None
    start = hour * 60 + minute - duration_seconds(lead) // 60
    if start < 0 and days:
        return None
    start %= 24 * 60
    prefix = f"{days.replace('.', ',').title()} " if days else ""
    return f"{prefix}*-*-* {start // 60:02d}:{start % 60:02d}:00"


# ---------------------------------------------------------------------------------------------
# Monitoring plane
# ---------------------------------------------------------------------------------------------


class MonitoringHostEntry(Model):
    name: Name
    # Renaming a host renames its resources (they are named after it): the previous name becomes
    # a Pulumi alias, so the VM and its disks keep their state instead of being replaced.
    previous_name: Name | None = Field(
        default=None, description="the host's name before a rename; its VM keeps its state (an alias)"
    )
    vmid: int = Field(ge=100, le=999_999_999)
    node: Name
    address: Cidr
    gateway: IpAddress | None = None
    dns_name: DnsName | None = Field(
        default=None,
        description="the name people reach this host by: added to its certificate, used in the URLs the stack "
        "outputs and in alert links (the stack itself keeps using the address)",
    )

    @model_validator(mode="after")
    def _previous_name_differs(self) -> MonitoringHostEntry:
        if self.previous_name == self.name:
            raise ValueError(f"previous_name: {self.name!r} is the current name: remove previous_name")
        return self

    @model_validator(mode="after")
    def _address_is_a_host_of_its_network(self) -> MonitoringHostEntry:
        iface = ipaddress.ip_interface(self.address)
        network = iface.network
        if network.num_addresses > 2 and iface.ip in (network.network_address, network.broadcast_address):
            raise ValueError(f"address {self.address} is the network's own or broadcast address: pick a host address")
        if self.gateway is not None:
            gateway = ipaddress.ip_address(self.gateway)
            if gateway not in network or gateway == iface.ip:
                raise ValueError(f"gateway {self.gateway} must be another address inside {network}")
        return self


class VmShape(Model):
    cores: int = Field(default=4, ge=1, le=128)
    memory_mb: int = Field(default=8192, ge=1024)
    disk_gb: int = Field(default=64, ge=16)
    data_disk_gb: int = Field(default=200, ge=16, description="Prometheus TSDB and Loki chunks")
    storage: Name = "local-lvm"
    data_storage: Name | None = Field(default=None, description="durable storage for the data disk")
    bridge: Name = "vmbr0"
    vlan: int | None = Field(default=None, ge=1, le=4094)
    dns: tuple[IpAddress, ...] = ()
    template_vmid: int | None = Field(
        default=None, ge=100, le=999_999_999, description="clone this template instead of the cloud image"
    )
    # Where cloud-init mounts the data disk (ext4, label obsdata); Prometheus' and Loki's data
    # directories are bind mounts into it, and their install refuses to run while they are not.
    # null: the host's data layout is its owner's (a host brought along, the test hosts).
    data_mount: str | None = Field(default="/srv/obsstack", pattern=r"^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")

    @model_validator(mode="after")
    def _data_mount_is_its_own(self) -> VmShape:
        if self.data_mount is not None and self.data_mount.startswith(("/var/lib/prometheus", "/var/lib/loki")):
            raise ValueError(
                "data_mount: mount the data disk beside the data directories (the default /srv/obsstack): "
                "they are bind-mounted into it"
            )
        return self


class Ports(Model):
    prometheus: Port = 9090
    alertmanager: Port = 9093
    alertmanager_cluster: Port = 9094
    node_exporter: Port = 9100
    blackbox: Port = 9115
    pve_exporter: Port = 9221
    pushgateway: Port = 9091
    loki: Port = 3100
    grafana: Port = 3000
    alloy: Port = 12345


class RemoteWrite(Model):
    url: Url
    username: str | None = None
    password_secret: SecretKey | None = None

    @model_validator(mode="after")
    def _auth_complete(self) -> RemoteWrite:
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("basic auth needs both `username` and `password_secret` (or neither)")
        return self


# prometheus-pve-exporter is installed from PyPI with every wheel's hash (requirements-pve-exporter.txt);
# the lock is for this version, so a different one is refused rather than installed unverified.
PVE_EXPORTER_VERSION = "3.10.2"


class Debian13Versions(Model):
    """Debian 13 (trixie) versions of the packages agents install: PVE 9 and PBS 4 nodes run
    trixie, PVE 8, PBS 3 and the monitoring VMs bookworm. The packages step reads the host's
    /etc/os-release and pins these there (components/monitoring/scripts.py)."""

    model_config = ConfigDict(str_min_length=1)  # merged with Model's

    node_exporter: str = "1.9.0-1+b4"  # trixie/main, apt-cache madison prometheus-node-exporter
    # PBS 4 hosts run the ACME renewer: trixie/main ships lego 4.9.1-2 (apt-cache madison lego),
    # the same upstream version as bookworm's 4.9.1-1, so both pin 4.9.1-*.
    lego: str = "4.9.1-2"


class Versions(Model):
    """Pinned package versions on the managed hosts (Debian 12 + Grafana's APT repository)."""

    model_config = ConfigDict(str_min_length=1)  # merged with Model's

    prometheus: str = "2.42.0+ds-5+deb12u1"
    alertmanager: str = "0.25.0-1+b4"
    node_exporter: str = "1.5.0-1+b6"
    blackbox_exporter: str = "0.23.0-4+b4"
    pushgateway: str = "1.5.1-2+b5"
    grafana: str = "11.3.1"
    loki: str = "3.3.2"
    alloy: str = "1.5.1"
    pve_exporter: str = PVE_EXPORTER_VERSION
    python3_requests: str = Field(default="2.28.1+dfsg-1", description="for tools/silences and tools/oncall_drill")
    python3_venv: str = Field(default="3.11.2-1+b1", description="the venv prometheus-pve-exporter runs from")
    debian13: Debian13Versions = Debian13Versions()
    lego: str = Field(default="4.9.1-1", description="the ACME client where tls.mode is acme")

    @model_validator(mode="after")
    def _pve_exporter_is_locked(self) -> Versions:
        if self.pve_exporter != PVE_EXPORTER_VERSION:
            raise ValueError(
                f"pve_exporter: {self.pve_exporter!r} has no hash-pinned lock; only {PVE_EXPORTER_VERSION} is locked "
                "in requirements-pve-exporter.txt (remove the setting, or regenerate the lock for the new version)"
            )
        return self


def alertmanager_reads_webhook_url_file(version: str) -> bool:
    """Webhook `url_file` arrived in Alertmanager 0.26; Debian 12 ships 0.25."""
    numbers = re.findall(r"\d+", version.split("+", maxsplit=1)[0])[:2]
    return tuple(int(n) for n in numbers) >= (0, 26)


# ACME directories lego knows them by (its `--server`); the default is LetsEncrypt production
# (`lego --help` of Debian's lego 4.9.1: default "https://acme-v02.api.letsencrypt.org/directory").
ACME_DIRECTORIES = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
ACME_FIELDS = (
    "email",
    "directory",
    "dns_provider",
    "credentials",
    "dns_resolvers",
    "dns_propagation_check",
    "renew_days",
    "renew_schedule",
    "ca_certificates",
)
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?")


def _check_pem_certificates(text: str) -> str:
    body = text.strip() + "\n"
    if not re.fullmatch(f"(?:{PEM_CERTIFICATE.pattern})+", body):
        raise ValueError(
            "is not a PEM certificate bundle: paste the ACME CA's root certificate(s), each from "
            "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----"
        )
    return body


class AcmeCredential(Model):
    """One environment variable of lego's DNS provider (go-acme.github.io/lego/dns/<provider>),
    e.g. CLOUDFLARE_DNS_API_TOKEN, with its value from a secret config key."""

    env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="the provider's environment variable name")
    value_secret: SecretKey


class TlsSection(Model):
    """Where the web certificates come from: the stack's own CA (default) or ACME (DNS-01 with lego)."""

    mode: Literal["internal_ca", "acme"] = "internal_ca"
    email: Email | None = Field(default=None, description="ACME account contact (acme)")
    directory: Literal["production", "staging"] | Url = Field(
        default="production", description="LetsEncrypt production, staging, or any ACME directory URL"
    )
    dns_provider: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9._-]*$", description="lego's --dns provider code (acme)"
    )
    credentials: tuple[AcmeCredential, ...] = ()
    dns_resolvers: tuple[Annotated[str, AfterValidator(_check_host_port)], ...] = Field(
        default=(), description="lego --dns.resolvers: where the DNS-01 record is checked (host:port)"
    )
    dns_propagation_check: bool = Field(
        default=True,
        description="lego waits for the record on the zone's authoritative servers (false: --dns.disable-cp)",
    )
    renew_days: int = Field(default=30, ge=1, description="renew when fewer days are left (lego renew --days)")
    renew_schedule: CalendarEvent = "*-*-* 04:17:00"
    ca_certificates: Annotated[str, AfterValidator(_check_pem_certificates)] | None = Field(
        default=None,
        description="PEM root(s) of an ACME CA the system store lacks (LetsEncrypt staging, Pebble): the "
        "monitoring hosts trust them for their own ACME certificates; production needs none",
    )

    @property
    def directory_url(self) -> str:
        return ACME_DIRECTORIES.get(self.directory, self.directory)

    @model_validator(mode="after")
    def _acme_complete(self) -> TlsSection:
        col = _Collector()
        if self.mode == "acme":
            if self.email is None:
                col.add("email", "acme needs `email:` (the ACME account contact)")
            if self.dns_provider is None:
                col.add("dns_provider", "acme needs `dns_provider:` (a lego DNS provider code, e.g. cloudflare)")
        else:
            for name in sorted(self.model_fields_set & set(ACME_FIELDS)):
                col.add(name, f"`{name}` is an ACME setting: set `mode: acme` or remove it")
        envs = [c.env for c in self.credentials]
        for env in sorted({e for e in envs if envs.count(e) > 1}):
            col.add("credentials", f"{env} is listed twice: give each variable once")
        col.raise_if_any()
        return self


class MonitoringSection(Model):
    replicas: int = Field(default=1, ge=1, le=2)
    hosts: tuple[MonitoringHostEntry, ...] = Field(min_length=1)
    vm: VmShape = VmShape()
    scrape_interval: Duration = "15s"
    scrape_timeout: Duration = "10s"
    evaluation_interval: Duration = "15s"
    retention: Duration = "30d"
    retention_size_gb: int = Field(default=150, ge=1)
    ports: Ports = Ports()
    versions: Versions = Versions()
    remote_write: tuple[RemoteWrite, ...] = ()
    apt_proxy: Url | None = None
    grafana_apt_url: Url = "https://apt.grafana.com"
    # The key(s) apt trusts for Grafana's repository: only these are exported out of
    # `grafana_apt_url`/gpg-full.key into the keyring (components/monitoring/scripts.py). The
    # repository is signed by B53AE77B...963FA27710458545 (voxpupuli/puppet-grafana PR #336; its
    # expiry was extended, apt's NO_PUBKEY 963FA27710458545 in grafana/grafana PR #116093). The old
    # single-string form still reads as one fingerprint.
    grafana_apt_key_fingerprint: Annotated[
        tuple[Annotated[str, Field(pattern=r"^[0-9A-F]{40}$")], ...],
        BeforeValidator(lambda value: (value,) if isinstance(value, str) else value),
    ] = Field(
        default=("B53AE77BADB630A683046005963FA27710458545",),
        min_length=1,
        description="the only keys of Grafana's key file apt is made to trust",
    )
    # The old string form (`tls: internal_ca`) still reads as the mode.
    tls: Annotated[TlsSection, BeforeValidator(lambda value: {"mode": value} if isinstance(value, str) else value)] = (
        TlsSection()
    )
    domain: Host = "lab.internal"
    ssh_user: UnixUser = "debian"

    @model_validator(mode="after")
    def _coherent(self) -> MonitoringSection:
        col = _Collector()
        if len(self.hosts) != self.replicas:
            col.add(
                "hosts",
                f"replicas is {self.replicas} but {len(self.hosts)} host(s) are listed: list exactly {self.replicas}",
            )
        if duration_seconds(self.evaluation_interval) < duration_seconds(self.scrape_interval):
            col.add(
                "evaluation_interval",
                f"{self.evaluation_interval} is shorter than scrape_interval {self.scrape_interval}: "
                "evaluating faster than data arrives only burns CPU; set it >= scrape_interval",
            )
        if duration_seconds(self.scrape_timeout) > duration_seconds(self.scrape_interval):
            col.add("scrape_timeout", f"must not exceed scrape_interval ({self.scrape_interval})")
        for attr in ("name", "vmid", "address", "dns_name"):
            dups = _duplicates(getattr(h, attr) for h in self.hosts if getattr(h, attr) is not None)
            for i, h in enumerate(self.hosts):
                if getattr(h, attr) in dups:
                    col.add(f"hosts[{i}].{attr}", f"duplicate {attr} {getattr(h, attr)!r}")
        col.raise_if_any()
        return self


# ---------------------------------------------------------------------------------------------
# Alerting: receivers, routing by severity and service, escalation, silences
# ---------------------------------------------------------------------------------------------


class Receiver(Model):
    name: Name
    type: Literal["slack", "email", "webhook", "pagerduty", "ntfy"]
    url_secret: SecretKey | None = Field(default=None, description="slack/webhook/ntfy URL")
    url: Url | None = Field(default=None, description="webhook/ntfy URL that is not itself a secret")
    credentials_secret: SecretKey | None = Field(
        default=None, description="webhook/ntfy token sent as `Authorization: Bearer` (from a 0600 file)"
    )
    routing_key_secret: SecretKey | None = Field(default=None, description="PagerDuty Events v2 key")
    channel: str | None = None
    to: tuple[Email, ...] = ()

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Receiver:
        col = _Collector()
        if self.type == "slack" and self.url_secret is None:
            col.add("url_secret", "a slack receiver needs `url_secret: <secret config key>`")
        if self.type in ("webhook", "ntfy") and (self.url_secret is None) == (self.url is None):
            col.add("url", f"a {self.type} receiver needs exactly one of `url:` and `url_secret:`")
        if self.type not in ("webhook", "ntfy"):
            for field_name in ("url", "credentials_secret"):
                if getattr(self, field_name) is not None:
                    col.add(field_name, f"only webhook and ntfy receivers have `{field_name}`: remove it")
        if self.type == "slack" and not self.channel:
            col.add("channel", "a slack receiver needs `channel: '#name'`")
        if self.type == "pagerduty" and self.routing_key_secret is None:
            col.add("routing_key_secret", "a pagerduty receiver needs `routing_key_secret`")
        if self.type == "email" and not self.to:
            col.add("to", "an email receiver needs `to: [address, ...]`")
        bad = [a for a in self.to if "@" not in a]
        if bad:
            col.add("to", f"not email addresses: {bad}")
        col.raise_if_any()
        return self


class SeverityRoute(Model):
    receivers: tuple[Name, ...] = Field(min_length=1)
    by_service: dict[str, tuple[Name, ...]] = Field(
        default_factory=dict, description="service tag -> receivers replacing the default"
    )
    group_by: tuple[str, ...] = ("alertname", "service", "instance")
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"

    @field_validator("group_by")
    @classmethod
    def _label_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Alertmanager refuses the whole file otherwise ("invalid label name %q in group_by list",
        prometheus/alertmanager config/config.go Route.UnmarshalYAML; "..." groups by every label)."""
        for name in names:
            if name != "..." and not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
                raise ValueError(f"{name!r} is not a label name: write e.g. alertname, service, instance (or ...)")
        if "..." in names and len(names) > 1:
            raise ValueError("'...' (group by every label) stands alone: remove the other labels or the '...'")
        if len(set(names)) != len(names):
            raise ValueError("lists a label twice: list each label once")
        return names

    @field_validator("by_service")
    @classmethod
    def _routes_reach_someone(cls, routes: dict[str, tuple[Name, ...]]) -> dict[str, tuple[Name, ...]]:
        empty = sorted(service for service, receivers in routes.items() if not receivers)
        if empty:
            raise ValueError(
                f"the route for service {empty[0]!r} has no receivers: its alerts would reach nobody; "
                "list receivers or remove the route"
            )
        return routes


class Routing(Model):
    critical: SeverityRoute
    warning: SeverityRoute
    info: SeverityRoute
    watchdog_receiver: Name
    watchdog_repeat_interval: Duration = "1m"


class Escalation(Model):
    ack_timeout: Duration = "10m"
    secondary_receivers: tuple[Name, ...] = Field(min_length=1)


class SilencePolicy(Model):
    max_duration: Duration = "24h"
    maintenance_max_duration: Duration = "7d"
    protected_alerts: tuple[str, ...] = ("Watchdog",)
    check_every: Duration = "1m"

    @field_validator("protected_alerts")
    @classmethod
    def _protects_the_heartbeat(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Without Watchdog a silence may stop the dead-man's switch; names are alert names (rules
        check they exist: render/alerting_timers.py), listed once."""
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an alert name: write names like Watchdog")
        if "Watchdog" not in names:
            raise ValueError("must include Watchdog (the dead-man's switch no silence may stop); add it to the list")
        if len(set(names)) != len(names):
            raise ValueError("lists an alert twice: list each protected alert once")
        return names


class TimeRange(Model):
    start_time: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end_time: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end_time <= self.start_time:
            raise ValueError(f"end_time {self.end_time} must be after start_time {self.start_time} (use 24:00)")
        return self


_WEEKDAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"


class MaintenanceWindow(Model):
    name: Name
    weekdays: tuple[Annotated[str, Field(pattern=rf"^{_WEEKDAY}(:{_WEEKDAY})?$")], ...] = ()
    times: tuple[TimeRange, ...] = ()
    location: str = "UTC"
    services: tuple[Name, ...] = Field(default=(), description="empty = mute warnings of all services")

    @model_validator(mode="after")
    def _known_location(self) -> MaintenanceWindow:
        try:
            zoneinfo.ZoneInfo(self.location)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
            raise ValueError(
                f"location {self.location!r} is not a time zone: write e.g. UTC or Europe/Berlin"
            ) from None
        return self


class Thresholds(Model):
    """Alert thresholds and hold times; rules are rendered from these, never hard-coded."""

    # 3m30s: a restart of up to 2 minutes never pages, a failure still notifies within 5 minutes
    # (derivation in docs/alerting.md, "Timing budget"); UpstreamDown fires 30s earlier.
    target_down_for: Duration = "3m30s"
    scrape_coverage_min: float = Field(default=0.95, gt=0, le=1)
    scrape_coverage_for: Duration = "5m"
    probe_failed_for: Duration = "3m30s"
    unregistered_guest_for: Duration = "1h"
    cert_expiry_days: int = Field(default=14, ge=1)
    filesystem_fill_horizon: Duration = "24h"
    filesystem_almost_full_ratio: float = Field(default=0.90, gt=0, lt=1)
    memory_available_min_ratio: float = Field(default=0.10, gt=0, lt=1)
    cpu_saturation_ratio: float = Field(default=0.90, gt=0, le=1)
    datastore_fill_horizon: Duration = "7d"
    datastore_almost_full_ratio: float = Field(default=0.85, gt=0, lt=1)
    # The drill runs on the first Tuesday of each month: first Tuesdays are up to 35 days apart,
    # plus a day to acknowledge (docs/alerting.md).
    oncall_drill_every: Duration = "36d"
    backup_verify_within: Duration = Field(
        default="36h", description="a snapshot still unverified after this is BackupNotVerified (verify runs daily)"
    )
    pbs_gc_within: Duration = "8d"
    pbs_prune_within: Duration = "2d"
    pbs_verify_within: Duration = "2d"


class AlertingSection(Model):
    receivers: tuple[Receiver, ...] = Field(min_length=1)
    routing: Routing
    escalation: Escalation
    silence_policy: SilencePolicy = SilencePolicy()
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    thresholds: Thresholds = Thresholds()
    runbook_base_url: str = Field(
        default="docs/runbooks",
        description="where alerts' runbook_url points: <base>/<AlertName>.md (e.g. your repository's docs URL)",
    )
    smtp_smarthost: Annotated[str, AfterValidator(_check_host_port)] | None = None
    smtp_from: Email | None = None
    smtp_username: str | None = None
    smtp_password_secret: SecretKey | None = None

    @model_validator(mode="after")
    def _references(self) -> AlertingSection:
        col = _Collector()
        names = [r.name for r in self.receivers]
        known = set(names)
        for i, r in enumerate(self.receivers):
            if r.name in _duplicates(names):
                col.add(f"receivers[{i}].name", f"duplicate receiver {r.name!r}")

        def check(path: str, receiver: str) -> None:
            if receiver not in known:
                hint = difflib.get_close_matches(receiver, names, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                col.add(path, f"unknown receiver {receiver!r}{suggestion}: use one of {sorted(known)}")

        window_names = [w.name for w in self.maintenance_windows]
        for i, window in enumerate(self.maintenance_windows):
            if window.name in _duplicates(window_names):
                col.add(f"maintenance_windows[{i}].name", f"duplicate maintenance window {window.name!r}")
        for severity in ("critical", "warning", "info"):
            route: SeverityRoute = getattr(self.routing, severity)
            for j, name in enumerate(route.receivers):
                check(f"routing.{severity}.receivers[{j}]", name)
            for service, receivers in route.by_service.items():
                for j, name in enumerate(receivers):
                    check(f"routing.{severity}.by_service.{service}[{j}]", name)
        check("routing.watchdog_receiver", self.routing.watchdog_receiver)
        for j, name in enumerate(self.escalation.secondary_receivers):
            check(f"escalation.secondary_receivers[{j}]", name)
        if any(r.type == "email" for r in self.receivers) and not (self.smtp_smarthost and self.smtp_from):
            col.add("smtp_smarthost", "email receivers need smtp_smarthost (host:port) and smtp_from")
        col.raise_if_any()
        return self


# ---------------------------------------------------------------------------------------------
# Grafana and Loki
# ---------------------------------------------------------------------------------------------


class GrafanaSection(Model):
    admin_user: Line = "admin"
    admin_password_secret: SecretKey = "grafanaAdminPassword"
    secret_key_secret: SecretKey = "grafanaSecretKey"
    root_url: Url | None = None


class S3Storage(Model):
    endpoint: str
    bucket: str
    region: str = "us-east-1"
    access_key_id: str
    secret_access_key_secret: SecretKey


# Snappy on typical syslog/journal text (a conservative estimate; docs/loki-sizing.md).
LOKI_COMPRESSION_RATIO = 10
DISK_HEADROOM = 1.15


class LokiSection(Model):
    retention: Duration = "30d"
    storage: Literal["filesystem", "s3"] = "filesystem"
    s3: S3Storage | None = None
    target_lines_per_second: int = Field(default=2000, ge=1)
    burst_factor: float = Field(default=3.0, ge=1)
    average_line_bytes: int = Field(default=300, ge=16)
    query_timeout: Duration = "2m"

    def stored_gib(self) -> float:
        """Chunks kept on disk for the whole retention at the sustained target rate."""
        raw_gib_per_day = self.target_lines_per_second * self.average_line_bytes * 86400 / 2**30
        return raw_gib_per_day / LOKI_COMPRESSION_RATIO * duration_seconds(self.retention) / 86400

    @model_validator(mode="after")
    def _s3(self) -> LokiSection:
        if self.storage == "s3" and self.s3 is None:
            raise ValueError("storage: s3 needs an `s3:` block (endpoint, bucket, access_key_id, secret)")
        return self


class NamesSection(Model):
    """How the names PVE, PBS and the nodes see are derived (components/names.py)."""

    legacy: bool = Field(
        default=False, description="keep the names of stacks created before scoping (obsstack-nightly, ...)"
    )
    scope: Name | None = Field(default=None, description="the stack's part of every name; default: the stack name")

    @model_validator(mode="after")
    def _one_way(self) -> NamesSection:
        if self.legacy and self.scope is not None:
            raise ValueError("legacy: true keeps the unscoped names, so a scope would be ignored: remove one of them")
        return self


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------


class StackConfig(Model):
    cluster: Name
    proxmox: ProxmoxSection
    pbs: PbsSection
    inventory: InventorySection
    monitoring: MonitoringSection
    alerting: AlertingSection
    grafana: GrafanaSection = GrafanaSection()
    loki: LokiSection = LokiSection()
    backups: BackupsSection
    names: NamesSection = NamesSection()
    # Set by the loader from the stack's name (Pulumi.<stack>.yaml), never written in the file.
    stack: str | None = None

    @property
    def assets(self) -> tuple[Asset, ...]:
        return self.inventory.assets

    def pve_nodes(self) -> list[Asset]:
        return self.inventory.of_kind("pve_node")

    def pbs_host(self) -> Asset:
        return self.inventory.by_name()[self.pbs.host]

    def owner(self, host: str) -> Asset | None:
        """The asset reached by ``host`` (its address or a probe's host), if any."""
        return next((a for a in self.assets if host in a.reached_hosts()), None)

    def resolvers(self) -> tuple[Asset, ...]:
        """The assets answering the monitoring hosts' DNS (``monitoring.vm.dns``), in order, or none
        when a resolver is not in the inventory: its health is unknown, so the stack cannot tell
        when names stop resolving (and an empty list leaves the VM to PVE's host settings)."""
        owners = [self.owner(str(ip)) for ip in self.monitoring.vm.dns]
        if not owners or None in owners:
            return ()
        return tuple({a.name: a for a in owners if a is not None}.values())

    def secret_key_names(self) -> list[str]:
        """Every secret config key this stack references, sorted."""
        return sorted({key for _, key in self.secret_keys()})

    @model_validator(mode="after")
    def _cross_references(self) -> StackConfig:
        col = _Collector(stack_level=True)
        self._check_placement(col)
        self._check_backups(col)
        self._check_alerting(col)
        self._check_capacity_and_versions(col)
        self._check_names(col)
        self._check_tls(col)
        _check_storage_roles(self, col)
        _check_created_storage_ids(self, col)
        _check_datastores(self, col)
        _check_drill_targets_backed_up(self, col)
        _check_ports(self, col)
        _check_retention_covers_lookbacks(self, col)
        _check_rpo_fits_schedule(self, col)
        _check_upstream_timing(self, col)
        _check_resolvers_span_nodes(self, col)
        col.raise_if_any()
        return self

    @property
    def stack_names(self) -> StackNames:
        scope = self.names.scope or self.stack or ""
        return StackNames(scope="" if self.names.legacy else scope, legacy=self.names.legacy)

    def _check_names(self, col: _Collector) -> None:
        if self.names.legacy:
            return
        if not (self.names.scope or self.stack):
            col.add("names.scope", "cannot derive names without the stack name: set names.scope (e.g. staging)")
            return
        if not self.names.scope and not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", self.stack or ""):
            col.add("names.scope", f"stack name {self.stack!r} is no valid scope: set names.scope (e.g. staging)")
            return
        for problem in self.stack_names.problems(d.name for d in self.pbs.datastores):
            col.add("names.scope", f"{problem}: set a shorter names.scope or shorter datastore names")

    def _check_storage(self, col: _Collector, path: str, storage: str | None) -> None:
        storages = self.proxmox.storage_names() | {self.pbs.storage_id}
        if storage is not None and storage not in storages:
            col.add(path, f"unknown storage {storage!r}: use one of {sorted(storages)}")

    def _check_node(self, col: _Collector, path: str, node: str | None) -> None:
        node_names = sorted(a.name for a in self.pve_nodes())
        if node is not None and node not in node_names:
            col.add(path, f"unknown PVE node {node!r}: use one of {node_names} (assets of kind pve_node)")

    def _check_placement(self, col: _Collector) -> None:
        """Nodes, storages and the PBS host named anywhere exist; monitoring hosts collide with nothing."""
        assets = self.inventory.by_name()
        if not self.pve_nodes():
            col.add("inventory.assets", "register your PVE nodes as assets with kind: pve_node")

        for i, asset in enumerate(self.inventory.assets):
            self._check_node(col, f"inventory.assets[{i}].node", asset.node)

        pbs_asset = assets.get(self.pbs.host)
        if pbs_asset is None or pbs_asset.kind != "pbs_host":
            col.add("pbs.host", f"{self.pbs.host!r} must name an inventory asset of kind pbs_host")

        guest_vmids = {a.vmid for a in self.inventory.assets if a.vmid is not None}
        guest_addresses = {a.address for a in self.inventory.assets if a.address}
        for i, host in enumerate(self.monitoring.hosts):
            self._check_node(col, f"monitoring.hosts[{i}].node", host.node)
            if host.name in assets:
                col.add(f"monitoring.hosts[{i}].name", f"{host.name!r} is also an inventory asset: rename one")
            if host.vmid in guest_vmids:
                col.add(f"monitoring.hosts[{i}].vmid", f"VMID {host.vmid} is already used by an inventory asset")
            if host.address.split("/")[0] in guest_addresses:
                col.add(f"monitoring.hosts[{i}].address", f"{host.address} is already used by an inventory asset")
        self._check_storage(col, "monitoring.vm.storage", self.monitoring.vm.storage)
        self._check_storage(col, "monitoring.vm.data_storage", self.monitoring.vm.data_storage)
        self._check_storage(col, "proxmox.cloud_image.storage", self.proxmox.cloud_image.storage)
        self._check_storage(col, "proxmox.snippets_storage", self.proxmox.snippets_storage)

    def _check_backups(self, col: _Collector) -> None:
        """The backup job, the drill's scratch range and the PBS retention fit the inventory."""
        assets = self.inventory.by_name()
        guest_vmids = {a.vmid for a in self.inventory.assets if a.vmid is not None}
        if self.backups.storage != self.pbs.storage_id:
            col.add("backups.storage", f"backups go to the PBS storage entry: write {self.pbs.storage_id!r}")
        self._check_storage(col, "backups.drill.scratch_storage", self.backups.drill.scratch_storage)
        self._check_node(col, "backups.drill.node", self.backups.drill.node)
        low, high = self.backups.drill.scratch_vmid_range
        clash = sorted(v for v in guest_vmids | {h.vmid for h in self.monitoring.hosts} if low <= v <= high)
        if clash:
            col.add("backups.drill.scratch_vmid_range", f"overlaps VMIDs in use {clash}: pick a free range")
        if self.backups.selection == "all_except":
            for i, asset in enumerate(self.inventory.assets):
                if asset.backup is False and asset.name not in self.backups.exclude:
                    col.add(
                        f"inventory.assets[{i}].backup",
                        f"backups.selection is all_except: add {asset.name!r} to backups.exclude to skip it",
                    )
        for j, name in enumerate(self.backups.exclude):
            if name not in assets or not assets[name].is_guest:
                col.add(f"backups.exclude[{j}]", f"{name!r} is not a vm or lxc asset")
        for i, ds in enumerate(self.pbs.datastores):
            if ds.name == self.pbs.datastore and ds.prune.days_of_nightly_backups_kept() < self.backups.retention_days:
                col.add(
                    f"pbs.datastores[{i}].prune.keep_daily",
                    f"the datastore's prune job keeps {ds.prune.days_of_nightly_backups_kept()} nightly backups, "
                    f"fewer than backups.retention_days ({self.backups.retention_days}): raise keep_daily",
                )

    def _check_alerting(self, col: _Collector) -> None:
        """Hold times fit the evaluation interval; routes and maintenance windows name real services."""
        eval_s = duration_seconds(self.monitoring.evaluation_interval)
        thresholds = self.alerting.thresholds
        for field_name in type(thresholds).model_fields:
            if field_name.endswith("_for"):
                value = getattr(thresholds, field_name)
                if duration_seconds(value) % eval_s:
                    col.add(
                        f"alerting.thresholds.{field_name}",
                        f"{value} is not a multiple of evaluation_interval {self.monitoring.evaluation_interval}: "
                        "round it to a multiple",
                    )
        routes = self.alerting.routing
        for severity in ("critical", "warning", "info"):
            route: SeverityRoute = getattr(routes, severity)
            if duration_seconds(route.group_interval) < duration_seconds(route.group_wait):
                col.add(f"alerting.routing.{severity}.group_interval", "must be >= group_wait")
            for service in route.by_service:
                if service not in {a.service for a in self.inventory.assets} | {"monitoring", "backup"}:
                    col.add(
                        f"alerting.routing.{severity}.by_service.{service}",
                        f"no asset has service {service!r}: fix the tag or remove the route",
                    )
        services = {a.service for a in self.inventory.assets} | {"monitoring", "backup"}
        for i, window in enumerate(self.alerting.maintenance_windows):
            for j, service in enumerate(window.services):
                if service not in services:
                    col.add(
                        f"alerting.maintenance_windows[{i}].services[{j}]",
                        f"no asset has service {service!r}: this window would mute nothing; fix the tag",
                    )

    def _check_capacity_and_versions(self, col: _Collector) -> None:
        """The data disk holds what is kept; receivers need what the pinned Alertmanager reads."""
        loki_gib = self.loki.stored_gib() if self.loki.storage == "filesystem" else 0.0
        needed_gb = math.ceil((self.monitoring.retention_size_gb + loki_gib) * DISK_HEADROOM)
        if self.monitoring.vm.data_disk_gb < needed_gb:
            col.add(
                "monitoring.vm.data_disk_gb",
                f"{self.monitoring.vm.data_disk_gb} GB cannot hold Prometheus ({self.monitoring.retention_size_gb} GB) "
                f"and {loki_gib:.0f} GiB of Loki chunks with 15% headroom: set it to {needed_gb} or more, "
                "lower monitoring.retention_size_gb, or use loki.storage: s3",
            )
        if not alertmanager_reads_webhook_url_file(self.monitoring.versions.alertmanager):
            for i, receiver in enumerate(self.alerting.receivers):
                if receiver.type in ("webhook", "ntfy") and receiver.url_secret is not None:
                    col.add(
                        f"alerting.receivers[{i}].url_secret",
                        f"Alertmanager {self.monitoring.versions.alertmanager} cannot read a webhook URL from a file "
                        "(url_file needs 0.26+): write the URL as `url:` and put its token in "
                        "`credentials_secret:` (sent as a Bearer token), or pin a newer alertmanager",
                    )
        if duration_seconds(self.backups.drill.every) > 14 * 86400:
            col.add("backups.drill.every", "a restore drill every sprint means at most 14d")

    def _check_stack_ca_certificate(self, col: _Collector) -> None:
        """PBS serves the stack CA's certificate for its host; PVE verifies it by that CA, which
        the agents install on every PVE node, so each must be managed. A pin would break at the
        certificate's renewal (components/render/pbs_certificate.py)."""
        if self.monitoring.tls.mode == "acme":
            col.add(
                "pbs.certificate",
                "with tls.mode acme PBS already serves its ACME certificate: remove `certificate: stack_ca`",
            )
        if self.pbs.fingerprint is not None:
            col.add(
                "pbs.fingerprint",
                "with pbs.certificate stack_ca PVE verifies PBS by the stack's CA and the certificate is renewed "
                "by `pulumi up`, which would break the pin: remove the fingerprint",
            )
        for i, asset in enumerate(self.assets):
            if asset.kind == "pve_node" and not asset.managed:
                col.add(
                    f"inventory.assets[{i}].managed",
                    f"{asset.name} must trust the stack's CA to verify PBS (pbs.certificate stack_ca): "
                    "set `managed: true` so the stack installs it, or keep `certificate: self_signed`",
                )

    def _check_tls(self, col: _Collector) -> None:
        """Renewal starts before the expiry alert's threshold, so the alert means renewals failed;
        PVE pins PBS's self-signed certificate by fingerprint, and verifies an ACME one by CA."""
        tls, alert_days = self.monitoring.tls, self.alerting.thresholds.cert_expiry_days
        if self.pbs.certificate == "stack_ca":
            self._check_stack_ca_certificate(col)
        elif tls.mode == "acme" and self.pbs.fingerprint is not None:
            col.add(
                "pbs.fingerprint",
                "with tls.mode acme PBS serves an ACME certificate that changes on every renewal: remove the "
                "fingerprint so PVE verifies PBS by CA (LetsEncrypt's root is in PVE's trust store)",
            )
        if tls.mode == "internal_ca" and self.pbs.certificate == "self_signed" and self.pbs.fingerprint is None:
            col.add(
                "pbs.fingerprint",
                "PBS keeps its self-signed certificate: PVE needs its SHA-256 fingerprint "
                "(`proxmox-backup-manager cert info` on the PBS host), or set `pbs.certificate: stack_ca`",
            )
        if tls.mode == "acme":
            for i, host in enumerate(self.monitoring.hosts):
                if host.dns_name is None:
                    col.add(
                        f"monitoring.hosts[{i}].dns_name",
                        f"tls.mode acme issues each monitoring host a certificate for its DNS name: set "
                        f"dns_name to the name people reach {host.name} by, in the zone tls.dns_provider "
                        f"manages (e.g. {host.name}.home.example.net), or use tls.mode internal_ca",
                    )
        if tls.mode == "acme" and tls.renew_days <= alert_days:
            col.add(
                "monitoring.tls.renew_days",
                f"{tls.renew_days} must exceed alerting.thresholds.cert_expiry_days ({alert_days}): the expiry "
                "alert is for renewals that keep failing, so renewal has to start earlier",
            )


# ---------------------------------------------------------------------------------------------
# Semantic checks: values each valid alone that cannot work together (one function per rule)
# ---------------------------------------------------------------------------------------------

# The ranges queries look back over: the monthly report (tools/report, --from now-30d by default)
# and the datastore capacity forecast (rules/dashboards.yml: predict_linear(pbs_used[7d], ...)).
# Drill and on-call timestamps are gauges re-exported every scrape: no lookback.
LOOKBACKS = {"the monthly report (tools/report --from now-30d)": "30d", "the capacity forecast (pbs_used[7d])": "7d"}


def _check_storage_roles(config: StackConfig, col: _Collector) -> None:
    """The PBS storage entry holds backups only (PVE stores no disk images or snippets there), and
    the data disk's durable storage must take disk images."""
    users = {
        "monitoring.vm.storage": config.monitoring.vm.storage,
        "monitoring.vm.data_storage": config.monitoring.vm.data_storage,
        "proxmox.cloud_image.storage": config.proxmox.cloud_image.storage,
        "proxmox.snippets_storage": config.proxmox.snippets_storage,
        "backups.drill.scratch_storage": config.backups.drill.scratch_storage,
    }
    for path, storage in users.items():
        if storage == config.pbs.storage_id:
            col.add(
                path,
                f"{storage!r} is the PBS storage entry, which holds backups only: name a disk storage such as "
                f"{config.proxmox.existing_storages[-1]!r}",
            )
    durable = {s.name: s for s in config.proxmox.durable_storages}
    data = durable.get(config.monitoring.vm.data_storage or "")
    if data is not None and "images" not in data.content:
        col.add(
            "monitoring.vm.data_storage",
            f"durable storage {data.name!r} has no 'images' content, so PVE cannot put the data disk there: "
            "add images to its content",
        )


def _check_created_storage_ids(config: StackConfig, col: _Collector) -> None:
    """The storage entries the stack creates (the PBS one, the durable shares) need ids of their own:
    PVE storage ids are cluster-wide keys of /etc/pve/storage.cfg and creating one that exists fails
    ("storage ID '...' already defined", pve-storage src/PVE/API2/Storage/Config.pm, create)."""
    existing = set(config.proxmox.existing_storages)
    created = [("pbs.storage_id", config.pbs.storage_id)] + [
        (f"proxmox.durable_storages[{i}].name", share.name) for i, share in enumerate(config.proxmox.durable_storages)
    ]
    seen: dict[str, str] = {}
    for path, storage_id in created:
        if storage_id in existing:
            col.add(
                path, f"{storage_id!r} is already a storage of the cluster (proxmox.existing_storages): pick a new id"
            )
        elif storage_id in seen:
            col.add(path, f"{storage_id!r} is also {seen[storage_id]}: each created storage needs its own id")
        seen.setdefault(storage_id, path)


def _check_datastores(config: StackConfig, col: _Collector) -> None:
    """Two datastores in one directory (or one inside the other) corrupt each other's chunk store;
    a sync job from a datastore to itself copies nothing."""
    datastores = config.pbs.datastores
    for i, ds in enumerate(datastores):
        for other in datastores[:i]:
            mine, theirs = ds.path.rstrip("/") + "/", other.path.rstrip("/") + "/"
            if mine.startswith(theirs) or theirs.startswith(mine):
                col.add(
                    f"pbs.datastores[{i}].path",
                    f"{ds.path} overlaps datastore {other.name!r} at {other.path}: "
                    "give each datastore its own directory",
                )
        if ds.sync is not None and ds.sync.remote is None and ds.sync.remote_store == ds.name:
            col.add(
                f"pbs.datastores[{i}].sync.remote_store",
                f"datastore {ds.name!r} would sync from itself: name another datastore, or set `remote`",
            )


def _check_drill_targets_backed_up(config: StackConfig, col: _Collector) -> None:
    if config.backups.selection != "all_except":
        return
    for i, asset in enumerate(config.inventory.assets):
        if asset.drill is not None and asset.name in config.backups.exclude:
            col.add(
                f"inventory.assets[{i}].drill",
                f"{asset.name!r} is in backups.exclude, so there is no backup to restore: "
                "remove it from backups.exclude or drop `drill`",
            )


def _check_ports(config: StackConfig, col: _Collector) -> None:
    """Every daemon on a monitoring host listens on its own port."""
    ports = config.monitoring.ports
    seen: dict[int, str] = {}
    for name in type(ports).model_fields:
        port = getattr(ports, name)
        if port in seen:
            col.add(
                f"monitoring.ports.{name}",
                f"port {port} is also monitoring.ports.{seen[port]}: two daemons cannot listen on one port, "
                "pick another",
            )
        seen.setdefault(port, name)


def _check_retention_covers_lookbacks(config: StackConfig, col: _Collector) -> None:
    """Prometheus must keep the data its queries look back over, or they answer from nothing."""
    what, longest = max(LOOKBACKS.items(), key=lambda item: duration_seconds(item[1]))
    if duration_seconds(config.monitoring.retention) < duration_seconds(longest):
        col.add(
            "monitoring.retention",
            f"{config.monitoring.retention} is shorter than {what}, which looks back {longest}: "
            f"keep at least {longest}",
        )


def _check_rpo_fits_schedule(config: StackConfig, col: _Collector) -> None:
    """A recovery point objective shorter than the longest gap between two backup runs cannot be met:
    the newest backup is that old just before the next run (an RPO of 1h with a nightly job)."""
    gap = calendar_event.longest_gap_seconds(config.backups.schedule)
    if gap == math.inf:
        col.add(
            "backups.schedule", f"{config.backups.schedule!r} runs at most once in two years: give a recurring event"
        )
        return
    hours = f"{gap / 3600:g}h"
    if duration_seconds(config.backups.rpo) < gap:
        col.add(
            "backups.rpo",
            f"{config.backups.rpo} cannot be met: backups.schedule {config.backups.schedule!r} leaves up to {hours} "
            f"between runs; set rpo to {hours} or more, or schedule backups more often",
        )
    for i, asset in enumerate(config.inventory.assets):
        if asset.drill is not None and duration_seconds(asset.drill.rpo) < gap:
            col.add(
                f"inventory.assets[{i}].drill.rpo",
                f"{asset.drill.rpo} cannot be met: the newest backup of {asset.name!r} may be {hours} old "
                f"(backups.schedule {config.backups.schedule!r}); set it to {hours} or more",
            )


# ---------------------------------------------------------------------------------------------
# Loading: from a plain mapping (offline plan, tests) or from Pulumi config (pulumi up)
# ---------------------------------------------------------------------------------------------


def _format_loc(section: str, loc: tuple[int | str, ...]) -> str:
    path = f"{NAMESPACE}:{section}" if section else NAMESPACE
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-after", "function-before", "tagged-union")):
            continue
        else:
            path += f".{part}"
    return path


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class whose field the location points into (to suggest correct keys)."""
    model: Any = StackConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _problems_from(err: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        section = str(loc[0]) if loc else ""
        rest = loc[1:]
        inner = e.get("ctx", {}).get("error")
        if isinstance(inner, CrossFieldError):
            for p in inner.problems:
                base = _format_loc(section, rest)
                problems.append(Problem(f"{base}.{p.path}" if section else f"{NAMESPACE}:{p.path}", p.message))
            continue
        path = _format_loc(section, rest)
        kind = e["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc)
            valid = sorted(model.model_fields) if model else []
            hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else f"valid keys: {', '.join(valid)}"
            problems.append(Problem(path, f"unknown key: remove it ({fix})"))
        elif kind == "missing":
            problems.append(Problem(path, "required: add it"))
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            problems.append(Problem(path, msg))
    return problems


def _drop(raw: Any, loc: tuple[int | str, ...]) -> bool:
    """Remove the key at loc from a nested copy; True if something was removed."""
    node = raw
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(node, dict) and loc and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


def stack_of(source: str) -> str | None:
    """``staging`` of ``Pulumi.staging.yaml`` (None for any other source)."""
    found = re.fullmatch(r"Pulumi\.(.+)\.yaml", Path(source).name)
    return found.group(1) if found else None


def validate(raw: Mapping[str, Any], source: str = "stack config", stack: str | None = None) -> StackConfig:
    """Validate a mapping of sections (keys without the namespace) into a StackConfig.

    A single error is rarely alone: after a failure, unknown or invalid optional keys are
    dropped from a copy and validation repeats, so cross-field problems elsewhere (duplicate
    VMIDs, unknown receivers) are reported in the same message. Raises ConfigError.
    """
    unknown_sections = [k for k in raw if k not in SECTIONS]
    problems: list[Problem] = []
    for key in unknown_sections:
        hint = difflib.get_close_matches(key, SECTIONS, n=1)
        fix = f"did you mean '{NAMESPACE}:{hint[0]}'?" if hint else f"sections are {', '.join(SECTIONS)}"
        problems.append(Problem(f"{NAMESPACE}:{key}", f"unknown config key: remove it ({fix})"))
    data = json.loads(json.dumps({k: v for k, v in raw.items() if k in SECTIONS}))
    data["stack"] = stack or stack_of(source)
    for _ in range(8):
        try:
            config = StackConfig.model_validate(data)
        except ValidationError as err:
            found = _problems_from(err)
            problems.extend(found)
            removable = [
                tuple(e["loc"])
                for e in err.errors(include_url=False)
                if e["type"] == "extra_forbidden" or _has_default(tuple(e["loc"]))
            ]
            if not any([_drop(data, loc) for loc in removable]):
                break
            continue
        if problems:
            break
        return config
    problems.extend(_stack_level_problems(data))
    raise ConfigError(problems, source)


def _stack_level_problems(data: dict[str, Any]) -> list[Problem]:
    """Cross-references between sections, checked with the sections' own checks switched off."""
    token = _SECTION_CHECKS.set(False)
    try:
        StackConfig.model_validate(data)
    except ValidationError as err:
        return _problems_from(err)
    except Exception:  # noqa: BLE001 - best effort on a config already known to be invalid
        return []
    finally:
        _SECTION_CHECKS.reset(token)
    return []


def _has_default(loc: tuple[int | str, ...]) -> bool:
    model = _model_at(loc)
    if model is None or not loc or isinstance(loc[-1], int):
        return False
    field = model.model_fields.get(str(loc[-1]))
    return field is not None and not field.is_required()


def load() -> StackConfig:
    """Read and validate every section from Pulumi config (the real `pulumi up` path)."""
    import pulumi

    cfg = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for section in SECTIONS:
        value = cfg.get_object(section) if section != "cluster" else cfg.get(section)
        if value is not None:
            raw[section] = value
    return validate(raw, source=f"Pulumi.{pulumi.get_stack()}.yaml")


def read_stack_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Sections of a ``Pulumi.<stack>.yaml`` in the obsstack namespace, and the keys whose values
    are encrypted (``secure:``). The one reader of stack files: the plan, every tool and the tests."""
    try:
        document = stack_yaml.load(path)
    except (OSError, stack_yaml.StackFileError) as err:
        raise ConfigError([Problem(path.name, str(err))], path.name) from None
    values = document.get("config") or {}
    if not isinstance(values, dict):
        raise ConfigError([Problem("config", "must be a mapping of keys to values")])
    sections: dict[str, Any] = {}
    secure: list[str] = []
    problems = []
    for key, value in values.items():
        namespace, _, name = str(key).partition(":")
        if namespace != NAMESPACE or not name:
            problems.append(Problem(str(key), f"unknown config key: write it as {NAMESPACE}:<section>"))
        elif isinstance(value, dict) and set(value) == {"secure"}:
            secure.append(name)
        else:
            sections[name] = value
    if problems:
        raise ConfigError(problems, path.name)
    return sections, secure


def load_file(path: Path) -> StackConfig:
    """The validated config of a stack file (raises ConfigError naming every problem)."""
    sections, _ = read_stack_file(path)
    return validate(sections, source=path.name)


def load_secrets(config: StackConfig) -> dict[str, Any]:
    """Secret config key -> secret Output, for every key the stack references."""
    import pulumi

    cfg = pulumi.Config(NAMESPACE)
    return {key: cfg.require_secret(key) for key in config.secret_key_names()}

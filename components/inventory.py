"""Pure derivations from the StackConfig: what to scrape, what to back up, what to drill.

Nothing here talks to Pulumi or a host; every renderer, component, tool and test reads the same
Inventory, so a target can't be scraped by one part and forgotten by another.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from components.config import (
    TIER_SEVERITY,
    AppCheck,
    Asset,
    DrillSpec,
    Severity,
    StackConfig,
    duration_seconds,
    placement_edges,
)

MONITORING_SERVICE = "monitoring"

# Jobs on the monitoring host(s) that scrape the stack itself (Prometheus, Alertmanager, ...).
SELF_JOBS = ("prometheus", "alertmanager", "loki", "grafana", "alloy", "pushgateway", "blackbox")


@dataclass(frozen=True)
class Target:
    """One scrape target, labelled with the asset it belongs to."""

    address: str
    asset: str
    service: str
    tier: str
    extra_labels: tuple[tuple[str, str], ...] = ()

    @property
    def labels(self) -> dict[str, str]:
        return {"asset": self.asset, "service": self.service, "tier": self.tier, **dict(self.extra_labels)}

    @property
    def severity(self) -> Severity:
        return TIER_SEVERITY[self.tier]


@dataclass(frozen=True)
class ScrapeJob:
    """A Prometheus scrape job. ``probe_module`` set means the blackbox exporter probes targets;
    ``exporter`` set means a multi-target exporter is asked with ``?target=``."""

    name: str
    targets: tuple[Target, ...]
    metrics_path: str = "/metrics"
    scheme: str = "http"
    probe_module: str | None = None
    exporter: str | None = None
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MonitoringNode:
    name: str
    ip: str
    cidr: str
    node: str
    vmid: int
    replica: str
    dns_name: str | None = None  # what people reach it by (URLs, alert links); the stack uses ip

    @property
    def public_host(self) -> str:
        return self.dns_name or self.ip


@dataclass(frozen=True)
class ProtectedGuest:
    name: str
    vmid: int
    node: str
    kind: str
    service: str
    tier: str


@dataclass(frozen=True)
class DrillTarget:
    name: str
    vmid: int
    node: str
    service: str
    canary_paths: tuple[str, ...]
    rpo_seconds: int
    rto_seconds: int
    kind: str = "qemu"  # qemu | lxc: PVE's name of the guest type (API path, backup subtype)
    checks: tuple[AppCheck, ...] = ()


@dataclass(frozen=True)
class CoverageEntry:
    """A (job, instance) Prometheus must scrape for the asset to count as covered."""

    asset: str
    job: str
    instance: str
    service: str
    tier: str


@dataclass(frozen=True)
class Upstream:
    """Something many targets cannot be reached without. When every one of its ``targets``
    (job, instance) fails, UpstreamDown pages once and Alertmanager inhibits the alerts of the
    ``dependent_assets`` (and, for a prober, of every target of the ``dependent_jobs``) and the
    ``members``' own alerts: the upstream's asset, or every asset of an any-of group (whose
    ``name`` and ``asset`` are the group's, ``any_of_groups``)."""

    name: str
    asset: str
    service: str
    tier: str
    reason: str
    targets: tuple[tuple[str, str], ...]
    dependent_assets: tuple[str, ...] = ()
    dependent_jobs: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    cluster: str
    monitoring: tuple[MonitoringNode, ...]
    managed_hosts: tuple[Asset, ...]
    scrape_jobs: tuple[ScrapeJob, ...]
    protected: tuple[ProtectedGuest, ...]
    drill_targets: tuple[DrillTarget, ...]
    coverage: tuple[CoverageEntry, ...] = field(default=())
    upstreams: tuple[Upstream, ...] = field(default=())

    def job(self, name: str) -> ScrapeJob:
        for job in self.scrape_jobs:
            if job.name == name:
                return job
        raise KeyError(name)

    @property
    def registered_assets(self) -> list[str]:
        return sorted({entry.asset for entry in self.coverage})


def build(config: StackConfig) -> Inventory:
    monitoring = tuple(
        MonitoringNode(
            name=h.name,
            ip=h.address.split("/")[0],
            cidr=h.address,
            node=h.node,
            vmid=h.vmid,
            replica=h.name,
            dns_name=h.dns_name,
        )
        for h in config.monitoring.hosts
    )
    managed = tuple(a for a in config.assets if a.is_host and a.managed)
    jobs = [
        _node_job(config, managed, monitoring),
        *_probe_jobs(config),
        *_proxmox_jobs(config),
        *_self_jobs(config, monitoring),
    ]
    coverage = tuple(
        CoverageEntry(asset=t.asset, job=j.name, instance=t.address, service=t.service, tier=t.tier)
        for j in jobs
        for t in j.targets
    )
    excluded = set(config.backups.exclude)
    protected = tuple(
        ProtectedGuest(a.name, a.vmid, a.node, a.kind, a.service, a.tier)  # type: ignore[arg-type]
        for a in config.assets
        if a.is_guest and (a.protected if config.backups.selection == "protected" else a.name not in excluded)
    )
    drill_targets = tuple(
        _drill_target(a, a.drill) for a in config.assets if a.drill is not None and a.vmid is not None
    )
    return Inventory(
        cluster=config.cluster,
        monitoring=monitoring,
        managed_hosts=managed,
        scrape_jobs=tuple(jobs),
        protected=protected,
        drill_targets=drill_targets,
        coverage=coverage,
        upstreams=_upstreams(config, coverage),
    )


def _node_job(config: StackConfig, managed: tuple[Asset, ...], monitoring: tuple[MonitoringNode, ...]) -> ScrapeJob:
    """node_exporter on every managed host and every monitoring host."""
    port = config.monitoring.ports.node_exporter
    targets = [Target(f"{a.address}:{port}", a.name, a.service, a.tier) for a in managed]
    targets += [Target(f"{m.ip}:{port}", m.name, MONITORING_SERVICE, "critical") for m in monitoring]
    return ScrapeJob("node", tuple(targets))


def _probe_jobs(config: StackConfig) -> list[ScrapeJob]:
    """One blackbox job per probe module that some asset uses."""
    jobs = []
    for module in ("http_2xx", "tcp_connect", "icmp"):
        probes = tuple(
            Target(p.target, a.name, a.service, a.tier) for a in config.assets for p in a.probes if p.module == module
        )
        if probes:
            jobs.append(ScrapeJob(f"blackbox_{module}", probes, metrics_path="/probe", probe_module=module))
    return jobs


def _proxmox_jobs(config: StackConfig) -> list[ScrapeJob]:
    """pve-exporter (multi-target, one per PVE node)."""
    jobs = []
    pve_nodes = config.pve_nodes()
    if pve_nodes:
        jobs.append(
            ScrapeJob(
                "pve",
                tuple(Target(str(n.address), n.name, n.service, n.tier) for n in pve_nodes),
                metrics_path="/pve",
                exporter=f"127.0.0.1:{config.monitoring.ports.pve_exporter}",
                params=(("cluster", "1"), ("node", "1")),
            )
        )
    # No `pbs` job: PBS serves no Prometheus endpoint; its metrics come through the PBS host's
    # node_exporter textfile collector (components/render/pbs_collector.py).
    return jobs


def _self_jobs(config: StackConfig, monitoring: tuple[MonitoringNode, ...]) -> list[ScrapeJob]:
    """The monitoring plane's own services on every monitoring host."""
    ports = config.monitoring.ports
    self_ports = {
        "prometheus": ports.prometheus,
        "alertmanager": ports.alertmanager,
        "loki": ports.loki,
        "grafana": ports.grafana,
        "alloy": ports.alloy,
        "pushgateway": ports.pushgateway,
        "blackbox": ports.blackbox,
    }
    return [
        ScrapeJob(
            job_name,
            tuple(Target(f"{m.ip}:{self_ports[job_name]}", m.name, MONITORING_SERVICE, "critical") for m in monitoring),
            scheme="https" if job_name == "grafana" else "http",
        )
        for job_name in SELF_JOBS
    ]


def _drill_target(asset: Asset, drill: DrillSpec) -> DrillTarget:
    return DrillTarget(
        name=asset.name,
        vmid=asset.vmid,  # type: ignore[arg-type]
        node=asset.node,  # type: ignore[arg-type]
        service=asset.service,
        canary_paths=drill.canary_paths,
        rpo_seconds=duration_seconds(drill.rpo),
        rto_seconds=duration_seconds(drill.rto),
        kind="lxc" if asset.kind == "lxc" else "qemu",
        checks=drill.checks,
    )


# ---------------------------------------------------------------------------------------------
# Dependency model (docs/alerting.md): which failure explains which other alerts
# ---------------------------------------------------------------------------------------------


def _in_network(host: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False  # a DNS name: reached through the resolver and, for all we know, the router


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def any_of_groups(config: StackConfig) -> dict[str, tuple[str, ...]]:
    """Upstreams of which any one suffices, by name: the monitoring hosts' resolvers when there are
    several (names resolve while one answers). The name cannot be an asset's (``:`` is no Name
    character) and holds no regex metacharacter, so inhibit rules can match it as an asset."""
    resolvers = config.resolvers()
    if len(resolvers) < 2:
        return {}
    return {"resolvers:" + ":".join(a.name for a in resolvers): tuple(a.name for a in resolvers)}


def _resolver_upstream(config: StackConfig) -> tuple[str | None, tuple[str, ...]]:
    """What a probe naming a host needs (the resolver, or the group of them) and the resolvers."""
    resolvers = tuple(a.name for a in config.resolvers())
    groups = any_of_groups(config)
    return (next(iter(groups)) if groups else (resolvers[0] if resolvers else None)), resolvers


def dependency_edges(config: StackConfig) -> dict[str, tuple[str, ...]]:
    """asset -> what it needs, direct (every one of them: any down takes it down): its PVE node and
    ``depends_on`` (config), the monitoring hosts' gateway when it lies outside their network, the
    resolver (or, with several, their any-of group, ``any_of_groups``) when a probe names a host.
    A derived edge that would close a cycle is left out (the explicit and placement edges win)."""
    edges = {name: list(upstreams) for name, upstreams in placement_edges(config.assets).items()}
    groups = any_of_groups(config)
    derived: list[tuple[str, str]] = []
    for host in config.monitoring.hosts:
        gateway = config.owner(host.gateway) if host.gateway else None
        network = ipaddress.ip_interface(host.address).network
        for asset in config.assets:
            reached = asset.reached_hosts()
            if gateway and asset.name != gateway.name and not all(_in_network(h, network) for h in reached):
                derived.append((asset.name, gateway.name))
    needed, resolvers = _resolver_upstream(config)
    for asset in config.assets:
        # A resolver resolves names itself while it is up: it needs no other resolver.
        if needed and asset.name not in resolvers and any(_is_name(h) for h in asset.reached_hosts()):
            derived.append((asset.name, needed))
    for dependent, upstream in derived:
        if upstream not in edges[dependent] and upstream not in explained_by(edges, groups, dependent):
            edges[dependent].append(upstream)
    return {name: tuple(upstreams) for name, upstreams in edges.items()}


def explained_by(
    edges: Mapping[str, Iterable[str]], groups: Mapping[str, Iterable[str]], upstream: str
) -> tuple[str, ...]:
    """Every asset and any-of group that is down whenever ``upstream`` is: an asset when anything
    it needs is, a group when all its members are (a fixed point, so dependents are transitive)."""
    down = {upstream}
    grown = True
    while grown:
        grown = False
        for group, members in groups.items():
            if group not in down and all(m in down for m in members):
                down.add(group)
                grown = True
        for name, needs in edges.items():
            if name not in down and any(n in down for n in needs):
                down.add(name)
                grown = True
    return tuple(sorted(down - {upstream}))


def _upstreams(config: StackConfig, coverage: tuple[CoverageEntry, ...]) -> tuple[Upstream, ...]:
    edges = dependency_edges(config)
    groups = any_of_groups(config)
    by_asset = {a.name: a for a in config.assets}
    resolvers = {a.name for a in config.resolvers()}
    out = []
    for name in sorted({u for needs in edges.values() for u in needs}):
        members = groups.get(name, (name,))
        dependents = explained_by(edges, groups, name)
        targets = _upstream_targets(coverage, members, resolvers)
        if any(m not in by_asset for m in members) or not dependents or not targets:
            continue
        # A group pages with its most severe member's tier and service.
        lead = min((by_asset[m] for m in members), key=lambda a: list(TIER_SEVERITY).index(a.tier))
        reason = _reason(lead, grouped=name in groups)
        out.append(
            Upstream(name, name, lead.service, lead.tier, reason, targets, dependent_assets=dependents, members=members)
        )
    probe_jobs = tuple(sorted({e.job for e in coverage if e.job.startswith("blackbox_")}))
    for entry in coverage:
        if entry.job == "blackbox" and probe_jobs:
            out.append(
                Upstream(
                    f"blackbox-{entry.asset}",
                    entry.asset,
                    entry.service,
                    entry.tier,
                    "prober",
                    ((entry.job, entry.instance),),
                    dependent_jobs=probe_jobs,
                    members=(entry.asset,),
                )
            )
    return tuple(out)


def _upstream_targets(
    coverage: tuple[CoverageEntry, ...], members: tuple[str, ...], resolvers: set[str]
) -> tuple[tuple[str, str], ...]:
    """(job, instance) of each member; of a resolver, its probes when it has any: a DNS daemon
    that died in a running container stops names resolving while its node exporter answers.
    Empty when a member has no target at all: nothing could tell that it is down too."""
    targets: list[tuple[str, str]] = []
    for member in members:
        own = [(e.job, e.instance) for e in coverage if e.asset == member]
        probes = [t for t in own if t[0].startswith("blackbox_")]
        if not own:
            return ()
        targets += probes if member in resolvers and probes else own
    return tuple(sorted(targets))


def _reason(asset: Asset, grouped: bool) -> str:
    if grouped:
        return "resolvers (any one suffices)"
    return "PVE node" if asset.kind == "pve_node" else "network or explicit depends_on"

"""rules/availability.yml: is every registered target scraped, every guest registered, every probe up.

The inventory is compiled into constant recording rules (``obs:registered_target:info``,
``obs:registered_guest:info``), so Prometheus knows what *should* exist: coverage is measured
against the inventory and a target whose scrape config vanished counts as uncovered.

pve-exporter's cluster metrics (pve_guest_info) come from every scraped PVE node: alerts on them
aggregate away `instance` so one guest is one alert, not one per node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from components.config import StackConfig, duration_seconds, upstream_down_seconds
from components.inventory import Inventory
from components.render.rules.builders import (
    CERT_FOR,
    Rule,
    alert,
    dump,
    duration,
    guest_id,
    range_regex,
    ratio,
    record,
    tiered,
)

# Gives an expression over (job, instance) the asset/service/tier of the registered target.
JOIN = "* on(job, instance) group_left(asset, service, tier) obs:registered_target:info"


def _registered_targets(inventory: Inventory) -> Iterator[Rule]:
    for entry in sorted(inventory.coverage, key=lambda e: (e.job, e.instance)):
        yield record(
            "obs:registered_target:info",
            "vector(1)",
            {"job": entry.job, "instance": entry.instance, "asset": entry.asset, "service": entry.service}
            | {"tier": entry.tier},
        )


def _upstream_targets(inventory: Inventory) -> Iterator[Rule]:
    for upstream in inventory.upstreams:
        for job, instance in upstream.targets:
            labels = {"upstream": upstream.name, "job": job, "instance": instance, "asset": upstream.asset}
            yield record(
                "obs:upstream_target:info",
                "vector(1)",
                labels | {"service": upstream.service, "tier": upstream.tier},
            )


def _registered_guests(config: StackConfig, inventory: Inventory) -> Iterator[Rule]:
    guests = {guest_id(a.kind, a.vmid): (a.name, a.service) for a in config.assets if a.is_guest and a.vmid}
    guests |= {guest_id("vm", m.vmid): (m.name, "monitoring") for m in inventory.monitoring}
    for gid, (asset, service) in sorted(guests.items()):
        yield record("obs:registered_guest:info", "vector(1)", {"id": gid, "asset": asset, "service": service})


def _coverage_records() -> list[Rule]:
    return [
        record(
            "obs:scrape_coverage:ratio",
            """
            (count(obs:registered_target:info and on(job, instance) (up == 1)) or vector(0))
            /
            count(obs:registered_target:info)
            """,
        ),
        record(
            "service:scrape_coverage:ratio",
            """
            (
              count by (service) (obs:registered_target:info and on(job, instance) (up == 1))
              /
              count by (service) (obs:registered_target:info)
            )
            or
            0 * count by (service) (obs:registered_target:info)
            """,
        ),
        record("obs:uncovered_target:info", "obs:registered_target:info unless on(job, instance) (up == 1)"),
        # Scrape config drift: registered targets Prometheus has no `up` for at all. Targets that
        # are merely down are TargetDown's (and UpstreamDown's) business, not coverage's.
        record(
            "obs:scrape_configured:ratio",
            """
            (count(obs:registered_target:info and on(job, instance) up) or vector(0))
            /
            count(obs:registered_target:info)
            """,
        ),
    ]


def behind_host_seconds(config: StackConfig) -> int:
    """TargetDown's hold for a target that is not a node exporter: target_down_for plus one scrape
    and one evaluation of phase skew, so when a whole host dies its node exporter's TargetDown,
    which inhibits every other alert of the asset (render/alertmanager.py, HOST_DOWN_INHIBITION),
    always fires first. With the same hold, a replica's Alertmanager scraped an interval before
    its node exporter fired an evaluation earlier and was notified before the inhibition existed:
    a killed replica paged twice per receiver (found by the twin, tests/twin). The same skew as
    UpstreamDown's (components/config.py, upstream_down_seconds), the other way round."""
    mon = config.monitoring
    skew = duration_seconds(mon.scrape_interval) + duration_seconds(mon.evaluation_interval)
    return duration_seconds(config.alerting.thresholds.target_down_for) + skew


def _target_down(config: StackConfig) -> list[Rule]:
    th = config.alerting.thresholds

    def query(job: str) -> Callable[[str], str]:
        def for_tier(tier: str) -> str:
            # Registered targets take asset/service/tier from the inventory; scrape jobs added
            # outside it (extra scrape configs, the alert bench) count when they carry a tier.
            return f'''
            (up{{{job}}} == 0) {JOIN}{{tier="{tier}"}}
            or
            (up{{{job},tier="{tier}"}} == 0 unless on(job, instance) obs:registered_target:info)
            '''

        return for_tier

    def rules(job: str, hold: str) -> list[Rule]:
        return tiered(
            config,
            "TargetDown",
            query(job),
            hold=hold,
            service="{{ $labels.service }}",
            summary="{{ $labels.asset }}: {{ $labels.job }} target {{ $labels.instance }} is down",
            description=(
                "Prometheus could not scrape {{ $labels.job }} on {{ $labels.instance }} (asset {{ $labels.asset }}, "
                f"tier {{{{ $labels.tier }}}}) for {hold}: its metrics and every alert built on them "
                "are blind until it is back."
            ),
        )

    return rules('job="node"', th.target_down_for) + rules('job!="node"', duration(behind_host_seconds(config)))


def _target_not_scraped(config: StackConfig) -> list[Rule]:
    """A registered target Prometheus has no `up` for at all (its scrape config vanished): one
    lost critical target among 35 keeps coverage above 95%, so it alerts by itself."""
    th = config.alerting.thresholds
    return tiered(
        config,
        "TargetNotScraped",
        lambda tier: f'obs:registered_target:info{{tier="{tier}"}} unless on(job, instance) up',
        hold=th.scrape_coverage_for,
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: {{ $labels.job }} target {{ $labels.instance }} is not scraped at all",
        description=(
            "The inventory registers {{ $labels.job }} on {{ $labels.instance }} (asset {{ $labels.asset }}) but "
            f"Prometheus has had no scrape of it for {th.scrape_coverage_for}: prometheus.yml drifted from the "
            "inventory (re-run `pulumi up`), and every alert on its metrics is blind."
        ),
    )


def _scrape_coverage(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    return alert(
        config,
        "ScrapeCoverageLow",
        f"obs:scrape_configured:ratio < {ratio(th.scrape_coverage_min)}",
        hold=th.scrape_coverage_for,
        severity="warning",
        service="monitoring",
        summary="Only {{ $value | humanizePercentage }} of registered targets are in Prometheus' scrape config",
        description=(
            f"Fewer than {th.scrape_coverage_min:.0%} of the targets registered in the inventory have been "
            f"scraped at all for {th.scrape_coverage_for}: prometheus.yml drifted from the inventory. "
            "See obs:uncovered_target:info for the list."
        ),
    )


def _unregistered_guest(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    scratch_low, scratch_high = config.backups.drill.scratch_vmid_range
    return alert(
        config,
        "UnregisteredGuest",
        f"""
        max by (id, name, node, type) (
          pve_guest_info{{id!~"(qemu|lxc)/({range_regex(scratch_low, scratch_high)})", template!="1"}}
        )
        unless on(id) obs:registered_guest:info
        """,
        hold=th.unregistered_guest_for,
        severity="info",
        service="monitoring",
        summary="Proxmox guest {{ $labels.id }} ({{ $labels.name }}) is not in the inventory",
        description=(
            "{{ $labels.type }} {{ $labels.name }} ({{ $labels.id }} on {{ $labels.node }}) has existed for "
            f"{th.unregistered_guest_for} without an inventory entry: it is neither monitored nor backed up "
            "by this stack."
        ),
    )


def _service_probe_failed(config: StackConfig) -> list[Rule]:
    th = config.alerting.thresholds
    return tiered(
        config,
        "ServiceProbeFailed",
        lambda tier: f'(probe_success == 0) {JOIN}{{tier="{tier}"}}',
        hold=th.probe_failed_for,
        service="{{ $labels.service }}",
        summary="{{ $labels.asset }}: {{ $labels.job }} probe of {{ $labels.instance }} fails",
        description=(
            "The blackbox exporter's {{ $labels.job }} probe of {{ $labels.instance }} has failed for "
            f"{th.probe_failed_for}: users of {{{{ $labels.service }}}} likely see an outage."
        ),
    )


def _upstream_down(config: StackConfig) -> list[Rule]:
    hold = duration(upstream_down_seconds(config))

    # Every target of the upstream fails: scrapes fail (up == 0) or probes run and fail
    # (probe_success == 0). A probe whose scrape failed proves nothing about the upstream (the
    # prober is down: that is the prober's own UpstreamDown), so it does not count as failed.
    # `instance` is the upstream's name: acknowledgements (obs_alert_acknowledged joins on instance,
    # not on upstream) and Alertmanager's groups (by instance) then tell two upstreams apart.
    def query(tier: str) -> str:
        return f'''
            label_replace(
              max by (upstream, asset, service, tier) (obs:upstream_target:info{{tier="{tier}"}}),
              "instance", "$1", "upstream", "(.+)"
            )
            unless on(upstream)
            (
              obs:upstream_target:info
              unless on(job, instance)
              (up{{job!~"blackbox_.+"}} == 0 or probe_success == 0)
            )
            '''

    return tiered(
        config,
        "UpstreamDown",
        query,
        hold=hold,
        service="{{ $labels.service }}",
        summary="{{ $labels.upstream }} is down: the alerts of everything behind it are suppressed",
        description=(
            "Every check of {{ $labels.upstream }} (asset {{ $labels.asset }}) has failed for "
            f"{hold}. Assets that cannot be reached without it (docs/alerting.md, dependency model) "
            "still fire in Prometheus and on the dashboards, but Alertmanager inhibits their "
            "notifications while this alert fires: fix this first."
        ),
    )


def _tls_certificate_expiring(config: StackConfig) -> Rule:
    th = config.alerting.thresholds
    return alert(
        config,
        "TLSCertificateExpiringSoon",
        f"((probe_ssl_earliest_cert_expiry - time()) < {th.cert_expiry_days} * 86400) {JOIN}",
        hold=CERT_FOR,
        severity="warning",
        service="{{ $labels.service }}",
        summary="TLS certificate of {{ $labels.instance }} expires in {{ $value | humanizeDuration }}",
        description=(
            "The certificate chain served by {{ $labels.instance }} ({{ $labels.asset }}) expires in "
            f"{{{{ $value | humanizeDuration }}}}, under the {th.cert_expiry_days}-day threshold: renew it."
        ),
    )


def render(config: StackConfig, inventory: Inventory) -> str:
    recording = [
        *_registered_targets(inventory),
        *_registered_guests(config, inventory),
        *_upstream_targets(inventory),
        *_coverage_records(),
    ]
    alerts = [
        *_target_down(config),
        *_upstream_down(config),
        *_target_not_scraped(config),
        _scrape_coverage(config),
        _unregistered_guest(config),
        *_service_probe_failed(config),
        _tls_certificate_expiring(config),
    ]
    return dump("availability", recording + alerts)

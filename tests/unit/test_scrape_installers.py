"""Every scrape job in the rendered prometheus.yml scrapes something the stack installs (or an
external asset probed by the blackbox exporter it installs): no job points at a port nothing
listens on, so coverage of the registered assets can reach 100% on day one."""

from __future__ import annotations

import yaml

from components.monitoring import services
from components.render import files_for, layout

# The service (components/monitoring/services.py) that serves each job; blackbox_<module> jobs
# are served by the blackbox exporter, their targets being the external assets it probes.
JOB_SERVICE = {
    "node": "node_exporter",
    "pve": "pve_exporter",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "loki": "loki",
    "grafana": "grafana",
    "alloy": "alloy",
    "pushgateway": "pushgateway",
    "blackbox": "blackbox",
}


def _service_of(job: str) -> str:
    service = "blackbox" if job.startswith("blackbox_") else JOB_SERVICE.get(job)
    assert service, f"job {job}: no service of the stack serves it"
    return service


def _installed(config, inventory, host: str, ip: str) -> set[str]:
    files, secrets = files_for(config, inventory, host)
    monitoring = host in {m.name for m in inventory.monitoring}
    only = services.ORDER if monitoring else services.AGENT_SERVICES
    return {s.name for s in services.specs(config, ip, files, secrets, only=only)}


def _scraped_hosts(scrape: dict, node_ip: str) -> set[str]:
    """The host:port Prometheus connects to for each target (multi-target jobs: the exporter)."""
    replacement = [
        r["replacement"] for r in scrape.get("relabel_configs", []) if r.get("target_label") == "__address__"
    ]
    targets = [t for group in scrape["static_configs"] for t in group["targets"]]
    addresses = replacement or targets
    return {a.rsplit(":", 1)[0].replace("127.0.0.1", node_ip) for a in addresses}


def test_every_scrape_job_has_an_installer(example_config, example_inventory) -> None:
    ip_to_host = {m.ip: m.name for m in example_inventory.monitoring}
    ip_to_host |= {str(a.address): a.name for a in example_inventory.managed_hosts}
    for node in example_inventory.monitoring:
        files, _ = files_for(example_config, example_inventory, node.name)
        (prometheus_yml,) = [f.content for f in files if f.path == layout.PROMETHEUS_CONFIG]
        for scrape in yaml.safe_load(prometheus_yml)["scrape_configs"]:
            job = scrape["job_name"]
            for ip in _scraped_hosts(scrape, node.ip):
                assert ip in ip_to_host, f"job {job} scrapes {ip}, a host the stack installs nothing on"
                host = ip_to_host[ip]
                installed = _installed(example_config, example_inventory, host, ip)
                assert _service_of(job) in installed, f"job {job}: {host} gets no {_service_of(job)}"


def test_every_registered_asset_is_covered_by_an_installed_job(example_config, example_inventory) -> None:
    jobs = {j.name for j in example_inventory.scrape_jobs}
    assert all(job.startswith("blackbox_") or job in JOB_SERVICE for job in jobs), jobs
    covered = {e.asset for e in example_inventory.coverage if e.job in jobs}
    assets = {a.name for a in example_config.assets} | {m.name for m in example_inventory.monitoring}
    assert covered == assets == set(example_inventory.registered_assets)

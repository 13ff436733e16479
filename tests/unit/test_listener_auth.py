"""What each LAN-facing listener demands, as rendered (docs/security.md): the blackbox exporter's
and the Pushgateway's web configs, the probe jobs' credentials, Grafana's /metrics and plugin
installs, Alloy's pprof, Alertmanager's gossip TLS."""

from __future__ import annotations

import configparser
import shlex

import yaml

from components import config as stack_config
from components.inventory import build
from components.render import alloy, grafana_ini, layout, loki, prometheus, systemd, webconfig
from tests.unit.monitoring_helpers import with_replicas


def _defaults(files, path: str) -> list[str]:
    text = next(f.content for f in files if f.path == path)
    line = next(line for line in text.splitlines() if line.startswith(("ARGS=", "CUSTOM_ARGS=")))
    return shlex.split(shlex.split(line.split("=", 1)[1])[0])


def test_blackbox_and_pushgateway_take_their_web_configs(example_config, example_inventory) -> None:
    files = systemd.files(example_config, example_inventory)
    blackbox = _defaults(files, layout.defaults_file("prometheus-blackbox-exporter"))
    pushgateway = _defaults(files, layout.defaults_file("prometheus-pushgateway"))
    assert f"--web.config.file={layout.BLACKBOX_WEB}" in blackbox
    assert f"--web.config.file={layout.PUSHGATEWAY_WEB}" in pushgateway
    shipped = {s.path: s.source for s in webconfig.secret_files(example_config, example_inventory)}
    assert shipped[layout.BLACKBOX_WEB] == "web:scrape"
    assert shipped[layout.PUSHGATEWAY_WEB] == "web:scrape+drill"


def test_probe_jobs_authenticate_to_the_blackbox_exporter(example_config, example_inventory) -> None:
    doc = yaml.safe_load(prometheus.render(example_config, example_inventory))
    probes = [j for j in doc["scrape_configs"] if j.get("metrics_path") == "/probe"]
    assert probes
    for job in probes + [j for j in doc["scrape_configs"] if j["job_name"] in ("blackbox", "grafana")]:
        assert job["scheme"] == "https", job["job_name"]
        assert job["basic_auth"]["username"] == layout.SCRAPE_USER, job["job_name"]


def test_grafana_metrics_need_basic_auth_and_plugins_cannot_be_installed(example_config, example_inventory) -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(grafana_ini.render(example_config, example_inventory))
    assert ini["metrics"]["basic_auth_username"] == layout.SCRAPE_USER
    assert ini["metrics"]["basic_auth_password"] == f"$__file{{{layout.GRAFANA_SECRETS_DIR}/metrics_password}}"
    assert ini["plugins"]["plugin_admin_enabled"] == "false"
    shipped = {s.path: s for s in webconfig.secret_files(example_config, example_inventory)}
    password = shipped[f"{layout.GRAFANA_SECRETS_DIR}/metrics_password"]
    assert (password.source, password.mode, password.owner) == ("password:scrape", "0600", "grafana")


def test_alloy_serves_no_pprof_and_no_support_bundle(example_config, example_inventory) -> None:
    files = [f for f in systemd.files(example_config, example_inventory) if f.path == layout.defaults_file("alloy")]
    assert len(files) == len(example_inventory.monitoring) + len(example_inventory.managed_hosts)
    for f in files:
        args = _defaults([f], layout.defaults_file("alloy"))
        assert "--server.http.enable-pprof=false" in args, f.host
        assert "--server.http.disable-support-bundle" in args, f.host


def test_alloy_demands_the_stack_certificate_off_loopback(example_config, example_inventory) -> None:
    """On a monitoring host Alloy listens on the host address behind mutual TLS, and Prometheus
    scrapes it with the host certificate; on any other host it listens on loopback only."""
    defaults = {f.host: f for f in systemd.files(example_config, example_inventory)
                if f.path == layout.defaults_file("alloy")}  # fmt: skip
    configs = {f.host: f.content for f in alloy.files(example_config, example_inventory)}
    monitoring = {m.name: m.ip for m in example_inventory.monitoring}
    for host, f in defaults.items():
        listen = next(a for a in _defaults([f], f.path) if a.startswith("--server.http.listen-addr="))
        tls = 'client_auth_type = "RequireAndVerifyClientCert"' in configs[host]
        if host in monitoring:
            assert listen.endswith(f"={monitoring[host]}:{example_config.monitoring.ports.alloy}"), host
            assert tls, f"{host}: Alloy on the host address without mutual TLS"
        else:
            assert listen.endswith(f"=127.0.0.1:{example_config.monitoring.ports.alloy}"), host
            assert not tls, host
    doc = yaml.safe_load(prometheus.render(example_config, example_inventory))
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "alloy")
    assert job["scheme"] == "https"
    assert job["tls_config"]["cert_file"] == f"{layout.TLS_SUBDIR}/{layout.CERT_FILE}"


def test_gossip_is_mutual_tls_only_with_peers(example_sections) -> None:
    single = stack_config.validate(example_sections)
    pair = stack_config.validate(with_replicas(example_sections, 2))
    for config, expect in ((single, False), (pair, True)):
        files = systemd.files(config, build(config))
        args = [a for f in files if f.path == layout.defaults_file("prometheus-alertmanager") for a in [f.content]]
        assert all((f"--cluster.tls-config={layout.ALERTMANAGER_CLUSTER_TLS}" in a) == expect for a in args)
        assert any(f.path == layout.ALERTMANAGER_CLUSTER_TLS for f in files) == expect
    doc = yaml.safe_load(systemd.cluster_tls_config())
    assert doc["tls_server_config"]["client_auth_type"] == "RequireAndVerifyClientCert"


def test_daemons_the_socket_scan_cannot_run_demand_auth_off_loopback(example_config, example_inventory) -> None:
    """Grafana and Loki are not in Debian, so tests/host/test_socket_scan.py cannot run them: what
    their rendered configs demand on the host address instead (Alloy: the test above)."""
    for node in example_inventory.monitoring:
        ini = configparser.ConfigParser(interpolation=None)
        ini.read_string(grafana_ini.render(example_config, example_inventory, node))
        assert (ini["server"]["http_addr"], ini["server"]["protocol"]) == (node.ip, "https")
        assert ini["auth.anonymous"]["enabled"] == "false"
        server = yaml.safe_load(loki.render(example_config, example_inventory, node))["server"]
        assert server["http_listen_address"] == node.ip
        assert server["http_tls_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
        assert server["grpc_listen_address"] == "127.0.0.1"

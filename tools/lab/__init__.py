"""The local lab: the monitoring plane on 127.0.0.1 from Debian packages, with the rendered configs.

Prometheus, Alertmanager, node exporter and blackbox exporter run on free loopback ports with
their own temporary data directories, plus a webhook sink standing in for every receiver (the
rendered alertmanager.yml keeps its routes, inhibitions and time intervals; only the receivers'
endpoints are replaced by the sink, so no secret is needed). ``speedup`` divides every timing
(scrape/evaluation intervals, rule ``for``, group_wait/group_interval, resend delay) so tests run
the same configs in seconds; ``speedup=1`` is production timing (the benchmark).

    with Lab(config, speedup=15) as lab:
        lab.stop_process("node_exporter"); lab.sink.wait_for(...)
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from components.config import StackConfig, duration_seconds
from components.inventory import Inventory
from components.inventory import build as build_inventory
from components.render import alertmanager as am_render
from components.render.alerting_timers import ACK_METRIC_RELABEL_CONFIGS
from components.render.rules import rule_files
from tools.lab.sink import WebhookSink

BINARIES = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
    "blackbox": "prometheus-blackbox-exporter",
}
APT_PACKAGE = {
    "prometheus": "prometheus",
    "alertmanager": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
    "blackbox": "prometheus-blackbox-exporter",
}
HEALTH_PATH = {
    "prometheus": "/-/ready",
    "alertmanager": "/-/ready",
    "node_exporter": "/metrics",
    "blackbox": "/metrics",
}


class LabError(RuntimeError):
    """The lab could not start (a binary is missing, a config is rejected, a daemon never got ready)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scaled(duration: str, speedup: float, floor_ms: int = 100) -> str:
    """A Prometheus duration divided by speedup, in milliseconds (Prometheus and Alertmanager parse ms)."""
    ms = max(floor_ms, math.ceil(duration_seconds(duration) * 1000 / speedup))
    return f"{ms}ms"


def require_binaries() -> dict[str, str]:
    found = {name: shutil.which(binary) for name, binary in BINARIES.items()}
    missing = [APT_PACKAGE[name] for name, path in found.items() if path is None]
    if missing:
        raise LabError(f"missing binaries: apt-get install {' '.join(missing)}")
    return {name: str(path) for name, path in found.items()}


class Lab:
    def __init__(
        self,
        config: StackConfig,
        speedup: float = 1.0,
        workdir: Path | None = None,
        echo: Callable[[str], None] | None = None,
        extra_scrape_configs: tuple[dict[str, Any], ...] = (),
    ) -> None:
        self.config = config
        self.extra_scrape_configs = extra_scrape_configs
        self.inventory: Inventory = build_inventory(config)
        self.speedup = speedup
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="obsstack-lab-"))
        self.binaries = require_binaries()
        self.ports = {name: free_port() for name in BINARIES}
        self.sink = WebhookSink(echo=echo)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.textfile_dir = self.workdir / "textfile"

    # -- URLs -----------------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def registered_instance(self, job: str) -> str:
        """The inventory's instance for this job on the first monitoring host: the lab's local
        daemon stands in for it, so rules joining on the registered targets see it."""
        mon = self.inventory.monitoring[0]
        return next(t.address for t in self.inventory.job(job).targets if t.asset == mon.name)

    @property
    def node_instance(self) -> str:
        return self.registered_instance("node")

    def urls(self) -> dict[str, str]:
        out = {name: self.url(name) for name in BINARIES}
        out["webhook sink"] = f"http://127.0.0.1:{self.sink.port}/<receiver>"
        return out

    def banner(self) -> str:
        lines = ["obsstack lab (Ctrl-C stops everything):"]
        lines += [f"  {name:<14} {url}" for name, url in self.urls().items()]
        lines.append(f"  {'workdir':<14} {self.workdir}")
        return "\n".join(lines)

    # -- configs ---------------------------------------------------------------------------------
    def _t(self, duration: str) -> str:
        return scaled(duration, self.speedup) if self.speedup != 1 else duration

    def alertmanager_config(self) -> dict[str, Any]:
        """The rendered alertmanager.yml with every receiver pointed at the sink, timings scaled."""
        doc = am_render.document(self.config)
        doc["global"] = {"resolve_timeout": doc["global"]["resolve_timeout"]}
        doc["receivers"] = [
            {"name": r["name"], "webhook_configs": [{"url": self.sink.url(r["name"]), "send_resolved": True}]}
            for r in doc["receivers"]
        ]

        def scale_route(route: dict[str, Any]) -> None:
            for key in ("group_wait", "group_interval"):
                if key in route:
                    route[key] = self._t(route[key])
            for child in route.get("routes", []):
                scale_route(child)

        scale_route(doc["route"])
        return doc

    def rule_files(self) -> dict[str, str]:
        """The stack's rendered rules, ``for`` and group intervals scaled."""
        files: dict[str, str] = {}
        for name, text in rule_files(self.config, self.inventory).items():
            doc = yaml.safe_load(text) or {}
            for group in doc.get("groups", []):
                if "interval" in group:
                    group["interval"] = self._t(group["interval"])
                for rule in group.get("rules", []):
                    if "for" in rule:
                        rule["for"] = self._t(rule["for"])
            files[name] = yaml.safe_dump(doc, sort_keys=False)
        return files

    def prometheus_config(self) -> dict[str, Any]:
        """Local targets labelled like the first monitoring host's.

        TODO(after issue 4 merges): render with components/render/prometheus.py and
        rewrite its targets to these loopback ports instead of building the jobs here.
        """
        mon = self.inventory.monitoring[0]
        labels = {"asset": mon.name, "service": "monitoring", "tier": "critical"}
        monitoring = self.config.monitoring

        def job(name: str, **extra: Any) -> dict[str, Any]:
            target = f"127.0.0.1:{self.ports[name if name != 'node' else 'node_exporter']}"
            static = {"targets": [target], "labels": {**labels, "instance": self.registered_instance(name)}}
            return {"job_name": name, "static_configs": [static], **extra}

        return {
            "global": {
                "scrape_interval": self._t(monitoring.scrape_interval),
                "scrape_timeout": self._t(monitoring.scrape_interval),
                "evaluation_interval": self._t(monitoring.evaluation_interval),
                "external_labels": {"cluster": self.config.cluster, "replica": mon.replica},
            },
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.ports['alertmanager']}"]}]}]
            },
            "rule_files": [f"rules/{name}" for name in self.rule_files()],
            "scrape_configs": [
                job("node", metric_relabel_configs=list(ACK_METRIC_RELABEL_CONFIGS)),
                job("prometheus"),
                job("alertmanager"),
                job("blackbox"),
                {
                    "job_name": "blackbox_http_2xx",
                    "metrics_path": "/probe",
                    "params": {"module": ["http_2xx"]},
                    "static_configs": [{"targets": [f"{self.url('alertmanager')}/-/healthy"], "labels": labels}],
                    "relabel_configs": [
                        {"source_labels": ["__address__"], "target_label": "__param_target"},
                        {"source_labels": ["__param_target"], "target_label": "instance"},
                        {"target_label": "__address__", "replacement": f"127.0.0.1:{self.ports['blackbox']}"},
                    ],
                },
                *self.extra_scrape_configs,
            ],
        }

    def write_configs(self) -> None:
        (self.workdir / "rules").mkdir(parents=True, exist_ok=True)
        self.textfile_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.rule_files().items():
            (self.workdir / "rules" / name).write_text(text)
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        (self.workdir / "alertmanager.yml").write_text(am_render.dump(self.alertmanager_config()))
        (self.workdir / "blackbox.yml").write_text(
            yaml.safe_dump({"modules": {"http_2xx": {"prober": "http", "timeout": "5s"}}})
        )
        self._check([shutil.which("promtool") or "promtool", "check", "config", "prometheus.yml"])
        self._check([shutil.which("amtool") or "amtool", "check-config", "alertmanager.yml"])

    def _check(self, argv: list[str]) -> None:
        result = subprocess.run(argv, cwd=self.workdir, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LabError(f"{' '.join(argv[:3])} rejected the lab config:\n{result.stdout}{result.stderr}")

    def argv(self, name: str) -> list[str]:
        listen = f"127.0.0.1:{self.ports[name]}"
        binary = self.binaries[name]
        if name == "prometheus":
            return [
                binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address={listen}",
                "--web.enable-lifecycle",
                f"--rules.alert.resend-delay={self._t('1m')}",
            ]
        if name == "alertmanager":
            return [
                binary,
                f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'alertmanager-data'}",
                f"--web.listen-address={listen}",
                "--cluster.listen-address=",
            ]
        if name == "node_exporter":
            return [binary, f"--web.listen-address={listen}", f"--collector.textfile.directory={self.textfile_dir}"]
        return [binary, f"--config.file={self.workdir / 'blackbox.yml'}", f"--web.listen-address={listen}"]

    # -- processes -------------------------------------------------------------------------------
    def start_process(self, name: str, timeout: float = 30) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(self.argv(name), stdout=log, stderr=subprocess.STDOUT)
        self.wait_healthy(name, timeout)

    def wait_healthy(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise LabError(f"{name} exited with {process.returncode}: see {self.workdir / (name + '.log')}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url(name) + HEALTH_PATH[name], timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise LabError(f"{name} not ready after {timeout}s: see {self.workdir / (name + '.log')}")

    def stop_process(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: Alertmanager snapshots its notification log and silences
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart_process(self, name: str) -> None:
        self.stop_process(name)
        self.start_process(name)

    def start(self) -> Lab:
        self.sink.start()
        try:
            self.write_configs()
            for name in ("node_exporter", "blackbox", "alertmanager", "prometheus"):
                self.start_process(name)
            self.wait_operational()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_operational(self, timeout: float = 60) -> None:
        """Ready is not working: wait until every rule group has run and every target was scraped."""

        def evaluated() -> bool:
            response = requests.get(f"{self.url('prometheus')}/api/v1/rules", timeout=5)
            groups = response.json()["data"]["groups"]
            return bool(groups) and all(not g["lastEvaluation"].startswith("0001") for g in groups)

        def scraped() -> bool:
            response = requests.get(f"{self.url('prometheus')}/api/v1/targets", timeout=5)
            targets = response.json()["data"]["activeTargets"]
            return bool(targets) and all(t["health"] == "up" for t in targets)

        if not self.wait_until(lambda: evaluated() and scraped(), timeout):
            raise LabError(f"Prometheus did not evaluate rules and scrape every target within {timeout}s")

    def stop(self) -> None:
        for name in ("prometheus", "alertmanager", "blackbox", "node_exporter"):
            self.stop_process(name)
        self.sink.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries ---------------------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url('prometheus')}/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def wait_until(self, condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if condition():
                    return True
            time.sleep(interval)
        return False

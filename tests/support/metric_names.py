"""Which metric names exist: the one list rules and dashboards are checked against.

A name is known when one of these exposes it:
- the real binaries (Debian's prometheus, prometheus-alertmanager, prometheus-node-exporter,
  prometheus-blackbox-exporter), started here on free 127.0.0.1 ports and scraped by a real
  Prometheus, so Prometheus' own synthetic series (``up``, ``scrape_*``, ``ALERTS``) count too;
- the documented exposition of exporters that can't run here (tests/fixtures/*_metrics.txt:
  prometheus-pve-exporter and natrontech's pbs-exporter, each citing its source at the top);
- the recording rules in rules/*.yml;
- the ``obs_*`` metrics documented in docs/metrics.md.

The binaries are required: a missing one fails the caller (install the Debian package named in
the error), it never skips.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "rules"
METRICS_DOC = ROOT / "docs" / "metrics.md"
FIXTURES = ROOT / "tests" / "fixtures"
EXPORTER_FIXTURES = (FIXTURES / "pve_exporter_metrics.txt", FIXTURES / "pbs_exporter_metrics.txt")

# binary -> Debian package that ships it
BINARIES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "openssl": "openssl",
}

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: apt-get install {BINARIES.get(name, name)}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Names from files
# --------------------------------------------------------------------------------------------


def exposition_metric_names(text: str) -> frozenset[str]:
    """Metric names in Prometheus text exposition (``# TYPE`` lines and samples)."""
    names: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            match = _METRIC_NAME.match(line)
            if match:
                names.add(match.group(0))
    return frozenset(names)


def fixture_metric_names() -> frozenset[str]:
    """Names from the documented exposition of exporters that don't run here."""
    names: set[str] = set()
    for path in EXPORTER_FIXTURES:
        names |= exposition_metric_names(path.read_text())
    return frozenset(names)


def recording_rule_names(rules_dir: Path = RULES_DIR) -> frozenset[str]:
    names: set[str] = set()
    for path in sorted(rules_dir.glob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            names |= {rule["record"] for rule in group.get("rules", []) if "record" in rule}
    return frozenset(names)


def documented_obs_metric_names(path: Path = METRICS_DOC) -> frozenset[str]:
    """``obs_*`` names written in backticks in docs/metrics.md (with or without labels)."""
    return frozenset(re.findall(r"`(obs_[a-zA-Z0-9_]+)(?:\{[^`]*\})?`", path.read_text()))


# --------------------------------------------------------------------------------------------
# Names from the running binaries
# --------------------------------------------------------------------------------------------


def _wait_http(url: str, timeout: float = 20.0, verify: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(url, timeout=1, verify=verify).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _tls_server(workdir: Path) -> Iterator[int]:
    """A local HTTPS endpoint so the blackbox exporter exposes its TLS metrics (probe_ssl_*)."""
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [
            require_binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _prometheus_config(ports: dict[str, int], tls_port: int, rule_file: Path) -> dict[str, object]:
    def static(job: str, port: int, **extra: object) -> dict[str, object]:
        return {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **extra}

    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]},
        "scrape_configs": [
            static("prometheus", ports["prometheus"]),
            static("alertmanager", ports["alertmanager"]),
            static("node", ports["node"]),
            static("blackbox", ports["blackbox"]),
            static(
                "blackbox_http",
                ports["blackbox"],
                metrics_path="/probe",
                params={"module": ["https_insecure"], "target": [f"https://127.0.0.1:{tls_port}/"]},
            ),
            static(
                "blackbox_tcp",
                ports["blackbox"],
                metrics_path="/probe",
                params={"module": ["tcp_connect"], "target": [f"127.0.0.1:{ports['prometheus']}"]},
            ),
        ],
    }


def _all_scraped(base: str, jobs: int) -> bool:
    targets = requests.get(f"{base}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
    return len(targets) == jobs and all(t["lastScrape"] and not t["lastScrape"].startswith("0001") for t in targets)


def _scrape_binaries(workdir: Path) -> frozenset[str]:
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "node", "blackbox", "am_cluster")}
    textfile_dir = workdir / "textfile"
    textfile_dir.mkdir()
    null_route = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(null_route))
    (workdir / "blackbox.yml").write_text(
        yaml.safe_dump(
            {
                "modules": {
                    "https_insecure": {"prober": "http", "http": {"tls_config": {"insecure_skip_verify": True}}},
                    "tcp_connect": {"prober": "tcp"},
                }
            }
        )
    )
    rule_file = workdir / "rules.yml"
    # One alert that always fires, so ALERTS/ALERTS_FOR_STATE and the notifier's metrics exist.
    rule_file.write_text(
        yaml.safe_dump({"groups": [{"name": "probe", "rules": [{"alert": "AlwaysFiring", "expr": "vector(1)"}]}]})
    )
    with contextlib.ExitStack() as stack:
        tls_port = stack.enter_context(_tls_server(workdir))
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(ports, tls_port, rule_file)))
        daemons = {
            "alertmanager": [
                require_binary("prometheus-alertmanager"),
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                f"--cluster.listen-address=127.0.0.1:{ports['am_cluster']}",
                "--cluster.advertise-address=127.0.0.1:" + str(ports["am_cluster"]),
            ],
            "node": [
                require_binary("prometheus-node-exporter"),
                f"--web.listen-address=127.0.0.1:{ports['node']}",
                f"--collector.textfile.directory={textfile_dir}",
            ],
            "blackbox": [
                require_binary("prometheus-blackbox-exporter"),
                f"--config.file={workdir / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{ports['blackbox']}",
            ],
            "prometheus": [
                require_binary("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
        }
        for name, argv in daemons.items():
            stack.enter_context(_process(argv, workdir / f"{name}.log"))
        base = f"http://127.0.0.1:{ports['prometheus']}"
        for name in ("alertmanager", "node", "blackbox", "prometheus"):
            _wait_http(f"http://127.0.0.1:{ports[name]}/metrics")
        deadline = time.monotonic() + 30
        while not _all_scraped(base, jobs=6):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not scrape every target within 30s: see {workdir}/*.log")
            time.sleep(0.2)
        time.sleep(2.5)  # two more rule evaluations and scrapes: ALERTS and notifier series exist
        names = requests.get(f"{base}/api/v1/label/__name__/values", timeout=5).json()["data"]
    return frozenset(names)


@functools.cache
def exporter_metric_names() -> frozenset[str]:
    """Every name the real binaries expose, as scraped and stored by a real Prometheus."""
    with tempfile.TemporaryDirectory(prefix="metric-names-") as tmp:
        return _scrape_binaries(Path(tmp))


def known_metric_names() -> frozenset[str]:
    return exporter_metric_names() | fixture_metric_names() | recording_rule_names() | documented_obs_metric_names()


# --------------------------------------------------------------------------------------------
# Names a PromQL expression uses
# --------------------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2"}
    | {"inf", "nan", "start", "end"}
)


def expr_metric_names(expr: str) -> frozenset[str]:
    """Metric names a PromQL expression selects (functions, keywords and label names excluded).

    A small lexer, not a parser: it drops string literals, label matchers ``{...}``, range and
    subquery brackets ``[...]`` and the label lists after by/without/on/ignoring/group_*; what
    remains that isn't a function call, keyword or number is a metric name.
    """
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    text = re.sub(r"#[^\n]*", "", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return frozenset(names)

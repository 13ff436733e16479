"""Alertmanager gossip over mutual TLS with the rendered ``--cluster.tls-config`` file: two real
Debian Alertmanagers on loopback form a cluster with the stack's certificates, and a third one
without them cannot join it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from components.render import layout, systemd
from tools.lab import free_port

pytestmark = pytest.mark.e2e

ALERTMANAGER_YML = "route:\n  receiver: none\nreceivers:\n- name: none\n"


def make_tls(directory: Path) -> None:
    """A CA and a server+client certificate for 127.0.0.1 (like the internal CA's host certificates)."""
    directory.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", layout.CA_FILE, "-days", "2", "-subj", "/CN=test CA")  # fmt: skip
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", layout.KEY_FILE,
            "-out", "host.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", "host.csr", "-CA", layout.CA_FILE, "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext", "-out", layout.CERT_FILE)  # fmt: skip


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("prometheus-alertmanager")
        assert self.binary, "prometheus-alertmanager is required (apt-get install prometheus-alertmanager)"
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        (workdir / "alertmanager.yml").write_text(ALERTMANAGER_YML)

    def start(self, name: str, gossip: int, peer: int | None, tls_config: Path | None) -> str:
        web = free_port()
        argv = [
            str(self.binary),
            f"--config.file={self.workdir / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / name}",
            f"--web.listen-address=127.0.0.1:{web}",
            f"--cluster.listen-address=127.0.0.1:{gossip}",
            "--cluster.peer-timeout=2s",
            "--cluster.pushpull-interval=2s",
            "--cluster.gossip-interval=200ms",
        ]
        argv += [f"--cluster.peer=127.0.0.1:{peer}"] if peer else []
        argv += [f"--cluster.tls-config={tls_config}"] if tls_config else []
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        return f"http://127.0.0.1:{web}"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def peers(url: str) -> int:
    try:
        return len(requests.get(f"{url}/api/v2/status", timeout=2).json()["cluster"].get("peers") or [])
    except requests.RequestException:
        return 0


def wait_peers(url: str, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if peers(url) == count:
            return True
        time.sleep(0.2)
    return False


def test_gossip_needs_the_stack_certificates(cluster: Cluster, tmp_path: Path) -> None:
    make_tls(tmp_path / "tls")
    # The rendered file, with /etc/prometheus/tls moved to the test's directory.
    tls_config = tmp_path / "cluster-tls.yml"
    tls_config.write_text(systemd.cluster_tls_config().replace(layout.TLS_DIR, str(tmp_path / "tls")))
    first_gossip, second_gossip, outsider_gossip = free_port(), free_port(), free_port()
    first = cluster.start("am1", first_gossip, None, tls_config)
    second = cluster.start("am2", second_gossip, first_gossip, tls_config)
    assert wait_peers(first, 2, timeout=30), (tmp_path / "am1.log").read_text()[-2000:]
    assert wait_peers(second, 2, timeout=30)

    outsider = cluster.start("outsider", outsider_gossip, first_gossip, None)
    assert wait_peers(outsider, 1, timeout=20)  # up, alone
    time.sleep(8)  # several push/pull rounds
    assert peers(first) == 2 and peers(outsider) == 1

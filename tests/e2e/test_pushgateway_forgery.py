"""A forged backup metric pushed to the Pushgateway cannot hide a failing backup.

Real Debian prometheus-pushgateway with the rendered web config (TLS + bcrypt users: Prometheus'
scrape user and one per writer) and a real Prometheus (the lab) scraping it with the rendered
``pushgateway`` job (TLS, basic auth, honor_labels and the metric keep-list). Without
credentials a push is refused; with a writer's password (a stolen one) the Pushgateway takes
``obs_backup_last_success_timestamp_seconds`` for every protected guest, yet Prometheus never
stores it and BackupTooOld still fires for each of them, while the drill's own family, pushed by
tools/restore_drill with its writer credentials, arrives.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml

from components import config as stack_config
from components.inventory import build
from components.render import layout, prometheus, webconfig
from tools.lab import Lab
from tools.restore_drill import metrics

pytestmark = pytest.mark.e2e

PASSWORDS = {"scrape": "scrape-password-for-the-test", "drill": "drill-password-for-the-test"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_tls(directory: Path) -> None:
    """A CA and a certificate for 127.0.0.1, where the rendered config expects them (tls/)."""
    directory.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", layout.CA_FILE, "-days", "2", "-subj", "/CN=test CA")  # fmt: skip
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", layout.KEY_FILE,
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", layout.CA_FILE, "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "ext", "-out", layout.CERT_FILE)  # fmt: skip


def rendered_pushgateway_job(config: stack_config.StackConfig, address: str) -> dict[str, Any]:
    document = yaml.safe_load(prometheus.render(config, build(config)))
    job = next(j for j in document["scrape_configs"] if j["job_name"] == "pushgateway")
    job["static_configs"] = [{"targets": [address], "labels": job["static_configs"][0]["labels"]}]
    return dict(job)


def exposition(name: str, label: str, values: dict[str, float]) -> str:
    samples = "".join(f'{name}{{{label}="{key}"}} {value}\n' for key, value in values.items())
    return f"# TYPE {name} gauge\n{samples}"


def test_forged_backup_push_cannot_silence_backup_too_old(example_config, tmp_path: Path) -> None:
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "prometheus-pushgateway is required (apt-get install prometheus-pushgateway)"
    pg_dir = tmp_path / "pushgateway"
    make_tls(pg_dir / layout.TLS_SUBDIR)
    hashes = {role: bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode() for role, pw in PASSWORDS.items()}
    users = {webconfig.WEB_USERS[role]: hashes[role] for role in webconfig.PUSHGATEWAY_ROLES}
    web = pg_dir / Path(layout.PUSHGATEWAY_WEB).name
    web.write_text(webconfig.render(users))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    ca = str(pg_dir / layout.TLS_SUBDIR / layout.CA_FILE)
    drill = (layout.DRILL_PUSH_USER, PASSWORDS["drill"])
    gateway = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}",
         f"--persistence.file={tmp_path / 'pg.data'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab_dir = tmp_path / "lab"
    # The rendered job's relative paths (tls/ca.crt, secrets/scrape_password) resolve in the lab's dir.
    shutil.copytree(pg_dir / layout.TLS_SUBDIR, lab_dir / layout.TLS_SUBDIR)
    (lab_dir / layout.SECRETS_SUBDIR).mkdir()
    (lab_dir / layout.SECRETS_SUBDIR / layout.SCRAPE_PASSWORD_FILE).write_text(PASSWORDS["scrape"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and gateway.poll() is None:
            try:
                requests.get(f"{url}/-/ready", verify=ca, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        job = rendered_pushgateway_job(example_config, f"127.0.0.1:{port}")
        with Lab(example_config, speedup=60, workdir=lab_dir, extra_scrape_configs=(job,)) as lab:
            guests = [g["metric"]["vmid"] for g in lab.query("obs:protected_guest:info")]
            assert guests, "the example stack protects guests"
            forged = exposition("obs_backup_last_success_timestamp_seconds", "vmid", dict.fromkeys(guests, time.time()))
            group = f"{url}/metrics/job/obs_vzdump/instance/pve1"
            anonymous = requests.put(group, data=forged, verify=ca, timeout=5)
            assert anonymous.status_code == 401, "an unauthenticated push must be refused"
            stolen = requests.put(group, data=forged, auth=drill, verify=ca, timeout=5)
            assert stolen.status_code == 200, stolen.text  # the Pushgateway cannot tell families apart
            # The drill tool pushes its own family the way the drill host does (writer password file + CA).
            password_file = tmp_path / "drill-password"
            password_file.write_text(PASSWORDS["drill"])
            auth = metrics.PushAuth(layout.DRILL_PUSH_USER, str(password_file), ca)
            metrics.push(url, "drill-target", {"lastRun": time.time(), "lastStatus": 1}, auth=auth)
            assert (
                "obs_backup_last_success_timestamp_seconds"
                in requests.get(f"{url}/metrics", auth=drill, verify=ca, timeout=5).text
            )

            assert lab.wait_until(
                lambda: bool(lab.query('obs_restore_drill_last_run_timestamp_seconds{job="obs_restore_drill"}')),
                timeout=30,
            ), "the drill's own family reaches Prometheus through the authenticated scrape"
            firing = 'ALERTS{alertname="BackupTooOld",alertstate="firing"}'
            assert lab.wait_until(lambda: len(lab.query(firing)) >= len(guests), timeout=90)
            assert {a["metric"]["vmid"] for a in lab.query(firing)} == set(guests)
            assert lab.query("obs_backup_last_success_timestamp_seconds") == []
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)

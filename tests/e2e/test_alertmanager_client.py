"""The tools reach an Alertmanager served like on the monitoring hosts: TLS with a private CA, basic auth."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from tools.lab import free_port
from tools.silences.__main__ import main as silences_cli

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery staple"


@pytest.fixture
def secured_alertmanager(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(url, ca file, password file) of a real Alertmanager with TLS and basic auth."""
    openssl, binary = shutil.which("openssl"), shutil.which("prometheus-alertmanager")
    assert openssl, "openssl not found: apt-get install openssl"
    assert binary, "prometheus-alertmanager not found: apt-get install prometheus-alertmanager"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config: {{cert_file: {cert}, key_file: {key}}}\nbasic_auth_users: {{obsstack: '{hashed}'}}\n"
    )
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: sink}\nreceivers: [{name: sink}]\n")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/-/ready", verify=str(cert), auth=("obsstack", PASSWORD), timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield url, cert, password_file
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_tls_and_basic_auth(secured_alertmanager, tmp_path, capsys) -> None:
    url, ca, password_file = secured_alertmanager
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    base = ["--alertmanager", url, "--ca-file", str(ca), "--user", "obsstack"]
    assert silences_cli([*base, "--password-file", str(password_file), "list"]) == 0
    assert silences_cli([*base, "--password-file", str(wrong), "list"]) == 1
    assert "401" in capsys.readouterr().err
    assert (
        silences_cli(["--alertmanager", url, "--user", "obsstack", "--password-file", str(password_file), "list"]) == 1
    )
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    assert silences_cli([*base, "list"]) == 2
    assert "--password-file" in capsys.readouterr().err

"""tls.mode acme: the config grammar, the rendered renewer (components/render/acme.py), and the
offline plan of a stack using it. The real flow against Pebble: tests/e2e/test_acme_pebble.py."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from components.inventory import build
from components.monitoring import scripts, services
from components.render import acme, files_for, layout
from tests.conftest import distinct_secrets, load_sections
from tools.plan.__main__ import main

ACME: dict[str, Any] = {
    "mode": "acme",
    "email": "ops@example.net",
    "dns_provider": "cloudflare",
    "credentials": [{"env": "CF_DNS_API_TOKEN", "value_secret": "cloudflareDnsToken"}],
}


def sections_with(tls: Any) -> dict[str, Any]:
    sections = copy.deepcopy(load_sections())
    sections["monitoring"]["tls"] = tls
    if isinstance(tls, dict) and tls.get("mode") == "acme":
        del sections["pbs"]["fingerprint"]  # PVE verifies the ACME certificate by CA
        for host in sections["monitoring"]["hosts"]:
            host["dns_name"] = f"{host['name']}.home.example.net"  # ACME names each monitoring host
    return sections


def acme_config(**tls: Any) -> stack_config.StackConfig:
    return stack_config.validate(sections_with({**ACME, **tls}))


def pbs_renewal(config: stack_config.StackConfig) -> acme.Renewal:
    return acme.renewal(config, build(config), config.pbs.host)


def problems(sections: dict[str, Any]) -> str:
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(sections)
    return str(err.value)


@pytest.mark.parametrize(
    ("directory", "url"),
    [
        pytest.param("production", "https://acme-v02.api.letsencrypt.org/directory", id="production-default"),
        pytest.param("staging", "https://acme-staging-v02.api.letsencrypt.org/directory", id="staging"),
        pytest.param("https://127.0.0.1:14000/dir", "https://127.0.0.1:14000/dir", id="custom-pebble"),
    ],
)
def test_directory_url(directory: str, url: str) -> None:
    config = acme_config(directory=directory)
    assert config.monitoring.tls.directory_url == url
    assert f"--server={url}" in acme.renew_script(config, pbs_renewal(config))


def test_internal_ca_stays_the_default_and_the_string_form_still_reads() -> None:
    assert stack_config.validate(load_sections()).monitoring.tls.mode == "internal_ca"
    assert stack_config.validate(sections_with("internal_ca")).monitoring.tls.mode == "internal_ca"
    config = stack_config.validate(load_sections())
    assert acme.files(config, build(config)) == [] and acme.secret_files(config, build(config)) == []


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        pytest.param({"mode": "acme"}, "monitoring.tls.email: acme needs `email:`", id="acme-without-email"),
        pytest.param({"mode": "acme", "email": "a@example.net"}, "tls.dns_provider: acme needs", id="no-provider"),
        pytest.param({"renew_days": 40}, "tls.renew_days: `renew_days` is an ACME setting", id="acme-field-on-ca"),
        pytest.param({**ACME, "dns_provider": "Cloud Flare"}, "tls.dns_provider", id="provider-not-a-code"),
        pytest.param(
            {**ACME, "credentials": [{"env": "lower", "value_secret": "x"}]}, "credentials[0].env", id="env-name"
        ),
        pytest.param(
            {**ACME, "credentials": [{"env": "CF_DNS_API_TOKEN", "value": "plaintext"}]},
            "credentials[0].value",
            id="credential-not-a-secret",
        ),
        pytest.param(
            {**ACME, "credentials": [{"env": "A", "value_secret": "x"}, {"env": "A", "value_secret": "y"}]},
            "A is listed twice",
            id="duplicate-env",
        ),
        pytest.param({**ACME, "renew_days": 10}, "renew_days: 10 must exceed", id="renew-after-alert"),
        pytest.param({**ACME, "directory": "ftp://acme"}, "tls.directory", id="directory-not-a-url"),
    ],
)
def test_refused(tls: Any, expected: str) -> None:
    assert expected in problems(sections_with(tls))


@pytest.mark.parametrize(
    ("mode", "fingerprint", "expected"),
    [
        pytest.param("acme", "ab:" * 31 + "ab", "changes on every renewal: remove the fingerprint", id="acme-pinned"),
        pytest.param("internal_ca", None, "PVE needs its SHA-256 fingerprint", id="self-signed-unpinned"),
    ],
)
def test_pbs_fingerprint_fits_the_certificate(mode: str, fingerprint: str | None, expected: str) -> None:
    sections = sections_with({**ACME} if mode == "acme" else mode)
    sections["pbs"].pop("fingerprint", None)
    if fingerprint is not None:
        sections["pbs"]["fingerprint"] = fingerprint
    assert expected in problems(sections)


def test_cli_exits_2_on_a_bad_acme_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(
        yaml.safe_dump({"config": {f"obsstack:{k}": v for k, v in sections_with({"mode": "acme"}).items()}})
    )
    assert main(["--stack-file", str(stack), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "monitoring.tls.email" in err and "Traceback" not in err


@pytest.mark.parametrize("role", ["pbs", "monitoring"])
def test_renewer_ships_with_credentials_in_a_root_only_file(role: str) -> None:
    """The PBS host and every monitoring host renew their own certificate."""
    config = acme_config()
    inventory = build(config)
    host = config.pbs.host if role == "pbs" else inventory.monitoring[0].name
    shipped, secrets = files_for(config, inventory, host)
    paths = {f.path for f in shipped}
    assert set(acme.INSTALLED) <= paths
    (env_file,) = [s for s in secrets if s.path == acme.ENV_FILE]
    assert (env_file.mode, env_file.owner, env_file.group) == ("0600", "root", "root")
    service = next(f.content for f in shipped if f.path == acme.SERVICE_PATH)
    assert f"EnvironmentFile={acme.ENV_FILE}" in service


def test_each_host_renews_its_own_name_where_its_daemons_serve_it() -> None:
    config = acme_config()
    inventory = build(config)
    node = inventory.monitoring[0]
    pbs, monitoring = pbs_renewal(config), acme.renewal(config, inventory, node.name)
    assert (pbs.fqdn, pbs.reload_units) == (acme.domain(config, config.pbs.host), (acme.PBS_PROXY_UNIT,))
    assert monitoring.fqdn == node.dns_name
    assert {d.cert for d in monitoring.deploys} == {
        f"{layout.TLS_DIR}/{layout.ACME_CERT_FILE}",
        f"{layout.GRAFANA_TLS_DIR}/{layout.ACME_CERT_FILE}",
    }
    # exporter-toolkit and Grafana (certs_watch_interval) re-read the files: nothing reloads.
    assert monitoring.reload_units == ()
    assert "systemctl reload" in acme.deploy_hook(monitoring)  # only under a non-empty list
    service = acme.service_unit(monitoring)
    assert f"-{layout.TLS_DIR}" in service and f"-{layout.GRAFANA_TLS_DIR}" in service
    assert "/etc/proxmox-backup" not in service


def test_lego_is_pinned_where_the_renewer_is_installed() -> None:
    config = acme_config()
    shipped, secrets = files_for(config, build(config), config.pbs.host)
    specs = services.specs(config, "10.0.10.5", shipped, secrets, only=("files",))
    assert services.packages(config, specs)["lego"] == config.monitoring.versions.lego


def test_lego_pin_holds_on_pbs_3_and_pbs_4() -> None:
    """PBS 3 runs Debian 12 (lego 4.9.1-1), PBS 4 Debian 13 (4.9.1-2): each release gets its own
    revision, and both pin the upstream version with the revision open, so a point release's new
    revision still installs."""
    config = acme_config()
    shipped, secrets = files_for(config, build(config), config.pbs.host)
    specs = services.specs(config, "10.0.10.5", shipped, secrets, only=("files",))
    bookworm = services.packages(config, specs)["lego"]
    trixie = services.release_packages(config, specs)["13"]["lego"]
    assert (bookworm, trixie) == ("4.9.1-1", "4.9.1-2")
    assert scripts.pin_pattern(bookworm) == scripts.pin_pattern(trixie) == "4.9.1-*"


@pytest.mark.parametrize(
    "value",
    ["plain", 'quote"d', "back\\slash", "dollar$HOME", "back`tick`", "sp ace;&|", "üñï"],
    ids=["plain", "quote", "backslash", "dollar", "backtick", "shell-specials", "unicode"],
)
def test_env_file_values_read_back_exactly(value: str, tmp_path: Path) -> None:
    """The shell reads the value back unchanged (systemd's parser takes the same escapes)."""
    path = tmp_path / "lego.env"
    path.write_text(acme.env_file({"CF_DNS_API_TOKEN": value}))
    out = subprocess.run(
        ["bash", "-c", f'set -a; . "{path}"; printf %s "$CF_DNS_API_TOKEN"'], capture_output=True, text=True, check=True
    )
    assert out.stdout == value


def test_the_renew_command_line(tmp_path: Path) -> None:
    config = acme_config(dns_resolvers=["127.0.0.1:8053"], dns_propagation_check=False, renew_days=21)
    script = acme.renew_script(config, pbs_renewal(config))
    fqdn = acme.domain(config, config.pbs.host)
    for flag in ("--accept-tos", "--dns=cloudflare", "--dns.resolvers=127.0.0.1:8053", "--dns.disable-cp",
                 f"--domains={fqdn}", "--email=ops@example.net"):  # fmt: skip
        assert flag in script
    assert "renew --days 21 --no-random-sleep --renew-hook" in script
    assert "--dns.disable-cp" not in acme.renew_script(acme_config(), pbs_renewal(config))


def test_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (apt-get install shellcheck)"
    config = acme_config()
    for f in acme.files(config, build(config)):
        if f.mode == "0755":
            path = tmp_path / Path(f.path).name
            path.write_text(f.content)
            run = subprocess.run([shellcheck, "-s", "bash", str(path)], capture_output=True, text=True, check=False)
            assert run.returncode == 0, f"{f.path}:\n{run.stdout}"


@pytest.mark.parametrize("role", ["pbs", "monitoring"])
def test_units_pass_systemd_analyze_verify(role: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required (systemd)"
    config = acme_config()
    inventory = build(config)
    host = config.pbs.host if role == "pbs" else inventory.monitoring[0].name
    for f in acme.files(config, inventory):
        if f.host == host and f.path.startswith("/etc/systemd/system/"):
            (tmp_path / Path(f.path).name).write_text(f.content)
    run = subprocess.run(
        [analyze, "verify", "--man=no", "--recursive-errors=no", str(tmp_path / f"{acme.UNIT}.timer")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    # The ExecStart binary only exists on the host; everything else must parse.
    errors = [line for line in run.stderr.splitlines() if acme.RENEW_SCRIPT not in line and line.strip()]
    assert not errors, run.stderr


def test_make_plan_with_acme(tmp_path: Path) -> None:
    sections = sections_with({**ACME, "directory": "staging"})
    stack = tmp_path / "Pulumi.acme.yaml"
    stack.write_text(yaml.safe_dump({"config": {f"obsstack:{k}": v for k, v in sections.items()}}))
    secrets = distinct_secrets(stack_config.validate(sections))
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump(secrets))
    out = tmp_path / "out"
    code = main(["--stack-file", str(stack), "--out", str(out), "--secrets", str(tmp_path / "secrets.yaml"), "--quiet"])
    assert code == 0
    pbs = stack_config.validate(sections).pbs.host
    host_dir = out / "hosts" / pbs
    assert (host_dir / acme.RENEW_SCRIPT.lstrip("/")).exists()
    assert "secret" in (host_dir / acme.ENV_FILE.lstrip("/")).read_text()
    for path in (p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        assert secrets["cloudflareDnsToken"] not in text, f"the DNS token leaked into {path.relative_to(out)}"
    plan = json.loads((out / "plan.json").read_text())
    stage = [r for r in plan["resources"] if r["name"].endswith("collector-stage-secrets")]
    assert stage, "the credentials file is staged on the PBS host"

"""The sandboxed tool units work under a real systemd (Debian 12, booted with systemd-nspawn):
the canary as its own dynamic user writes its canary, and the ACME unit's sandbox still lets its
deploy hook install PBS's proxy certificate (root:backup 0640 in a backup-owned 0700 directory)
and reload a unit. `systemd-analyze security` of the loaded units is printed and bounded.

Fails (never skips) when debootstrap/systemd-nspawn/root are missing.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from components import config as stack_config
from components.inventory import build
from components.render import acme, drill
from tests.conftest import load_sections
from tests.host import nspawn

pytestmark = pytest.mark.host

DUMMY_UNIT = """[Unit]
Description=stands in for proxmox-backup-proxy
[Service]
ExecStart=/bin/sleep infinity
ExecReload=/bin/sh -c 'date +%%s > /run/obs-dummy-reloaded'
"""


@pytest.fixture(scope="module")
def host() -> Iterator[nspawn.DebianHost]:
    try:
        context = nspawn.booted()
        booted = context.__enter__()
    except nspawn.HostError as err:
        pytest.fail(str(err))
    try:
        yield booted
    finally:
        context.__exit__(None, None, None)


def root(host: nspawn.DebianHost, command: str) -> subprocess.CompletedProcess[str]:
    return host.ssh(f"sudo sh -c {_quote(command)}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def put(host: nspawn.DebianHost, path: str, content: str, mode: int = 0o644) -> None:
    target = host.root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    target.chmod(mode)


def exposure(host: nspawn.DebianHost, unit: str) -> float:
    out = root(host, f"systemd-analyze security --no-pager {unit}").stdout
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert found, out
    print(f"{unit}: exposure {found.group(1)} (loaded under systemd)")
    return float(found.group(1))


def start(host: nspawn.DebianHost, unit: str) -> None:
    result = root(host, f"systemctl daemon-reload && systemctl start {unit}")
    journal = root(host, f"journalctl -u {unit} --no-pager -n 30").stdout
    assert result.returncode == 0, f"{unit} failed:\n{result.stderr}\n{journal}"


def test_canary_runs_as_its_own_dynamic_user(host: nspawn.DebianHost) -> None:
    config = stack_config.validate(load_sections())
    target = build(config).drill_targets[0]
    put(host, drill.CANARY_SCRIPT, drill.canary_script(target), 0o755)
    put(host, drill.CANARY_SERVICE, drill.canary_service(target))
    start(host, "obs-canary.service")
    canary = root(host, f"cat {drill.CANARY_FILE}")
    assert canary.returncode == 0 and '"nonce"' in canary.stdout, canary.stderr
    owner = root(host, f"stat -c %U {drill.CANARY_FILE}").stdout.strip()
    assert owner not in ("root", ""), f"the canary wrote as {owner!r}"
    assert exposure(host, "obs-canary.service") <= 3.0


def test_acme_sandbox_lets_the_hook_deploy_and_reload(host: nspawn.DebianHost) -> None:
    sections = load_sections()
    del sections["pbs"]["fingerprint"]
    sections["monitoring"]["tls"] = {"mode": "acme", "email": "ops@example.net", "dns_provider": "cloudflare"}
    for mon in sections["monitoring"]["hosts"]:
        mon["dns_name"] = f"{mon['name']}.home.example.net"  # acme names every monitoring host
    config = stack_config.validate(sections)
    shipped = {f.path: f.content for f in acme.files(config, build(config)) if f.host == config.pbs.host}
    fqdn = acme.domain(config, config.pbs.host)
    put(host, acme.DEPLOY_HOOK, shipped[acme.DEPLOY_HOOK], 0o755)
    put(host, acme.SERVICE_PATH, shipped[acme.SERVICE_PATH])
    put(host, acme.ENV_FILE, "", 0o600)
    # The hook stands in for lego's run: the unit's ExecStart becomes the deploy hook itself.
    put(
        host,
        f"/etc/systemd/system/{acme.UNIT}.service.d/test.conf",
        f"[Service]\nExecStart=\nExecStart={acme.DEPLOY_HOOK}\nEnvironment=ACME_RELOAD_UNITS=obs-dummy.service\n",
    )
    put(host, "/etc/systemd/system/obs-dummy.service", DUMMY_UNIT)
    # What lego leaves behind (made here: the bare host has no openssl).
    certificates = host.root / acme.STATE_DIR.lstrip("/") / "certificates"
    certificates.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", f"/CN={fqdn}", "-keyout", certificates / f"{fqdn}.key", "-out", certificates / f"{fqdn}.crt"],
        check=True, capture_output=True,
    )  # fmt: skip
    prepare = (
        "install -d -m 0700 -o backup -g backup /etc/proxmox-backup && "
        "systemctl daemon-reload && systemctl start obs-dummy.service"
    )
    assert root(host, prepare).returncode == 0
    start(host, f"{acme.UNIT}.service")
    listing = root(host, f"stat -c '%a %U %G' {acme.PBS_PROXY_KEY} {acme.PBS_PROXY_CERT}").stdout.split("\n")
    assert listing[:2] == ["640 root backup", "640 root backup"], listing
    assert root(host, "cat /run/obs-dummy-reloaded").returncode == 0, "the hook's reload did not reach systemd"
    assert exposure(host, f"{acme.UNIT}.service") <= 3.0


FAKE_DRILL = """#!/bin/sh
# Stands in for tools/restore_drill inside the rendered unit: reads its credentials, cannot read
# the root-only originals, writes a textfile into its state directory, and fails like a failed drill.
set -eu
test -s "$CREDENTIALS_DIRECTORY/pve-token"
test -s "$CREDENTIALS_DIRECTORY/outputs.json"
if cat /etc/obsstack/restore-drill/pve-token 2>/dev/null; then echo "the token file is readable" >&2; exit 3; fi
out=/var/lib/obs-restore-drill
mkdir -p "$out/textfile"
echo 'obs_restore_drill_last_status{target="gitea"} 0' > "$out/textfile/obs_restore_drill_gitea.prom"
id -u > "$out/uid"
exit 1
"""


def test_drill_reads_its_credentials_alone_and_publishes_failed_drills(host: nspawn.DebianHost) -> None:
    config = stack_config.validate(load_sections())
    put(host, drill.DRILL_SERVICE, drill.drill_service(config))
    put(host, "/usr/local/bin/fake-drill", FAKE_DRILL, 0o755)
    put(
        host,
        f"/etc/systemd/system/{drill.DRILL_UNIT}.d/test.conf",
        "[Service]\nExecStart=\nExecStart=/usr/local/bin/fake-drill\n",
    )
    prepare = (
        # As the install leaves them: the tool's home world-readable, its etc directory root's.
        f"install -d -m 0750 {drill.DRILL_ETC} && install -d -m 0755 {drill.DRILL_HOME} {drill.TEXTFILE_DIR} && "
        f"umask 077 && echo 'obs-drill@pve!drill=secret' > {drill.TOKEN_FILE} && echo '{{}}' > {drill.DRILL_OUTPUTS}"
    )
    assert root(host, prepare).returncode == 0
    result = root(host, f"systemctl daemon-reload && systemctl start {drill.DRILL_UNIT}")
    assert result.returncode != 0  # the stand-in fails like a failed drill
    journal = root(host, f"journalctl -u {drill.DRILL_UNIT} --no-pager -n 30").stdout
    assert "the token file is readable" not in journal, journal
    published = root(host, f"cat {drill.TEXTFILE_DIR}/obs_restore_drill_gitea.prom")
    assert 'target="gitea"} 0' in published.stdout, journal
    assert root(host, "cat /var/lib/obs-restore-drill/uid").stdout.strip() not in ("0", ""), journal
    assert exposure(host, drill.DRILL_UNIT) <= 3.0


@pytest.mark.parametrize("value", ["plain", 'a$b"c\\d`e f;g'], ids=["plain", "shell-specials"])
def test_systemd_reads_the_credentials_file_as_rendered(host: nspawn.DebianHost, value: str) -> None:
    """The renewer's EnvironmentFile (acme.env_file) gives the unit exactly the secret's value."""
    put(host, "/etc/obsstack/envtest.env", acme.env_file({"OBS_TEST": value}), 0o600)
    put(
        host,
        "/etc/systemd/system/obs-envtest.service",
        "[Service]\nType=oneshot\nEnvironmentFile=/etc/obsstack/envtest.env\n"
        "ExecStart=/bin/sh -c 'printf %%s \"$$OBS_TEST\" > /run/obs-envtest'\n",
    )
    start(host, "obs-envtest.service")
    assert root(host, "cat /run/obs-envtest").stdout == value

"""Restore drills: the guest canary (script + timer) on every drill target, and on the monitoring
host the drill tool itself (sources, pinned requirements, its outputs file) with its timer.

The canary proves what a restore contains: before the backup window it writes a UTC timestamp, a
random nonce and a SHA-256 manifest of the configured paths; the drill checks the manifest inside
the restored guest (``sha256sum -c``) and measures RPO from the timestamp.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from components.config import AppCheck, StackConfig, duration_seconds
from components.inventory import DrillTarget, Inventory
from components.render import HostFile, SecretFile, layout, sandbox, sources

CANARY_DIR = "/var/lib/obs-canary"
CANARY_FILE = f"{CANARY_DIR}/canary.json"
MANIFEST_FILE = f"{CANARY_DIR}/manifest.sha256"
NONCE_FILE = f"{CANARY_DIR}/nonce"
CANARY_SCRIPT = "/usr/local/sbin/obs-canary"
CANARY_SERVICE = "/etc/systemd/system/obs-canary.service"
CANARY_TIMER = "/etc/systemd/system/obs-canary.timer"

DRILL_HOME = "/opt/obsstack/restore-drill"
DRILL_VENV = f"{DRILL_HOME}/venv"
DRILL_REQUIREMENTS = f"{DRILL_HOME}/requirements.txt"
DRILL_ETC = "/etc/obsstack/restore-drill"
DRILL_OUTPUTS = f"{DRILL_ETC}/outputs.json"
TOKEN_FILE = f"{DRILL_ETC}/pve-token"
SSH_KEY_FILE = f"{DRILL_ETC}/ssh-key"  # for `pct exec` on the nodes (LXC drills); installed by hand
PCT_WRAPPER_DIR = "/usr/local/sbin"
# The drill's Pushgateway writer password and the CA its TLS is checked with (metrics: pushgateway).
PUSH_PASSWORD_FILE = f"{DRILL_ETC}/pushgateway-password"
PUSH_CA_FILE = f"{DRILL_ETC}/ca.crt"
DRILL_STATE = "/var/lib/obs-restore-drill"
DRILL_UNIT = "obs-restore-drill.service"
DRILL_SERVICE = f"/etc/systemd/system/{DRILL_UNIT}"
# Where the drill's unit finds its secrets (LoadCredential=, systemd.exec(5) "Credentials"):
# readable by the unit's own dynamic user alone, while the files in DRILL_ETC stay root's.
CREDENTIALS_DIR = f"/run/credentials/{DRILL_UNIT}"
# The drill writes its textfiles here; ExecStopPost (as root) moves them to node_exporter's.
DRILL_TEXTFILES = f"{DRILL_STATE}/textfile"
DRILL_TIMER = "/etc/systemd/system/obs-restore-drill.timer"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
PUBLISH_TEXTFILES = (
    f"/bin/sh -c 'for f in {DRILL_TEXTFILES}/*.prom; do "
    f'[ -f "$$f" ] && install -m 0644 "$$f" {TEXTFILE_DIR}/; done; true\''
)

# The drill's own PVE identity (least privilege, see docs/restore-drill.md); the user is
# stack-scoped (components/names.py): StackConfig.stack_names.drill_user.
TOKEN_NAME = "drill"
# The stack output holding the drill's PVE API token (`user@realm!name=secret`), a secret of its own.
TOKEN_OUTPUT = "restoreDrillPveToken"

# What the tool imports on the host; versions come from constraints.txt (one lock for all).
TOOL_PACKAGES = (
    "proxmoxer",
    "requests",
    "urllib3",
    "idna",
    "charset-normalizer",
    "certifi",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "prometheus-client",
)


def check_document(check: AppCheck) -> dict[str, Any]:
    """One application check as tools/restore_drill/schema.py reads it (no defaults left out)."""
    return {
        "name": check.name,
        "type": check.type,
        "timeoutSeconds": duration_seconds(check.timeout),
        "host": check.host,
        "port": check.port,
        "url": check.url,
        "expectStatus": check.expect_status,
        "command": list(check.command),
    }


def token_id(config: StackConfig) -> str:
    return f"{config.stack_names.drill_user}!{TOKEN_NAME}"


def drill_pool(config: StackConfig) -> str:
    """The configured pool, else the stack's own (components/names.py)."""
    return config.backups.drill.pool or config.stack_names.drill_pool


DOC_URL = "https://github.com/obsstack/obsstack/blob/main/docs/restore-drill.md"


# The canary's own payload: files nothing else writes, so the backup taken after the canary ran
# holds exactly these bytes. Live data (a database's files change every second) can never be
# compared byte for byte with a backup taken 30 minutes later: the configured paths are checked
# for presence instead, and applications by their own probes.
PAYLOAD_FILES = 8
PAYLOAD_BYTES = 64 * 1024


def canary_script(target: DrillTarget) -> str:
    """Bash script writing canary.json atomically; paths are baked in at render time."""
    paths_json = shlex.quote(json.dumps(list(target.canary_paths)))
    return f"""#!/bin/bash
# obs-canary for {target.name}: rendered by obsstack, do not edit (docs/restore-drill.md).
# Writes {CANARY_FILE}: UTC timestamp, random nonce and the SHA-256 of a manifest
# ({MANIFEST_FILE}) of the nonce and of {PAYLOAD_FILES} random files only this canary writes.
# A restore drill runs `sha256sum -c` of that manifest inside the restored guest, checks that
# the configured paths exist there, and measures RPO from the timestamp.
set -euo pipefail
umask 077

paths_json={paths_json}
state_dir={CANARY_DIR}

mkdir -p "$state_dir"
work=$(mktemp -d "$state_dir/.work.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

timestamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
nonce=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')
printf '%s %s\\n' "$nonce" "$timestamp" >"$work/nonce"
mv -f "$work/nonce" {NONCE_FILE}

# A new payload directory per run: the previous one stays until the new manifest replaces it.
payload="$state_dir/payload.$nonce"
mkdir "$payload"
for i in $(seq 1 {PAYLOAD_FILES}); do
  head -c {PAYLOAD_BYTES} /dev/urandom >"$payload/$i"
done
{{
  sha256sum -- {NONCE_FILE}
  find "$payload" -type f -print0 | sort -z | xargs -0 sha256sum --
}} >"$work/manifest.sha256"
files=$(wc -l <"$work/manifest.sha256")
mv -f "$work/manifest.sha256" {MANIFEST_FILE}
manifest_sha256=$(sha256sum {MANIFEST_FILE} | cut -d' ' -f1)

format='{{"version":1,"timestamp":"%s","nonce":"%s","host":"%s","paths":%s,'
format+='"manifest":"%s","manifestSha256":"%s","files":%d}}\\n'
# shellcheck disable=SC2059 # the format is a constant built just above
printf "$format" \\
  "$timestamp" "$nonce" "$(hostname)" "$paths_json" {MANIFEST_FILE} "$manifest_sha256" "$files" >"$work/canary.json"
mv -f "$work/canary.json" {CANARY_FILE}
find "$state_dir" -maxdepth 1 -name 'payload.*' ! -path "$payload" -exec rm -rf -- {{}} +
echo "obs-canary: $files files, nonce $nonce, at $timestamp"
"""


def canary_service(target: DrillTarget) -> str:
    return f"""[Unit]
Description=Restore-drill canary of {target.name}: timestamp, nonce and SHA-256 manifest
Documentation={DOC_URL}

[Service]
Type=oneshot
ExecStart={CANARY_SCRIPT}
Nice=10
IOSchedulingClass=idle
# Its own dynamic user, no network: it writes only its state directory ({CANARY_DIR}).
StateDirectory=obs-canary
StateDirectoryMode=0700
{sandbox.Sandbox().text()}"""


def canary_timer(config: StackConfig, target: DrillTarget) -> str:
    return f"""[Unit]
Description=Restore-drill canary of {target.name}, {config.backups.drill.canary_lead} before the backup window
Documentation={DOC_URL}

[Timer]
OnCalendar={config.backups.canary_on_calendar()}
AccuracySec=1min

[Install]
WantedBy=timers.target
"""


def tool_outputs(config: StackConfig, inventory: Inventory) -> str:
    """The tool's input on the monitoring host: the restoreDrill output, state kept under /var/lib."""
    drill = dict(restore_drill_document(config, inventory), reportDir=DRILL_STATE)
    # On the host the unit's credentials stand in for the root-only files, and the textfiles go
    # through its state directory (drill_service).
    drill["credentials"] = dict(drill["credentials"], tokenFile=f"{CREDENTIALS_DIR}/pve-token")
    drill["metrics"] = dict(
        drill["metrics"],
        textfileDir=DRILL_TEXTFILES,
        pushgatewayPasswordFile=f"{CREDENTIALS_DIR}/pushgateway-password",
        pushgatewayCaFile=f"{CREDENTIALS_DIR}/ca.crt",
    )
    return json.dumps({"restoreDrill": drill}, indent=2, sort_keys=True) + "\n"


def requirements() -> str:
    """Pinned requirements of the tool's venv, from the project's lock (constraints.txt)."""
    pins: dict[str, str] = {}
    for line in sources.CONSTRAINTS.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    missing = [p for p in TOOL_PACKAGES if p not in pins]
    if missing:
        raise ValueError(f"constraints.txt lacks pins for {missing}")
    return "".join(f"{p}=={pins[p]}\n" for p in TOOL_PACKAGES)


def drill_credentials(config: StackConfig) -> tuple[tuple[str, str], ...]:
    """(credential name, root-only file) the drill's unit loads."""
    pushes = config.backups.drill.metrics == "pushgateway"
    return (("outputs.json", DRILL_OUTPUTS), ("pve-token", TOKEN_FILE)) + (
        (("pushgateway-password", PUSH_PASSWORD_FILE), ("ca.crt", PUSH_CA_FILE)) if pushes else ()
    )


def drill_service(config: StackConfig) -> str:
    box = sandbox.Sandbox(network=True, credentials=drill_credentials(config))
    return f"""[Unit]
Description=Restore drill: restore the newest backups into isolated scratch VMs and verify them
Documentation={DOC_URL}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
Environment=PYTHONPATH={DRILL_HOME}
Environment=PYTHONDONTWRITEBYTECODE=1
WorkingDirectory={DRILL_HOME}
ExecStart={DRILL_VENV}/bin/python -m tools.restore_drill --outputs {CREDENTIALS_DIR}/outputs.json --all --due
# Failed drills too ('+': as root, outside the sandbox): the textfiles reach node_exporter.
ExecStopPost=+{PUBLISH_TEXTFILES}
# Every wait inside the tool is bounded; this only stops a hung interpreter. SIGTERM makes the
# tool destroy its scratch VM before exiting, which may take a few minutes.
TimeoutStartSec=24h
TimeoutStopSec=20min
# A dynamic user of its own; its outputs file, the PVE token (and the Pushgateway password) come
# as credentials: /etc/obsstack/restore-drill stays root's.
StateDirectory=obs-restore-drill
StateDirectoryMode=0750
{box.text()}"""


def drill_timer(config: StackConfig) -> str:
    drill = config.backups.drill
    return f"""[Unit]
Description=Daily check for due restore drills (each target every {drill.every})
Documentation={DOC_URL}

[Timer]
OnCalendar=*-*-* {drill.check_at}:00
Persistent=true
RandomizedDelaySec=15min

[Install]
WantedBy=timers.target
"""


def pct_wrapper_path(config: StackConfig) -> str:
    return f"{PCT_WRAPPER_DIR}/obs-drill-pct-{config.stack_names.hook_name}"


def pct_wrapper(config: StackConfig) -> str:
    """The forced command of the drill's SSH key on a PVE node (authorized_keys `command=`): only
    `pct exec <scratch VMID> -- <command line>`, and the command line is parsed by a shell inside
    the container, never on the node (sshd(8), AUTHORIZED_KEYS FILE FORMAT: with `command=` the
    client's line is only in SSH_ORIGINAL_COMMAND)."""
    low, high = config.backups.drill.scratch_vmid_range
    return f"""#!/bin/bash
# obs-drill-pct for stack {config.stack or "-"} of cluster {config.cluster}: rendered by obsstack
# (docs/restore-drill.md). The forced command of the restore drill's SSH key: it runs
# `pct exec <vmid> -- <command line>` for a scratch VMID ({low}-{high}) and nothing else.
set -euo pipefail
LOW={low}
HIGH={high}
# OBSSTACK_PCT is for tests: sshd accepts no client environment but AcceptEnv's (LANG LC_* on Debian).
PCT="${{OBSSTACK_PCT:-/usr/sbin/pct}}"
request="${{SSH_ORIGINAL_COMMAND:-}}"
request="${{request#sudo -n }}"
pattern='^pct exec ([0-9]+) -- (.+)$'
if [[ ! "$request" =~ $pattern ]]; then
    echo "obs-drill-pct: only 'pct exec <vmid> -- <command>' is allowed" >&2
    exit 2
fi
vmid="${{BASH_REMATCH[1]}}"
line="${{BASH_REMATCH[2]}}"
if ((10#$vmid < LOW || 10#$vmid > HIGH)); then
    echo "obs-drill-pct: $vmid is not a scratch VMID ($LOW-$HIGH)" >&2
    exit 2
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo -n)
fi
exec "${{sudo[@]}}" "$PCT" exec "$vmid" -- /bin/sh -c "$line"
"""


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    out: list[HostFile] = []
    if any(t.kind == "lxc" for t in inventory.drill_targets):
        path, wrapper = pct_wrapper_path(config), pct_wrapper(config)
        out += [HostFile(node.name, path, wrapper, mode="0755") for node in config.pve_nodes()]
    for target in inventory.drill_targets:
        out += [
            HostFile(target.name, CANARY_SCRIPT, canary_script(target), mode="0755"),
            HostFile(target.name, CANARY_SERVICE, canary_service(target)),
            HostFile(target.name, CANARY_TIMER, canary_timer(config, target)),
        ]
    if not inventory.drill_targets:
        return out
    # One monitoring host runs drills, even with two replicas: one restore at a time.
    for mon in inventory.monitoring[:1]:
        out += [
            HostFile(mon.name, DRILL_OUTPUTS, tool_outputs(config, inventory), mode="0640"),
            HostFile(mon.name, DRILL_REQUIREMENTS, requirements()),
            HostFile(mon.name, DRILL_SERVICE, drill_service(config)),
            HostFile(mon.name, DRILL_TIMER, drill_timer(config)),
        ]
        out += [HostFile(mon.name, f"{DRILL_HOME}/{rel}", text) for rel, text in sources.DRILL_TOOL.items()]
    return out


def restore_drill_document(config: StackConfig, inventory: Inventory) -> dict[str, Any]:
    """The `restoreDrill` output: everything tools/restore_drill needs, no secret (schema:
    tools/restore_drill/schema.py, documented in docs/restore-drill.md)."""
    drill = config.backups.drill
    low, high = drill.scratch_vmid_range
    mon_ports = config.monitoring.ports
    return {
        "schemaVersion": 1,
        "cluster": config.cluster,
        "pve": {
            "endpoint": config.proxmox.endpoint,
            "verifyTls": not config.proxmox.insecure,
            "nodes": [n.name for n in config.pve_nodes()],
        },
        "pbsStorage": config.pbs.storage_id,
        # Containers have no exec in the PVE API: the drill runs `pct exec` on the node over SSH.
        "lxc": {
            "nodes": {
                n.name: {"address": str(n.address), "user": n.ssh_user or config.proxmox.ssh_user}
                for n in config.pve_nodes()
            },
            "sshKeyFile": SSH_KEY_FILE,
            "forcedCommand": pct_wrapper_path(config),
        },
        "scratch": {
            "storage": drill.scratch_storage,
            "vmidRange": [low, high],
            "pool": drill_pool(config),
            "node": drill.node,
        },
        "isolation": {"mode": drill.isolation, "bridge": drill.isolated_bridge},
        "timeouts": {
            "restoreSeconds": duration_seconds(drill.restore_timeout),
            "agentSeconds": duration_seconds(drill.agent_timeout),
            "verifySeconds": duration_seconds(drill.verify_timeout),
        },
        "schedule": {
            "everySeconds": duration_seconds(drill.every),
            "checkAt": drill.check_at,
            "canaryOnCalendar": config.backups.canary_on_calendar(),
        },
        "canary": {"file": CANARY_FILE, "manifest": MANIFEST_FILE},
        "credentials": {
            "tokenId": token_id(config),
            "tokenOutput": TOKEN_OUTPUT,
            "tokenFile": TOKEN_FILE,
        },
        "metrics": {
            "mode": drill.metrics,
            "textfileDir": TEXTFILE_DIR,
            # TLS with the host certificate, which names the host's address (not 127.0.0.1).
            "pushgatewayUrl": f"https://{_url_host(inventory.monitoring[0].ip)}:{mon_ports.pushgateway}",
            "pushgatewayUser": layout.DRILL_PUSH_USER,
            "pushgatewayPasswordFile": PUSH_PASSWORD_FILE,
            "pushgatewayCaFile": PUSH_CA_FILE,
        },
        "targets": [
            {
                "name": t.name,
                "vmid": t.vmid,
                "node": t.node,
                "service": t.service,
                "canaryPaths": list(t.canary_paths),
                "rpoSeconds": t.rpo_seconds,
                "rtoSeconds": t.rto_seconds,
                "kind": t.kind,
                "checks": [check_document(c) for c in t.checks],
            }
            for t in inventory.drill_targets
        ],
    }


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def secret_files(config: StackConfig, inventory: Inventory) -> list[SecretFile]:
    """The drill host's Pushgateway writer password and CA (only where drills push)."""
    if not inventory.drill_targets or config.backups.drill.metrics != "pushgateway":
        return []
    host = inventory.monitoring[0].name
    return [
        SecretFile(host, PUSH_PASSWORD_FILE, "password:drill"),
        SecretFile(host, PUSH_CA_FILE, "tls:ca", mode="0644"),
    ]

"""Write Pulumi.<stack>.yaml from the few facts a new environment needs, validated before writing.

Facts come from flags; a missing one is asked for when stdin is a terminal, else it is an error
(exit 2) naming the flag. The file is the smallest config that plans: PVE endpoint and nodes, the
PBS host and its datastore, the monitoring VM's network, one Slack receiver and a dead-man's
switch. Everything else keeps its documented default (see Pulumi.prod.yaml for the full example).
Names on PVE and PBS are scoped to the stack (docs/environments.md). Prints the
``pulumi config set --secret`` lines the stack needs.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components import config as stack_config

EXIT_OK, EXIT_INVALID = 0, 2
ROOT = Path(__file__).resolve().parents[2]

# How to get each secret's value (the keys are the config's defaults; see Pulumi.prod.yaml).
SECRET_HINTS = {
    "proxmoxApiToken": "'obsstack@pve!pulumi-{stack}=xxxxxxxx-...'",
    "sshPrivateKey": '-- "$(cat ~/.ssh/obsstack_ed25519)"',
    "pbsApiToken": "'obsstack-{stack}@pbs!pve=xxxxxxxx-...'",
    "pbsEncryptionKey": '-- "$(cat pbs-{stack}-encryption.key)"',
    "slackOpsUrl": "https://hooks.slack.com/services/...",
    "deadmanToken": "'...'  # Bearer token of the dead-man's switch",
    "grafanaAdminPassword": "'...'",
    "grafanaSecretKey": '"$(openssl rand -hex 32)"',
}


class InvalidFactError(Exception):
    """A fact is missing or malformed: the message names the flag and the fix."""


@dataclass(frozen=True)
class Fact:
    flag: str
    prompt: str
    default: str | None = None


FACTS = (
    Fact("--pve-endpoint", "PVE API endpoint, e.g. https://pve1.lab.example.net:8006/"),
    Fact("--node", "PVE node(s) as name=address, comma-separated, e.g. pve1=10.0.10.11"),
    Fact("--pbs-host", "PBS host as name=address, e.g. pbs1=10.0.10.20"),
    Fact("--pbs-fingerprint", "PBS certificate SHA-256 fingerprint (proxmox-backup-manager cert info)"),
    Fact("--monitoring-address", "monitoring VM address with prefix, e.g. 10.0.30.10/24"),
    Fact("--gateway", "gateway of the monitoring VM's network, e.g. 10.0.30.1"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.new_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the new stack's name (lowercase, digits, '-')")
    parser.add_argument("--cluster", default="homelab", help="the cluster's name (default: homelab)")
    for fact in FACTS:
        parser.add_argument(fact.flag, help=fact.prompt)
    parser.add_argument("--monitoring-node", help="PVE node of the monitoring VM (default: the first node)")
    parser.add_argument("--pbs-datastore", help="PBS datastore of this stack (default: the stack name)")
    parser.add_argument("--vmid", type=int, default=600, help="VMID of the monitoring VM (default: 600)")
    parser.add_argument("--scratch-range", default="9800-9899", help="VMIDs drills restore into (LOW-HIGH)")
    parser.add_argument("--bridge", default="vmbr0")
    parser.add_argument("--vlan", type=int, help="VLAN tag of the monitoring VM's NIC (default: none)")
    parser.add_argument("--dns", help="DNS servers, comma-separated (default: the gateway)")
    parser.add_argument("--domain", help="DNS domain of the monitoring hosts (default: <stack>.lab.internal)")
    parser.add_argument("--storage", default="local-lvm", help="PVE storage of the VM disks (default: local-lvm)")
    parser.add_argument("--slack-channel", default="#alerts")
    parser.add_argument("--deadman-url", help="dead-man's switch URL the Watchdog alert pings")
    parser.add_argument("--backup-schedule", default="02:00", help="PVE schedule of the nightly backup")
    parser.add_argument("--out-dir", type=Path, default=ROOT, help="where Pulumi.<stack>.yaml goes")
    parser.add_argument("--force", action="store_true", help="overwrite an existing stack file")
    return parser.parse_args(argv)


def ask_missing(args: argparse.Namespace, ask: Callable[[str], str] | None) -> None:
    for fact in FACTS:
        attr = fact.flag.lstrip("-").replace("-", "_")
        if getattr(args, attr):
            continue
        if ask is None:
            raise InvalidFactError(f"{fact.flag} is missing: pass {fact.flag} ({fact.prompt})")
        setattr(args, attr, ask(f"{fact.prompt}: ").strip())
        if not getattr(args, attr):
            raise InvalidFactError(f"{fact.flag} is missing: {fact.prompt}")


def pairs(flag: str, text: str) -> list[tuple[str, str]]:
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise InvalidFactError(f"{flag} {item!r}: write name=address, e.g. pve1=10.0.10.11")
        found.append((name.strip(), address.strip()))
    if not found:
        raise InvalidFactError(f"{flag} is empty: write name=address[,name=address]")
    return found


def vmid_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not (sep and low.isdigit() and high.isdigit()):
        raise InvalidFactError(f"--scratch-range {text!r}: write LOW-HIGH, e.g. 9800-9899")
    return int(low), int(high)


def q(value: object) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML."""
    return json.dumps(value)


def render(args: argparse.Namespace) -> str:
    nodes = pairs("--node", args.node)
    (pbs_name, pbs_address), *extra = pairs("--pbs-host", args.pbs_host)
    if extra:
        raise InvalidFactError("--pbs-host takes one name=address")
    try:
        network = ipaddress.ip_interface(args.monitoring_address).network
    except ValueError:
        raise InvalidFactError(f"--monitoring-address {args.monitoring_address!r}: write address/prefix") from None
    stack = args.stack
    datastore = args.pbs_datastore or stack
    low, high = vmid_range(args.scratch_range)
    dns = [d.strip() for d in (args.dns or args.gateway).split(",") if d.strip()]
    node_lines = "\n".join(
        f"      - {{name: {q(name)}, kind: pve_node, address: {q(address)}, service: proxmox, tier: critical}}"
        for name, address in nodes
    )
    vlan = f"\n      vlan: {args.vlan}" if args.vlan is not None else ""
    deadman = args.deadman_url or f"https://deadman.invalid/ping/{args.cluster}-{stack}"
    return f"""# Stack {stack} of cluster {args.cluster}: written by `make new-stack` (tools/new_stack).
# The smallest config that plans; every other setting keeps its default (Pulumi.prod.yaml shows
# them all). Names on PVE and PBS derive from the stack name (docs/environments.md).
# Before `pulumi up`: `make plan STACK={stack}`, then set the secrets printed by the tool.
config:
  obsstack:cluster: {q(args.cluster)}
  obsstack:proxmox:
    endpoint: {q(args.pve_endpoint)}
    existing_storages: [{", ".join(q(name) for name in dict.fromkeys(["local", args.storage]))}]
  obsstack:pbs:
    host: {q(pbs_name)}
    fingerprint: {q(args.pbs_fingerprint)}
    # A PVE storage entry is cluster-wide: one per stack.
    storage_id: {q(f"pbs-{stack}")}
    datastore: {q(datastore)}
    token_user: {q(f"obsstack-{stack}@pbs")}
    datastores:
      - name: {q(datastore)}
        path: {q(f"/mnt/datastore/{datastore}")}
  obsstack:inventory:
    assets:
      # A node another stack already manages: add `managed: false` (only one stack installs agents).
{node_lines}
      - {{name: {q(pbs_name)}, kind: pbs_host, address: {q(pbs_address)}, service: backup, tier: critical}}
      # Add guests here: {{name, kind: vm|lxc, vmid, node, address, service, tier, probes, drill}}.
  obsstack:monitoring:
    hosts:
      - name: {q(f"{stack}-mon-1")}
        vmid: {args.vmid}
        node: {q(args.monitoring_node or nodes[0][0])}
        address: {q(args.monitoring_address)}
        gateway: {q(args.gateway)}
    # Sized for a small environment: 30 days of metrics (the monthly report looks back 30 days),
    # capped at 40 GB, and 7 days of logs on a 64 GB data disk.
    retention: 30d
    retention_size_gb: 40
    vm:
      data_disk_gb: 64
      storage: {q(args.storage)}
      data_storage: {q(args.storage)}
      bridge: {q(args.bridge)}{vlan}
      dns: [{", ".join(q(d) for d in dns)}]
    # The monitoring network: {network}
    domain: {q(args.domain or f"{stack}.lab.internal")}
  obsstack:alerting:
    receivers:
      - {{name: slack-ops, type: slack, channel: {q(args.slack_channel)}, url_secret: slackOpsUrl}}
      # The Watchdog alert pings this URL every minute: point it at your dead-man's switch.
      - {{name: deadman, type: webhook, url: {q(deadman)}, credentials_secret: deadmanToken}}
    routing:
      critical: {{receivers: [slack-ops]}}
      warning: {{receivers: [slack-ops]}}
      info: {{receivers: [slack-ops]}}
      watchdog_receiver: deadman
    escalation:
      secondary_receivers: [slack-ops]
  obsstack:loki:
    retention: 7d
    target_lines_per_second: 200
  obsstack:backups:
    storage: {q(f"pbs-{stack}")}
    schedule: {q(args.backup_schedule)}
    drill:
      scratch_storage: {q(args.storage)}
      # VMIDs restore drills may use: keep them apart from every other stack's.
      scratch_vmid_range: [{low}, {high}]
"""


def validated(text: str, stack: str) -> stack_config.StackConfig:
    """The config the text holds, read the way every tool reads a stack file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"Pulumi.{stack}.yaml"
        path.write_text(text)
        return stack_config.load_file(path)


def secret_lines(config: stack_config.StackConfig, stack: str) -> list[str]:
    return [
        f"pulumi config set --stack {stack} --secret {stack_config.NAMESPACE}:{key} "
        + SECRET_HINTS.get(key, "'...'").format(stack=stack)
        for key in config.secret_key_names()
    ]


def main(argv: list[str] | None = None, ask: Callable[[str], str] | None = None) -> int:
    args = parse_args(argv)
    if ask is None and sys.stdin.isatty():
        ask = input
    target = args.out_dir / f"Pulumi.{args.stack}.yaml"
    try:
        if target.exists() and not args.force:
            raise InvalidFactError(f"{target} exists: pick another --stack, or pass --force to overwrite it")
        ask_missing(args, ask)
        text = render(args)
        config = validated(text, args.stack)
    except InvalidFactError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except stack_config.ConfigError as err:
        print(f"error: the facts give an invalid stack: {err}", file=sys.stderr)
        return EXIT_INVALID
    target.write_text(text)
    print(f"wrote {target}\n\nnext:\n  pulumi stack init {args.stack}")
    print("\n".join(f"  {line}" for line in secret_lines(config, args.stack)))
    print(f"  make plan STACK={args.stack}")
    if not args.deadman_url:
        print(
            "note: the deadman receiver points at a placeholder URL: pass --deadman-url or edit it before `pulumi up`"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""Silence and acknowledge alerts the accountable way (Alertmanager API v2 + the silence policy).

    silences create -m alertname=HostMemoryPressure -m instance=10.0.10.120:9100 --duration 2h \\
        --author alice --comment "memory upgrade in progress, ticket OPS-42"
    silences create ... --maintenance sunday-patching --duration 3d      (declared window: up to 7d)
    silences ack -m alertname=TargetDown -m instance=10.0.10.110:9100 --author alice --comment "..."
    silences alerts | list | audit | expire ID
    silences check --textfile-dir /var/lib/prometheus/node-exporter     (the timer on the host)

The policy comes from --policy FILE (rendered to /etc/obsstack/silence-policy.json on the
monitoring host) or from --stack NAME (Pulumi.NAME.yaml). Exit codes: 0 ok, 1 refused by policy
or bad input, 2 Alertmanager unreachable or refused the request.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools.silences import TEXTFILE_NAME, acknowledge, audit, check, check_failed, create, write_textfile
from tools.silences.api import AlertmanagerError, add_connection_arguments, from_arguments
from tools.silences.policy import ACK_MARK, Matcher, Policy, PolicyError

DEFAULT_POLICY = Path("/etc/obsstack/silence-policy.json")
EXIT_REFUSED, EXIT_ALERTMANAGER = 1, 2


def load_policy(args: argparse.Namespace) -> Policy:
    if args.stack:
        from components import config as stack_config
        from tools.silences.from_config import policy

        return policy(stack_config.load_file(Path(f"Pulumi.{args.stack}.yaml")))
    path = Path(args.policy)
    if not path.exists():
        raise PolicyError(f"no policy file at {path}: pass --policy FILE or --stack NAME")
    return Policy.load(path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="silences", description=__doc__.split("\n\n")[0])
    add_connection_arguments(p)
    p.add_argument("--policy", default=str(DEFAULT_POLICY), help="silence-policy.json rendered for the host")
    p.add_argument("--stack", help="read the policy from Pulumi.<stack>.yaml instead")
    sub = p.add_subparsers(dest="command", required=True)

    def accountable(cmd: argparse.ArgumentParser, default_duration: str) -> None:
        cmd.add_argument("-m", "--matcher", action="append", default=[], help='label=value, label=~"regex", ...')
        cmd.add_argument("--duration", default=default_duration, help="e.g. 30m, 2h (capped by the policy)")
        cmd.add_argument("--author", required=True, help="who takes responsibility")
        cmd.add_argument("--comment", required=True, help="why (at least 10 characters; a ticket helps)")

    create_cmd = sub.add_parser("create", help="silence alerts (policy-checked)")
    accountable(create_cmd, "2h")
    create_cmd.add_argument("--maintenance", help="declared maintenance window allowing a longer silence")
    create_cmd.add_argument("--force", metavar="REASON", help="override a forceable refusal, with a reason")
    ack_cmd = sub.add_parser("ack", help="acknowledge firing alerts (a silence on each alert's labels)")
    accountable(ack_cmd, "4h")
    ack_cmd.add_argument("--fingerprint", help="the alert's fingerprint (from `silences alerts`)")
    sub.add_parser("alerts", help="firing alerts with their fingerprints")
    sub.add_parser("list", help="active silences")
    sub.add_parser("audit", help="active silences that break the policy, and why")
    expire_cmd = sub.add_parser("expire", help="end a silence now")
    expire_cmd.add_argument("silence_id")
    check_cmd = sub.add_parser("check", help="policy check: write obs_alerts.prom for node_exporter")
    check_cmd.add_argument("--textfile-dir", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        am = from_arguments(args)
        if args.command == "alerts":
            for a in am.alerts():
                labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
                print(f"{a['fingerprint']}  {a['status']['state']:<10} {a['startsAt']}  {labels}")
            return 0
        if args.command == "list":
            for s in am.silences():
                if s["status"]["state"] == "active":
                    shown = " ".join(str(Matcher.from_api(m)) for m in s["matchers"])
                    kind = "ack " if ACK_MARK in s["comment"] else "    "
                    print(f"{s['id']}  {kind} until {s['endsAt']}  {s['createdBy']}: {s['comment']}  [{shown}]")
            return 0
        if args.command == "expire":
            am.expire_silence(args.silence_id)
            print(f"expired {args.silence_id}")
            return 0
        policy = load_policy(args)
        if args.command == "audit":
            broken = audit(am.silences(), am.alerts(), policy)
            for silence, findings in broken:
                reasons = "; ".join(f.message for f in findings)
                print(f"{silence['id']}  {silence['createdBy']}: {silence['comment']!r}  -> {reasons}")
            print(
                f"{len(broken)} silence(s) break the policy"
                + (": expire them (`silences expire ID`)" if broken else "")
            )
            return 1 if broken else 0
        if args.command == "check":
            try:
                text = check(am, policy)
            except AlertmanagerError:
                write_textfile(args.textfile_dir, TEXTFILE_NAME, check_failed(time.time()))
                raise
            print(f"wrote {write_textfile(args.textfile_dir, TEXTFILE_NAME, text)}")
            return 0
        matchers = [Matcher.parse(m) for m in args.matcher]
        if args.command == "ack":
            if not matchers and not args.fingerprint:
                raise PolicyError("pick the alert: --fingerprint FP or -m label=value (see `silences alerts`)")
            ids = acknowledge(
                am,
                policy,
                selectors=matchers,
                fingerprint=args.fingerprint,
                duration=args.duration,
                author=args.author,
                comment=args.comment,
            )
            print("\n".join(f"acknowledged: silence {i}" for i in ids))
            return 0
        silence_id = create(
            am,
            policy,
            matchers=matchers,
            duration=args.duration,
            author=args.author,
            comment=args.comment,
            maintenance=args.maintenance,
            force_reason=args.force,
        )
        print(f"created silence {silence_id}")
        return 0
    except PolicyError as err:
        print(err, file=sys.stderr)
        return EXIT_REFUSED
    except AlertmanagerError as err:
        print(err, file=sys.stderr)
        return EXIT_ALERTMANAGER


if __name__ == "__main__":
    sys.exit(main())

"""Silence and acknowledge alerts the accountable way (Alertmanager API v2 + the silence policy).

    silences create -m alertname=HostMemoryPressure -m instance=10.0.10.120:9100 --duration 2h \\
        --author alice --comment "memory upgrade in progress, ticket OPS-42"
    silences create ... --maintenance sunday-patching --duration 3d      (declared window: up to 7d)
    silences ack -m alertname=TargetDown -m instance=10.0.10.110:9100 --author alice --comment "..."
    silences alerts | list | audit | expire ID
    silences check --textfile-dir /var/lib/prometheus/node-exporter     (the timer on the host)

The policy comes from --policy FILE (rendered to /etc/obsstack/silence-policy.json on the
monitoring host) or from --stack NAME (Pulumi.NAME.yaml). Exit codes: 0 ok, 1 refused by the
policy, audit found breaches, or Alertmanager unreachable or refusing, 2 bad input (a matcher, a
duration, a file, an option).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools.silences import (
    TEXTFILE_NAME,
    acknowledge,
    audit,
    author_of,
    check,
    check_failed,
    create,
    judge_active,
    write_textfile,
)
from tools.silences.api import Alertmanager, AlertmanagerError, add_connection_arguments, from_arguments
from tools.silences.policy import BadInputError, Matcher, Policy, PolicyError, parse_duration

DEFAULT_POLICY = Path("/etc/obsstack/silence-policy.json")
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def load_policy(args: argparse.Namespace) -> Policy:
    if args.stack:
        # Only on the controller: the host has the rendered policy file and no components/.
        from components import config as stack_config
        from tools.silences.from_config import policy

        path = Path(f"Pulumi.{args.stack}.yaml")
        if not path.is_file():
            raise BadInputError(
                f"--stack {args.stack}: no {path} here (run from the repository, or pass --policy FILE)"
            )
        try:
            return policy(stack_config.load_file(path))
        except stack_config.ConfigError as err:
            raise BadInputError(str(err)) from None
    return Policy.load(Path(args.policy))


def _textfile_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise BadInputError(f"--textfile-dir {path} is a file: give node_exporter's textfile directory")
    return path


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
        return _run(args)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (PolicyError, AlertmanagerError) as err:
        print(err, file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # the textfile directory: unwritable, full, gone
        print(f"error: cannot write {err.filename or 'a file'}: {err.strerror}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    # Bad input is refused before Alertmanager is asked anything.
    if args.command == "check":
        _textfile_dir(args.textfile_dir)
    matchers = [Matcher.parse(m) for m in getattr(args, "matcher", [])]
    if args.command in ("create", "ack"):
        parse_duration(args.duration)
    policy = load_policy(args) if args.command in ("audit", "check", "create", "ack") else None
    am = from_arguments(args)
    if args.command == "alerts":
        for a in am.alerts():
            labels = ",".join(f"{k}={v}" for k, v in sorted(a["labels"].items()))
            print(f"{a['fingerprint']}  {a['status'].get('state', '?'):<10} {a['startsAt']}  {labels}")
        return 0
    if args.command == "list":
        for j in judge_active(am.silences(), [], Policy(0, 0, ())):
            s = j.silence
            shown = " ".join(f"{m['name']}{_op(m)}{m['value']!r}" for m in s["matchers"])
            who = author_of(str(s.get("createdBy", "")))
            kind = "ack " if j.marks.ack else "    "
            print(f"{s['id']}  {kind} until {s['endsAt']}  {who}: {s.get('comment')}  [{shown}]")
        return 0
    if args.command == "expire":
        am.expire_silence(args.silence_id)
        print(f"expired {args.silence_id}")
        return 0
    assert policy is not None
    if args.command == "audit":
        return _audit(am, policy)
    if args.command == "check":
        return _check(am, policy, args.textfile_dir)
    if args.command == "ack":
        if not matchers and not args.fingerprint:
            raise BadInputError("pick the alert: --fingerprint FP or -m label=value (see `silences alerts`)")
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


def _audit(am: Alertmanager, policy: Policy) -> int:
    broken = audit(am.silences(), am.alerts(), policy)
    for silence, findings in broken:
        reasons = "; ".join(f.message for f in findings)
        print(f"{silence['id']}  {silence.get('createdBy')}: {silence.get('comment')!r}  -> {reasons}")
    print(f"{len(broken)} silence(s) break the policy" + (": expire them (`silences expire ID`)" if broken else ""))
    return EXIT_FAILED if broken else 0


def _check(am: Alertmanager, policy: Policy, textfile_dir: Path) -> int:
    try:
        text = check(am, policy)
    except AlertmanagerError:
        write_textfile(textfile_dir, TEXTFILE_NAME, check_failed(time.time()))
        raise
    print(f"wrote {write_textfile(textfile_dir, TEXTFILE_NAME, text)}")
    return 0


def _op(matcher: dict[str, object]) -> str:
    return {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
        (bool(matcher.get("isRegex")), bool(matcher.get("isEqual", True)))
    ]


if __name__ == "__main__":
    sys.exit(main())

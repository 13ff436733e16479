"""Restore drill: restore the newest backup of each target into an isolated scratch VM, verify the
canary checksums inside it, measure RPO and RTO, and always destroy the scratch VM.

    python -m tools.restore_drill --stack prod (--target NAME ... | --all) [--dry-run] [--outputs FILE]

Exit codes: 0 every drill verified, 1 a drill failed, 2 unusable input, 3 a scratch VM could not
be destroyed (clean up by hand, see the report), 4 another drill holds the lock, 130 interrupted.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tools.restore_drill import metrics, report
from tools.restore_drill.drill import Drill, Progress, Result
from tools.restore_drill.pve import Pve
from tools.restore_drill.schema import DrillPlan, InputError, Target, parse, read_outputs, token_from

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_LEFTOVER, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
DEFAULT_REPORT_DIR = Path("build/restore-drill")
# A due drill may start this much early so a daily check keeps a steady `every` cadence.
DUE_SLACK_SECONDS = 6 * 3600


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.restore_drill", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod", help="stack to read outputs from (pulumi stack output)")
    parser.add_argument("--outputs", type=Path, help="JSON of stack outputs instead of asking pulumi")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--target", action="append", metavar="NAME", help="drill this target (repeatable)")
    which.add_argument("--all", action="store_true", help="drill every target, one after the other")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; contact and change nothing")
    parser.add_argument(
        "--due", action="store_true", help="only targets whose last verified drill is older than `every`"
    )
    parser.add_argument(
        "--report-dir", type=Path, help="reports, state and lock (default: reportDir or build/restore-drill)"
    )
    parser.add_argument("--token-file", type=Path, help="file holding the PVE token user@realm!name=secret")
    sink = parser.add_mutually_exclusive_group()
    sink.add_argument("--textfile-dir", type=Path, help="write metrics into this node_exporter textfile directory")
    sink.add_argument("--pushgateway", metavar="URL", help="push metrics to this Pushgateway")
    sink.add_argument("--no-metrics", action="store_true", help="write no metrics")
    return parser


def select(plan: DrillPlan, names: list[str] | None) -> list[Target]:
    if names is None:
        return list(plan.targets)
    return [plan.target(name) for name in names]


def print_plan(plan: DrillPlan, targets: list[Target], sink: str, out: TextIO) -> None:
    t = plan.timeouts
    low, high = plan.scratch.vmid_range
    w = out.write
    w(f"Restore drill plan for cluster {plan.cluster} (dry run: nothing is contacted or changed)\n")
    tls = "verified" if plan.pve.verify_tls else "NOT verified"
    w(f"  PVE API   {plan.pve.endpoint} as {plan.credentials.token_id} (TLS {tls})\n")
    w(f"  backups   newest per guest on storage {plan.pbs_storage}\n")
    w(f"  scratch   storage {plan.scratch.storage}, first free VMID in {low}-{high}, pool {plan.scratch.pool or '-'}\n")
    w(
        f"  bounds    restore {_d(t.restore_seconds)}, start {_d(t.start_seconds)}, agent {_d(t.agent_seconds)}, "
        f"verify {_d(t.verify_seconds)}, cleanup {_d(t.cleanup_seconds)}\n"
    )
    w(f"  metrics   {sink}\n")
    if not targets:
        w("No drill targets: mark VMs or containers with `drill:` in the inventory.\n")
    for i, target in enumerate(targets, 1):
        what = "CT" if target.kind == "lxc" else "VM"
        w(
            f"\n[{i}/{len(targets)}] {target.name}: {what} {target.vmid} on {target.node}"
            f"{f', service {target.service}' if target.service else ''}; "
            f"budgets RTO {_d(target.rto_seconds)}, RPO {_d(target.rpo_seconds)}\n"
        )
        for j, step in enumerate(plan_steps(plan, target), 1):
            w(f"  {j}. {step}\n")
    w(f"\nSource VMs are only read; {len(targets)} drill(s), one restore at a time.\n")


def plan_steps(plan: DrillPlan, target: Target) -> list[str]:
    t = plan.timeouts
    low, high = plan.scratch.vmid_range
    node = plan.scratch.node or target.node
    ct = target.kind == "lxc"
    what = "CT" if ct else "VM"
    iso = plan.isolation
    if ct:
        isolate = "remove every NIC" if iso.mode == "link_down" else f"move every NIC to bridge={iso.bridge}"
        boot = f"start it and wait for `pct exec` over SSH on {node} (at most {_d(t.agent_seconds)})"
    else:
        nic = "link_down=1" if iso.mode == "link_down" else f"bridge={iso.bridge}"
        isolate = f"isolate every NIC ({nic}), name drill-{target.name}"
        boot = f"start it and wait for the guest agent (at most {_d(t.agent_seconds)})"
    steps = [
        f"find the newest backup of {what} {target.vmid} on {plan.pbs_storage}",
        f"pick the first free VMID in {low}-{high} (an existing VMID is never used)",
        f"restore it on {node} to {plan.scratch.storage} with new MACs (unique=1)",
        f"{isolate}, onboot=0; refuse to start otherwise",
        boot,
        f"read {plan.canary.file}; sha256sum -c its manifest of {', '.join(target.canary_paths)}",
    ]
    if target.checks:
        listed = ", ".join(f"{c.name} ({c.type}, {_d(c.timeout_seconds)})" for c in target.checks)
        steps.append(f"application checks, each until it passes or times out: {listed}")
    steps += [
        "RPO = drill start - canary timestamp; RTO = restore start -> checksums (and checks) verified",
        f"destroy the scratch {what} (always: also on failure, timeout, Ctrl-C)",
    ]
    return steps


def _d(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _sink(plan: DrillPlan, args: argparse.Namespace) -> tuple[str, str | None]:
    """(kind, where) of the metrics: textfile dir, Pushgateway URL, or none."""
    if args.no_metrics:
        return "none", None
    if args.textfile_dir:
        return "textfile", str(args.textfile_dir)
    if args.pushgateway:
        return "pushgateway", args.pushgateway
    if plan.metrics.mode == "pushgateway" and plan.metrics.pushgateway_url:
        return "pushgateway", plan.metrics.pushgateway_url
    return "textfile", plan.metrics.textfile_dir


def _due(plan: DrillPlan, targets: list[Target], state: dict[str, dict[str, Any]], now: float) -> list[Target]:
    horizon = plan.schedule.every_seconds - DUE_SLACK_SECONDS
    return [t for t in targets if now - float(state.get(t.name, {}).get("lastSuccess") or 0) >= horizon]


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _push_auth(plan: DrillPlan, url: str | None) -> metrics.PushAuth | None:
    """The plan's Pushgateway writer credentials, for the plan's Pushgateway only (it refuses
    pushes without them); another one given with --pushgateway gets none."""
    m = plan.metrics
    if url == m.pushgateway_url and m.pushgateway_user and m.pushgateway_password_file:
        return metrics.PushAuth(m.pushgateway_user, m.pushgateway_password_file, m.pushgateway_ca_file)
    return None


def _export(
    sink: tuple[str, str | None],
    target: str,
    entry: dict[str, Any],
    progress: Progress,
    push_auth: metrics.PushAuth | None = None,
) -> None:
    kind, where = sink
    try:
        if kind == "textfile" and where:
            path = metrics.write_textfile(Path(where), target, entry)
            progress.line(f"{target}: metrics written to {path}")
        elif kind == "pushgateway" and where:
            metrics.push(where, target, entry, auth=push_auth)
            progress.line(f"{target}: metrics pushed to {where}")
    except OSError as err:
        progress.line(f"{target}: WARNING: metrics not exported to {where}: {err}")


def run(args: argparse.Namespace, out: TextIO) -> int:
    outputs, source = read_outputs(args.outputs, args.stack)
    plan = parse(outputs, source)
    targets = select(plan, args.target)
    sink = _sink(plan, args)
    if args.dry_run:
        print_plan(plan, targets, f"{sink[0]} {sink[1] or ''}".strip(), out)
        return EXIT_OK

    report_dir = args.report_dir or Path(plan.report_dir or DEFAULT_REPORT_DIR)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"--report-dir {report_dir} is a file: give a directory for reports, state and lock") from None
    except OSError as err:
        raise InputError(f"--report-dir {report_dir} cannot be created ({err.strerror})") from None
    lock = (report_dir / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"error: another restore drill holds {report_dir / '.lock'}: one restore at a time", file=sys.stderr)
        return EXIT_LOCKED

    progress = Progress(out)
    state = metrics.load_state(report_dir)
    if args.due:
        targets = _due(plan, targets, state, time.time())
        if not targets:
            progress.line("no drill is due")
            return EXIT_OK
    secret = token_from(outputs, plan, args.token_file, dict(os.environ))
    verify: bool | str = plan.pve.ca_file or plan.pve.verify_tls
    pve = Pve.connect(
        plan.pve.host_port,
        plan.credentials.token_id,
        secret,
        verify=verify,
        request_seconds=plan.timeouts.request_seconds,
        poll=plan.timeouts.poll_seconds,
    )
    drill = Drill(pve, plan, progress)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.time()
    results: list[Result] = []
    interrupted = False
    try:
        for target in targets:
            try:
                result = drill.run(target)
            except KeyboardInterrupt:
                interrupted = True
                result = drill.last_result
            results.append(result)
            metrics.record(state, result)
            metrics.save_state(report_dir, state)
            _export(sink, target.name, state[target.name], progress, _push_auth(plan, sink[1]))
            if interrupted:
                break
    finally:
        signal.signal(signal.SIGTERM, previous)
    document = report.as_json(plan.cluster, results, started, time.time())
    json_path, md_path = report.write(report_dir / "reports", document)
    progress.line(f"report: {md_path} (and {json_path.name})")
    if any(r.scratch_destroyed is False for r in results):
        return EXIT_LEFTOVER
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if all(r.verified for r in results) else EXIT_FAILED


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args, out)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())

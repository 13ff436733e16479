"""The drill report: JSON for machines, Markdown for people."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools.restore_drill.drill import Result


def _iso(ts: float | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_json(cluster: str, results: list[Result], started_at: float, finished_at: float) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "startedAt": _iso(started_at),
        "finishedAt": _iso(finished_at),
        "verified": sum(r.verified for r in results),
        "failed": sum(not r.verified for r in results),
        "results": [
            {
                "target": r.target,
                "status": r.status,
                "withinBudget": r.within_budget,
                "error": r.error or None,
                "failedStep": r.failed_step or None,
                "sourceVmid": r.source_vmid,
                "node": r.node,
                "backup": r.backup or None,
                "backupTime": _iso(r.backup_time),
                "scratchVmid": r.scratch_vmid,
                "scratchDestroyed": r.scratch_destroyed,
                "cleanupError": r.cleanup_error or None,
                "canary": r.canary or None,
                "rtoSeconds": r.rto_seconds,
                "rtoBudgetSeconds": r.rto_budget_seconds,
                "rpoSeconds": r.rpo_seconds,
                "rpoBudgetSeconds": r.rpo_budget_seconds,
                "startedAt": _iso(r.started_at),
                "finishedAt": _iso(r.finished_at),
                "steps": [asdict(s) for s in r.steps],
            }
            for r in results
        ],
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def as_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Restore drill: {report['cluster']}, {report['startedAt']}",
        "",
        f"**{report['verified']} verified, {report['failed']} failed.** "
        "RPO = drill start minus the restored canary's timestamp; RTO = restore start to checksums verified.",
        "",
        "| target | status | backup | RTO (budget) | RPO (budget) | scratch VM |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        status = (
            r["status"] if r["status"] != "verified" else ("verified" if r["withinBudget"] else "verified, OVER BUDGET")
        )
        scratch = (
            "-"
            if r["scratchVmid"] is None
            else f"{r['scratchVmid']} " + ("destroyed" if r["scratchDestroyed"] else "**LEFT BEHIND**")
        )
        lines.append(
            f"| {r['target']} | {status} | {r['backupTime'] or '-'} | "
            f"{_duration(r['rtoSeconds'])} ({_duration(r['rtoBudgetSeconds'])}) | "
            f"{_duration(r['rpoSeconds'])} ({_duration(r['rpoBudgetSeconds'])}) | {scratch} |"
        )
    for r in report["results"]:
        lines += ["", f"## {r['target']} (VM {r['sourceVmid']})", ""]
        if r["error"]:
            lines += [f"**Failed at {r['failedStep']}:** {r['error']}", ""]
        if r["cleanupError"]:
            lines += [f"**Cleanup:** {r['cleanupError']}", ""]
        if r["canary"]:
            c = r["canary"]
            lines += [f"Canary written {c['timestamp']}, nonce `{c['nonce']}`, {c['files']} files.", ""]
        lines += ["| step | status | time | detail |", "|---|---|---:|---|"]
        lines += [f"| {s['name']} | {s['status']} | {s['seconds']:.1f}s | {s['detail']} |" for s in r["steps"]]
    return "\n".join(lines) + "\n"


def write(directory: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = (report["startedAt"] or "unknown").replace(":", "")
    json_path = directory / f"report-{stamp}.json"
    md_path = directory / f"report-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(as_markdown(report))
    return json_path, md_path

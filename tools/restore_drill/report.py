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
                "checks": [asdict(c) for c in r.checks],
            }
            for r in results
        ],
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


def as_markdown(report: dict[str, Any], chart: str | None = None) -> str:
    lines = [
        f"# Restore drill: {report['cluster']}, {report['startedAt']}",
        "",
        f"**{report['verified']} verified, {report['failed']} failed.** "
        "RPO = drill start minus the restored canary's timestamp; RTO = restore start to checksums verified.",
        "",
        *([f"![timeline of the drill]({chart})", ""] if chart else []),
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
        if r.get("checks"):
            lines += ["", "| application check | type | status | time | detail |", "|---|---|---|---:|---|"]
            lines += [
                f"| {c['name']} | {c['type']} | {c['status']} | {c['seconds']:.1f}s | {c['detail']} |"
                for c in r["checks"]
            ]
    return "\n".join(lines) + "\n"


def write(directory: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """report-<UTC start>.json and .md (and .png when matplotlib is installed)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = (report["startedAt"] or "unknown").replace(":", "")
    json_path = directory / f"report-{stamp}.json"
    md_path = directory / f"report-{stamp}.md"
    png = write_chart(directory / f"report-{stamp}.png", report) if report["results"] else None
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(as_markdown(report, png.name if png else None))
    return json_path, md_path


def write_chart(path: Path, report: dict[str, Any]) -> Path | None:
    """A PNG of each target's RTO and RPO as a share of its budget (failed drills say where they
    stopped); None without matplotlib, which the monitoring host's venv does not carry."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    results = report["results"]
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.9 * len(results)))
    for row, r in enumerate(results):
        if r["status"] != "verified":
            ax.text(2, row, f"{r['status']} at {r['failedStep']}", va="center", color="#c0392b", fontsize=10)
            continue
        for offset, key, color in ((-0.18, "rto", "#2e86c1"), (0.18, "rpo", "#8e44ad")):
            share = 100 * r[f"{key}Seconds"] / r[f"{key}BudgetSeconds"]
            ax.barh(row + offset, share, height=0.34, color="#c0392b" if share > 100 else color)
            measured = _duration(r[f"{key}Seconds"])
            ax.text(share + 1, row + offset, f" {key.upper()} {measured} of {_duration(r[f'{key}BudgetSeconds'])}",
                    va="center", fontsize=8)  # fmt: skip
    ax.axvline(100, color="#34495e", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(results)), [f"{r['target']} ({r['sourceVmid']})" for r in results])
    ax.invert_yaxis()
    ax.set_xlim(0, 160)
    ax.set_xlabel("% of the target's budget (dashed line: budget)")
    outcome = f"{report['verified']} verified, {report['failed']} failed"
    ax.set_title(f"Restore drill {report['cluster']}, {report['startedAt']}: {outcome}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Build the pull-request comment from the `make plan` output of the base and the PR revisions.

    python -m tools.pr_comment --base BASE_PLAN_DIR --pr PR_PLAN_DIR [--stack NAME] [--out FILE] [--max-chars N]

The comment is the PR's plan.md, the resources added, removed or changed between the two plan.json
files, and a unified diff of every rendered host file
(hosts/**) and every dashboard (dashboards/** or the `grafana:oss/dashboard:Dashboard` resources
of plan.json) that differs between the two plans. It starts with a hidden marker so the workflow
edits its own comment in place instead of adding one per push; with ``--stack`` the marker and a
heading name the stack, so each stack file of the repository has a comment of its own. GitHub caps a comment at 65,536
characters: past --max-chars the diffs are cut with a note pointing at the workflow's artifact.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "<!-- obsstack:plan-comment -->"
GITHUB_COMMENT_LIMIT = 65_536
DEFAULT_MAX_CHARS = 60_000
DASHBOARD_TYPE = "grafana:oss/dashboard:Dashboard"
MAX_RESOURCE_ROWS = 100


@dataclass(frozen=True)
class FileDiff:
    path: str
    status: str  # added | removed | modified
    diff: str


class PlanDirError(ValueError):
    """A plan directory this tool cannot read: exit code 2."""


def _plan(plan_json: Path) -> dict[str, Any]:
    """plan.json as the plan tool writes it (an object with resources), or a clear error."""
    try:
        data = json.loads(plan_json.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PlanDirError(f"{plan_json} is not plan.json as `make plan` writes it ({type(err).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("resources", []), list):
        raise PlanDirError(f"{plan_json} is not plan.json as `make plan` writes it (no resources list)")
    return data


def rendered_files(plan_dir: Path) -> dict[str, str]:
    """Relative path -> content for every host file and dashboard in one plan directory."""
    files: dict[str, str] = {}
    for sub in ("hosts", "dashboards"):
        root = plan_dir / sub
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                files[path.relative_to(plan_dir).as_posix()] = path.read_text(errors="replace")
    plan_json = plan_dir / "plan.json"
    if plan_json.exists():
        for resource in _plan(plan_json).get("resources", []):
            if resource.get("type") != DASHBOARD_TYPE:
                continue
            body = resource.get("inputs", {}).get("configJson", "")
            try:
                body = json.dumps(json.loads(body), indent=2, sort_keys=True) + "\n"
            except (TypeError, ValueError):
                body = f"{body}\n"
            files.setdefault(f"dashboards/{resource['name']}.json", body)
    return files


def diff_plans(base_dir: Path, pr_dir: Path) -> list[FileDiff]:
    base, pr = rendered_files(base_dir), rendered_files(pr_dir)
    diffs = []
    for path in sorted(set(base) | set(pr)):
        old, new = base.get(path), pr.get(path)
        if old == new:
            continue
        status = "added" if old is None else "removed" if new is None else "modified"
        lines = difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
        )
        diffs.append(FileDiff(path, status, "".join(line if line.endswith("\n") else line + "\n" for line in lines)))
    return diffs


def _resources(plan_dir: Path) -> dict[tuple[str, str], Any]:
    plan_json = plan_dir / "plan.json"
    if not plan_json.exists():
        return {}
    return {
        (r["type"], r["name"]): (r.get("inputs"), r.get("options"), r.get("parent"))
        for r in _plan(plan_json).get("resources", [])
    }


def resource_changes(base_dir: Path, pr_dir: Path) -> list[tuple[str, str, str]]:
    """(added | removed | changed, type, name) for every resource whose inputs or options differ."""
    base, pr = _resources(base_dir), _resources(pr_dir)
    changes = []
    for key in sorted(set(base) | set(pr)):
        if key not in base:
            changes.append(("added", *key))
        elif key not in pr:
            changes.append(("removed", *key))
        elif base[key] != pr[key]:
            changes.append(("changed", *key))
    return changes


def _resource_section(base_dir: Path, pr_dir: Path) -> list[str]:
    changes = resource_changes(base_dir, pr_dir)
    lines = ["### Resources changed by this pull request", ""]
    if not changes:
        return [*lines, "No resource changes against the base branch.", ""]
    lines += ["| change | type | name |", "|---|---|---|"]
    lines += [f"| {change} | `{type_}` | `{name}` |" for change, type_, name in changes[:MAX_RESOURCE_ROWS]]
    if len(changes) > MAX_RESOURCE_ROWS:
        lines.append(f"| ... | {len(changes) - MAX_RESOURCE_ROWS} more | see plan.json in the `plan-diff` artifact |")
    return [*lines, ""]


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def marker(stack: str | None) -> str:
    return MARKER if stack is None else f"<!-- obsstack:plan-comment:{stack} -->"


def build_comment(base_dir: Path, pr_dir: Path, max_chars: int = DEFAULT_MAX_CHARS, stack: str | None = None) -> str:
    for label, plan_dir in (("--base", base_dir), ("--pr", pr_dir)):
        if not (plan_dir / "plan.md").exists():
            raise FileNotFoundError(f"{label} {plan_dir}: no plan.md there; run `make plan` for that revision first")
    diffs = diff_plans(base_dir, pr_dir)
    head = [
        marker(stack),
        *([f"## Plan of stack `{stack}`", ""] if stack else []),
        (pr_dir / "plan.md").read_text().rstrip(),
        "",
        *_resource_section(base_dir, pr_dir),
        "### Rendered files changed by this pull request",
        "",
    ]
    if not diffs:
        head.append("No host file or dashboard changes against the base branch.")
        return "\n".join(head) + "\n"
    head += ["| status | file |", "|---|---|", *[f"| {d.status} | `{d.path}` |" for d in diffs], ""]
    text = "\n".join(head) + "\n"
    omitted = []
    for d in diffs:
        fence = _fence(d.diff)
        summary = f"<summary><code>{d.path}</code> ({d.status})</summary>"
        block = f"<details>{summary}\n\n{fence}diff\n{d.diff}{fence}\n\n</details>\n"
        if len(text) + len(block) > max_chars:
            omitted.append(d.path)
            continue
        text += block
    if omitted:
        text += (
            f"\n**{len(omitted)} diff(s) left out to fit GitHub's comment size limit** "
            f"({', '.join(f'`{p}`' for p in omitted)}): download the `plan-diff` artifact of this run.\n"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pr_comment", description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="plan directory of the base revision")
    parser.add_argument("--pr", type=Path, required=True, help="plan directory of the pull request")
    parser.add_argument("--out", type=Path, help="write the comment here (default: stdout)")
    parser.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS)
    parser.add_argument("--stack", help="the stack planned (its own comment marker and heading)")
    args = parser.parse_args(argv)
    if not 1_000 <= args.max_chars <= GITHUB_COMMENT_LIMIT:
        print(f"error: --max-chars must be between 1000 and {GITHUB_COMMENT_LIMIT}", file=sys.stderr)
        return 2
    try:
        comment = build_comment(args.base, args.pr, args.max_chars, args.stack)
    except (FileNotFoundError, PlanDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out and args.out.is_dir():
        print(f"error: --out {args.out} is a directory: give the file to write the comment to", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(comment)
        print(f"comment written to {args.out} ({len(comment)} characters)", file=sys.stderr)
    else:
        sys.stdout.write(comment)
    return 0


if __name__ == "__main__":
    sys.exit(main())

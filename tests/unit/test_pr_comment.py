"""The pull-request comment is built from the `make plan` output of the base and the PR revision."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_STACK
from tools.plan.__main__ import main as plan_main
from tools.pr_comment.__main__ import MARKER, build_comment, diff_plans, main

REGISTER = "hosts/mon-1/etc/obsstack/coverage-register.json"
NEW_ASSET = {
    "name": "pihole",
    "kind": "lxc",
    "vmid": 103,
    "node": "pve1",
    "address": "10.0.10.55",
    "service": "dns",
    "tier": "important",
}


def _stack_with(tmp_path: Path, name: str, change: Any = None) -> Path:
    document = yaml.safe_load(EXAMPLE_STACK.read_text())
    if change is not None:
        change(document["config"])
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _plan(tmp_path: Path, name: str, change: Any = None) -> Path:
    out = tmp_path / f"plan-{name}"
    assert plan_main(["--stack-file", str(_stack_with(tmp_path, name, change)), "--out", str(out), "--quiet"]) == 0
    return out


def _add_asset(config: dict[str, Any]) -> None:
    config["obsstack:inventory"]["assets"].append(copy.deepcopy(NEW_ASSET))


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("plans")
    return _plan(tmp, "base"), _plan(tmp, "pr", _add_asset)


def _diff_lines(comment: str, sign: str) -> list[str]:
    """Lines added or removed inside the comment's diff blocks (plan.md has bullets of its own)."""
    lines, in_diff = [], False
    for line in comment.splitlines():
        if line.lstrip("`~") == "diff" and line != "diff":
            in_diff = True
        elif in_diff and line and not line.strip("`~"):
            in_diff = False
        elif in_diff and line.startswith(sign) and not line.startswith(sign * 3):
            lines.append(line[1:])
    return lines


def test_comment_is_the_pr_plan_plus_the_changed_host_file(plans: tuple[Path, Path]) -> None:
    base, pr = plans
    comment = build_comment(base, pr)
    assert comment.startswith(MARKER + "\n")
    assert (pr / "plan.md").read_text().rstrip() in comment
    assert (base / "plan.md").read_text() != (pr / "plan.md").read_text()
    assert f"| modified | `{REGISTER}` |" in comment
    # the new managed host gets its agents: a resource only the PR's plan.json has
    assert "| added | `obsstack:monitoring:HostAgents` | `pihole-agents` |" in comment
    assert "| removed |" not in comment
    assert f"--- a/{REGISTER}" in comment and f"+++ b/{REGISTER}" in comment
    added, removed = _diff_lines(comment, "+"), _diff_lines(comment, "-")
    assert any('"asset": "pihole"' in line for line in added)
    assert not any("pihole" in line for line in removed)
    # every added line comes from the PR's rendered files, every removed one from the base's
    # (a new managed asset also changes prometheus.yml and gets its own agent files)
    pr_lines = {line for f in (pr / "hosts").rglob("*") if f.is_file() for line in f.read_text().splitlines()}
    base_lines = {line for f in (base / "hosts").rglob("*") if f.is_file() for line in f.read_text().splitlines()}
    assert added and set(added) <= pr_lines
    assert set(removed) <= base_lines


def test_identical_plans_say_nothing_changed(plans: tuple[Path, Path]) -> None:
    base, _ = plans
    comment = build_comment(base, base)
    assert "No host file or dashboard changes against the base branch." in comment
    assert "No resource changes against the base branch." in comment
    assert "```diff" not in comment


def test_a_file_only_in_one_plan_is_added_or_removed(plans: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = plans
    pr_copy = tmp_path / "pr"
    shutil.copytree(base, pr_copy)  # only the two changes below differ
    (pr_copy / REGISTER).unlink()
    (pr_copy / "hosts/mon-1/etc/obsstack/new.conf").write_text("x = 1\n")
    status = {d.path: d.status for d in diff_plans(base, pr_copy)}
    assert status == {REGISTER: "removed", "hosts/mon-1/etc/obsstack/new.conf": "added"}


def _with_dashboard(plan_dir: Path, dest: Path, title: str, where: str) -> Path:
    shutil.copytree(plan_dir, dest)
    body = {"title": title, "uid": "overview", "panels": []}
    if where == "plan.json":
        plan = json.loads((dest / "plan.json").read_text())
        plan["resources"].append(
            {"type": "grafana:oss/dashboard:Dashboard", "name": "overview", "inputs": {"configJson": json.dumps(body)}}
        )
        (dest / "plan.json").write_text(json.dumps(plan))
    else:
        (dest / "dashboards").mkdir()
        (dest / "dashboards/overview.json").write_text(json.dumps(body, indent=2) + "\n")
    return dest


@pytest.mark.parametrize("where", ["plan.json", "dashboards-dir"])
def test_dashboard_changes_are_diffed(plans: tuple[Path, Path], tmp_path: Path, where: str) -> None:
    base, _ = plans
    old = _with_dashboard(base, tmp_path / "old", "Overview", where)
    new = _with_dashboard(base, tmp_path / "new", "Overview v2", where)
    comment = build_comment(old, new)
    assert "| modified | `dashboards/overview.json` |" in comment
    assert any('"title": "Overview v2"' in line for line in _diff_lines(comment, "+"))
    assert any('"title": "Overview"' in line for line in _diff_lines(comment, "-"))


def test_long_diffs_are_cut_to_fit_a_github_comment(plans: tuple[Path, Path], tmp_path: Path) -> None:
    base, _ = plans
    big = tmp_path / "big"
    shutil.copytree(base, big)  # only the big files differ
    for i in range(5):
        (big / f"hosts/mon-1/etc/obsstack/big{i}.txt").write_text("".join(f"line {n}\n" for n in range(400)))
    budget = len((big / "plan.md").read_text()) + 8_000  # plan.md is always quoted whole
    comment = build_comment(base, big, max_chars=budget)
    assert len(comment) <= budget + 400
    assert "left out to fit GitHub's comment size limit" in comment
    assert "big4.txt" in comment.split("left out")[1]


def test_cli_writes_the_comment_and_rejects_a_missing_plan(
    plans: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, pr = plans
    out = tmp_path / "comment.md"
    assert main(["--base", str(base), "--pr", str(pr), "--out", str(out)]) == 0
    assert out.read_text() == build_comment(base, pr)
    assert main(["--base", str(tmp_path / "nowhere"), "--pr", str(pr)]) == 2
    assert "run `make plan` for that revision first" in capsys.readouterr().err


@pytest.mark.parametrize("stack", ["prod", "staging"], ids=["prod", "staging"])
def test_a_stacks_comment_has_a_marker_and_heading_of_its_own(plans: tuple[Path, Path], stack: str) -> None:
    base, pr = plans
    comment = build_comment(base, pr, stack=stack)
    first, heading = comment.splitlines()[:2]
    assert first == f"<!-- obsstack:plan-comment:{stack} -->" and first != MARKER
    assert heading == f"## Plan of stack `{stack}`"

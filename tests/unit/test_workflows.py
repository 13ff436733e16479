"""GitHub Actions workflows: actionlint clean, actions pinned by SHA, least privilege, and the
delivery contract (offline plan on both revisions, reviewed `pulumi up`, nightly drift check)."""

from __future__ import annotations

import json
import os
import re
import subprocess
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


ACTIONLINT_VERSION = "v1.7.12"  # the Makefile's ACTIONLINT_VERSION


def actionlint() -> str:
    """actionlint as `make actionlint` builds it from the Go module proxy (never a skip)."""
    tools = Path(os.environ.get("OBSSTACK_TOOLS_DIR", Path.home() / ".cache" / "obsstack-tools"))
    binary = tools / "actionlint"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run `make actionlint` (needs Go; .ci/run does it)")
    version = subprocess.run([str(binary), "-version"], capture_output=True, text=True, check=False).stdout
    if version.splitlines()[:1] != [ACTIONLINT_VERSION]:
        pytest.fail(f"{binary} is {version.splitlines()[:1]}, not {ACTIONLINT_VERSION}: run `make actionlint`")
    return str(binary)


def test_the_makefile_builds_the_actionlint_the_tests_expect() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert f"ACTIONLINT_VERSION := {ACTIONLINT_VERSION}" in makefile
    assert "go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)" in makefile
    assert "make actionlint" in (ROOT / ".ci/run").read_text()


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
    assert 'make -C pr plan STACK="$STACK"' in runs and 'make -C base plan STACK="$STACK"' in runs
    assert 'tools.pr_comment --stack "$STACK" --base ../base/build/plan --pr build/plan' in runs
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
    assert "test" in up["needs"]
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


# --- every stack file, without editing a workflow ---------------------------------------------

STACK_MATRIX = "${{ fromJSON(needs.stacks.outputs.stacks) }}"
PER_STACK_JOBS = [
    ("pull-request.yml", "plan"),
    ("pull-request.yml", "preview"),
    ("deploy.yml", "up"),
    ("drift.yml", "drift"),
]


@pytest.mark.parametrize(("workflow", "job"), PER_STACK_JOBS, ids=[f"{w}:{j}" for w, j in PER_STACK_JOBS])
def test_per_stack_jobs_take_their_matrix_from_the_stack_files(workflow: str, job: str) -> None:
    jobs = load(ROOT / ".github/workflows" / workflow)["jobs"]
    assert jobs[job]["strategy"]["matrix"]["stack"] == STACK_MATRIX
    needs = jobs[job]["needs"]
    assert "stacks" in (needs if isinstance(needs, list) else [needs])
    listing = "\n".join(str(s.get("run", "")) for s in steps(jobs["stacks"]))
    assert "python3 -m tools.stacks --github-output" in listing
    assert jobs["stacks"]["outputs"]["stacks"] == "${{ steps.list.outputs.stacks }}"


def test_each_stack_gets_its_own_comment_and_artifact() -> None:
    plan = load(ROOT / ".github/workflows/pull-request.yml")["jobs"]["plan"]
    upload = next(s for s in steps(plan) if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["with"]["name"] == "plan-diff-${{ matrix.stack }}"


def test_the_stack_list_is_every_stack_file(tmp_path: Path) -> None:
    output = tmp_path / "github-output"
    result = subprocess.run(
        ["python3", "-m", "tools.stacks", "--github-output"],
        cwd=ROOT,
        env={**os.environ, "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml"))
    assert json.loads(result.stdout) == expected and {"prod", "staging"} <= set(expected)
    assert output.read_text() == f"stacks={json.dumps(expected)}\n"


def test_a_new_stack_file_joins_the_matrix(tmp_path: Path) -> None:
    from tools import stacks

    for name in ("prod", "lab-2"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    assert stacks.stacks(tmp_path) == ["lab-2", "prod"]
    (tmp_path / "Pulumi.Bad_Name.yaml").write_text("config: {}\n")
    assert stacks.main(["--root", str(tmp_path)]) == 2

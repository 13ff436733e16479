"""The offline plan CLI: exit codes, the printed tree, plan.json's shape, and no secret leaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config as stack_config
from tests.conftest import EXAMPLE_STACK, ROOT, distinct_secrets, load_sections
from tools.plan.__main__ import main, write_plan

MARKER = ".obsstack-plan"  # how the tool recognises a directory it wrote


def write_stack(tmp_path: Path, sections: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"obsstack:{k}": v for k, v in sections.items()}}))
    return path


def write_secrets(tmp_path: Path) -> dict[str, str]:
    secrets = distinct_secrets(stack_config.validate(load_sections()))
    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump(secrets))
    return secrets


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], int]:
    tmp = tmp_path_factory.mktemp("plan")
    secrets = write_secrets(tmp)
    code = main(["--stack", "prod", "--out", str(tmp / "out"), "--secrets", str(tmp / "secrets.yaml"), "--quiet"])
    return tmp / "out", secrets, code


def test_plan_exits_zero_and_writes_everything(planned: tuple[Path, dict[str, str], int]) -> None:
    out, _, code = planned
    assert code == 0
    for name in ("plan.json", "plan.md", "outputs.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "hosts/mon-1/etc/obsstack/coverage-register.json").exists()


def test_plan_json_shape(planned: tuple[Path, dict[str, str], int]) -> None:
    plan = json.loads((planned[0] / "plan.json").read_text())
    assert set(plan) >= {"resources", "outputs"}
    names = {r["name"] for r in plan["resources"]}
    for resource in plan["resources"]:
        assert set(resource) >= {"type", "name", "parent", "inputs"}
        assert resource["type"].count(":") == 2, resource["type"]
        assert resource["parent"] is None or resource["parent"] in names
        assert isinstance(resource["inputs"], dict)
    assert set(plan["outputs"]) >= {"inventory", "endpoints", "restoreDrill"}


def test_plan_is_deterministic(tmp_path: Path, planned: tuple[Path, dict[str, str], int]) -> None:
    assert (
        main(["--out", str(tmp_path / "again"), "--secrets", str(planned[0].parent / "secrets.yaml"), "--quiet"]) == 0
    )
    assert (tmp_path / "again/plan.json").read_text() == (planned[0] / "plan.json").read_text()


def test_no_secret_value_anywhere_under_the_plan(planned: tuple[Path, dict[str, str], int]) -> None:
    out, secrets, _ = planned
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        text = path.read_text(errors="replace")
        for key, value in secrets.items():
            assert value not in text, f"secret {key} leaked into {path.relative_to(out)}"
    plan_text = (out / "plan.json").read_text()
    assert '"[secret]"' in plan_text, "secret inputs must be shown masked"


def test_printed_tree_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "obsstack:monitoring:MonitoringHost  mon-1-services" in printed
    assert "Resources by type:" in printed
    assert "apiToken=[secret]" in printed
    assert "offline-placeholder" not in printed


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_invalid_config_exits_2_naming_every_problem(tmp_path: Path) -> None:
    sections = load_sections()
    assets = sections["inventory"]["assets"]
    assets[5]["servcie"] = "git"
    assets[6]["vmid"] = assets[5]["vmid"]
    sections["alerting"]["routing"]["warning"]["receivers"] = ["slack-opz"]
    result = run_cli("--stack-file", str(write_stack(tmp_path, sections)), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for path in (
        "obsstack:inventory.assets[5].servcie",
        "obsstack:inventory.assets[6].vmid",
        "obsstack:alerting.routing.warning.receivers[0]",
    ):
        assert path in result.stderr
    assert not (tmp_path / "out").exists(), "nothing may be written for an invalid config"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("config: [1, 2", "not valid YAML"),
        ("config:\n  proxmoxve:endpoint: x\n", "unknown config key"),
    ],
    ids=["broken-yaml", "foreign-namespace"],
)
def test_unreadable_stack_exits_2(tmp_path: Path, content: str, expected: str) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(content)
    result = run_cli("--stack-file", str(stack), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_missing_stack_exits_2(tmp_path: Path) -> None:
    """An unknown --stack is bad input, like an invalid one: 1 is left for crashes."""
    result = run_cli("--stack", "nope", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Pulumi.nope.yaml not found" in result.stderr


def test_secure_values_become_placeholders(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE_STACK.read_text())
    raw["config"]["obsstack:slackOpsUrl"] = {"secure": "v1:AAAAencrypted"}
    stack = tmp_path / "Pulumi.sec.yaml"
    stack.write_text(yaml.safe_dump(raw))
    result = run_cli("--stack-file", str(stack), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "v1:AAAAencrypted" not in (tmp_path / "out/plan.json").read_text()


def notes_dir(out: Path) -> None:
    out.mkdir()
    (out / "notes.md").write_text("keep me")


def terraform_plan(out: Path) -> None:
    out.mkdir()
    (out / "plan.json").write_text(
        json.dumps({"format_version": "1.2", "terraform_version": "1.9.8", "resource_changes": []})
    )


def our_plan_json_beside_other_files(out: Path) -> None:
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"stack": "prod", "resources": [], "outputs": {}}))
    (out / "main.tf").write_text("keep me")


def a_file(out: Path) -> None:
    out.write_text("keep me")


def a_symlink(out: Path) -> None:
    target = out.parent / "elsewhere"
    notes_dir(target)
    out.symlink_to(target)


def snapshot(root: Path) -> dict[str, str]:
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    return {str(p): p.read_text() for p in paths if p.is_file()}


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (notes_dir, "is not empty and is not a plan written by this tool"),
        (terraform_plan, "is not empty and is not a plan written by this tool"),
        (our_plan_json_beside_other_files, "is not empty and is not a plan written by this tool"),
        (a_file, "is a file, not a directory"),
        (a_symlink, "is a symbolic link, not a directory"),
    ],
    ids=["notes-dir", "terraform-plan", "plan-json-beside-other-files", "a-file", "a-symlink"],
)
def test_refuses_an_out_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, what: str) -> None:
    out = tmp_path / "out"
    make(out)
    before = snapshot(tmp_path)
    assert main(["--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} {what}" in err and "pass a new or empty directory" in err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before, "nothing may be touched"


def legacy_plan(out: Path, example_config, example_plan) -> None:
    """A plan written before the marker existed: only our files, our plan.json keys."""
    write_plan(out, "prod", example_config, example_plan)
    (out / MARKER).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "earlier",
    ["none", "empty-dir", "earlier-plan", "plan-from-before-the-marker"],
    ids=["new-dir", "empty-dir", "earlier-plan", "plan-from-before-the-marker"],
)
def test_replaces_only_a_new_empty_or_earlier_plan_directory(
    tmp_path: Path, example_config, example_plan, earlier: str
) -> None:
    out = tmp_path / "out"
    if earlier == "empty-dir":
        out.mkdir()
    elif earlier == "earlier-plan":
        write_plan(out, "prod", example_config, example_plan)
        (out / "hosts/stale.txt").write_text("from the earlier run")
    elif earlier == "plan-from-before-the-marker":
        legacy_plan(out, example_config, example_plan)
    write_plan(out, "prod", example_config, example_plan)
    assert (out / MARKER).is_file(), "the next run must recognise this directory as ours"
    assert not (out / "hosts/stale.txt").exists()
    assert json.loads((out / "plan.json").read_text())["stack"] == "prod"


def plan_md_line(out: Path, prefix: str) -> str:
    (line,) = [line for line in (out / "plan.md").read_text().splitlines() if line.startswith(prefix)]
    return line


def test_the_vm_and_the_nightly_job_are_protected_from_deletion(planned: tuple[Path, dict[str, str], int]) -> None:
    line = plan_md_line(planned[0], "**Protected from deletion:**")
    assert "`mon-1-vm`" in line and "`backups-nightly`" in line


@pytest.mark.parametrize(
    "rename",
    [(None, "`mon-1-vm`"), ("mon-1", "none")],
    ids=["renamed-without-previous-name", "renamed-with-previous-name"],
)
def test_plan_md_names_the_protected_resources_a_change_drops(
    tmp_path: Path, run_program, example_sections, example_plan, rename: tuple[str | None, str]
) -> None:
    previous_name, gone = rename
    out = tmp_path / "out"
    write_plan(out, "prod", stack_config.validate(example_sections), example_plan)
    example_sections["monitoring"]["hosts"][0]["name"] = "mon-a"
    if previous_name:
        example_sections["monitoring"]["hosts"][0]["previous_name"] = previous_name
    write_plan(out, "prod", stack_config.validate(example_sections), run_program(example_sections))
    line = plan_md_line(out, "**Protected resources gone since the previous plan:**")
    assert line.split(":** ", 1)[1].split(" (")[0] == gone


@pytest.mark.parametrize("file_name", ["Pulumi.prod.yaml", "Pulumi.bench.yaml"], ids=["example", "other-file-name"])
def test_a_plan_renders_every_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str) -> None:
    """The program and write_plan validate the stack separately: equal copies share one rendering.
    A stack file named after another stack is planned as the stack the program runs (--stack), so
    the files written under hosts/ are the program's, not a second rendering for a "bench" stack."""
    from components import render
    from components.render import prometheus

    stack_file = tmp_path / file_name
    stack_file.write_text(EXAMPLE_STACK.read_text())
    calls = []
    original = prometheus.files
    monkeypatch.setattr(render, "_RENDERED", [])
    monkeypatch.setattr(prometheus, "files", lambda *args: calls.append(args[0].stack) or original(*args))
    assert main(["--stack-file", str(stack_file), "--out", str(tmp_path / "plan"), "--quiet"]) == 0
    assert calls == ["prod"]


def test_the_prune_chart_is_drawn_once_per_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from components import prune
    from tools.plan import __main__ as plan_cli

    drawn = []
    monkeypatch.setattr(plan_cli, "CHART_CACHE", tmp_path / "cache")
    monkeypatch.setattr(prune, "write_chart", lambda config, path: drawn.append(path) or path.write_bytes(b"png"))
    config = stack_config.validate(load_sections())
    charts = [plan_cli.prune_chart(config, report) for report in ["report A", "report A", "report B"]]
    assert len(drawn) == 2
    assert charts == [b"png"] * 3


@pytest.mark.parametrize("enabled_before", [True, False], ids=["gc-enabled", "gc-disabled"])
def test_the_plan_pauses_the_cyclic_gc_and_restores_it(enabled_before: bool) -> None:
    import gc

    from tools.plan import engine

    (gc.enable if enabled_before else gc.disable)()
    try:
        with pytest.raises(RuntimeError), engine.cyclic_gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("a failed run restores it too")
        assert gc.isenabled() == enabled_before
    finally:
        gc.enable()

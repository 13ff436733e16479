"""The backup regime in the recorded plan: one job covering exactly the protected guests, 30 daily
restore points, hooks on every node, and backups that no update or destroy can delete."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from components.render import vzdump_hook
from tools.plan import engine

JOB = "proxmoxve:backup/job:Job"
COMMAND = "command:remote:Command"


def guests_in_job(job: engine.Recorded, all_guests: set[int]) -> set[int]:
    if job.inputs.get("all"):
        return all_guests - {int(v) for v in job.inputs.get("excludes", [])}
    return {int(v) for v in job.inputs.get("vmids", [])}


def test_plan_has_the_nightly_job_of_exactly_the_protected_guests(example_plan, example_inventory) -> None:
    job = example_plan.one(JOB)
    assert job.inputs["vmids"] == [str(v) for v in sorted(g.vmid for g in example_inventory.protected)]
    assert job.inputs["vmids"] == ["101", "102", "110", "120", "121", "130", "131", "140"]
    assert "150" not in job.inputs["vmids"]  # scratch-dev opted out with backup: false
    assert job.inputs["pruneBackups"]["keep-daily"] == "30"
    assert job.inputs["remove"] is False  # PBS's prune job prunes; the PVE token may not
    assert job.inputs["schedule"] == "02:00"
    assert job.inputs["mode"] == "snapshot"
    assert job.inputs["storage"] == "pbs-main"


def all_guest_vmids(sections) -> set[int]:
    return {a["vmid"] for a in sections["inventory"]["assets"] if a["kind"] in ("vm", "lxc")}


@pytest.mark.parametrize(
    ("selection", "exclude"),
    [("protected", []), ("all_except", ["scratch-dev"]), ("all_except", ["scratch-dev", "jellyfin"])],
    ids=["protected", "all-except-one", "all-except-two"],
)
def test_every_protected_asset_is_in_exactly_one_job(run_program, example_sections, selection, exclude) -> None:
    example_sections["backups"].update({"selection": selection, "exclude": exclude})
    if selection == "all_except":
        for asset in example_sections["inventory"]["assets"]:
            asset.pop("backup", None)
    plan = run_program(example_sections)
    jobs = plan.find(JOB)
    guests = all_guest_vmids(example_sections)
    protected = {g["vmid"] for g in plan.outputs["inventory"]["protectedGuests"]}
    excluded = {a["vmid"] for a in example_sections["inventory"]["assets"] if a["name"] in exclude}
    assert protected == guests - excluded - ({150} if selection == "protected" else set())
    for vmid in protected:
        assert sum(vmid in guests_in_job(job, guests) for job in jobs) == 1, vmid
    for vmid in guests - protected:
        assert not any(vmid in guests_in_job(job, guests) for job in jobs), vmid
    if selection == "all_except":
        assert jobs[0].inputs["all"] is True
        assert sorted(jobs[0].inputs["excludes"]) == sorted(str(v) for v in excluded)


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        ({"keep_daily": 30}, {"keep-daily": "30"}),
        ({"keep_daily": 45, "keep_weekly": 8}, {"keep-daily": "45", "keep-weekly": "8"}),
        (
            {"keep_last": 3, "keep_daily": 30, "keep_monthly": 12},
            {"keep-last": "3", "keep-daily": "30", "keep-monthly": "12"},
        ),
    ],
    ids=["daily", "daily-weekly", "last-daily-monthly"],
)
def test_retention_reaches_the_job(run_program, example_sections, retention, expected) -> None:
    example_sections["backups"]["retention"] = retention
    assert run_program(example_sections).one(JOB).inputs["pruneBackups"] == expected


def test_hook_installed_on_every_pve_node_before_the_job(example_plan, example_config) -> None:
    hooks = {r.name: r for r in example_plan.find(COMMAND) if r.parent == "backups" and "-files-" not in r.name}
    assert set(hooks) == {f"backups-hook-{n.name}" for n in example_config.pve_nodes()}
    for node in example_config.pve_nodes():
        hook = hooks[f"backups-hook-{node.name}"]
        where = vzdump_hook.placement(example_config)
        wire, uninstall = vzdump_hook.wire_script(node.name, where), vzdump_hook.uninstall_script(node.name, where)
        assert hook.inputs["create"] == wire
        assert hook.inputs["delete"] == uninstall
        assert hook.inputs["update"] == wire and "triggers" not in hook.inputs  # in place, never replaced
        # The hook file itself takes the install path (checked, swapped) before it is wired in.
        files = example_plan.one(COMMAND, f"backups-hook-{node.name}-files-apply-files")
        assert f'bash -n "$candidate{vzdump_hook.HOOK_PATH}"' in files.inputs["create"]
        assert files.name in hook.options["dependsOn"]
    assert set(hooks) <= set(example_plan.one(JOB).options["dependsOn"])


@pytest.mark.parametrize(
    ("selection", "exclude"), [("protected", []), ("all_except", ["scratch-dev"])], ids=["protected", "all-except"]
)
def test_the_nightly_job_is_protected(run_program, example_sections, selection: str, exclude: list[str]) -> None:
    """Neither `pulumi destroy --exclude-protected` nor a replacing change removes the job that
    keeps the backups coming (it holds no backups: not retained, an intended delete deletes it)."""
    example_sections["backups"].update({"selection": selection, "exclude": exclude})
    job = run_program(example_sections).one(JOB)
    assert job.options["protect"] is True
    assert job.options["deleteBeforeReplace"] is False and "triggers" not in job.inputs


def test_legacy_prod_keeps_its_job_id(example_plan) -> None:
    """The example prod stack has `names: {legacy: true}`: its job keeps the id it was created with."""
    assert example_plan.one(JOB).inputs["resourceId"] == "obsstack-nightly"


# --- backups are sacred ------------------------------------------------------------------------


def backup_holders(plan: engine.PlanResult) -> list[engine.Recorded]:
    """Every recorded resource that holds backups or is the way to them."""
    holders = []
    for r in plan.resources:
        if (
            r.type == "proxmoxve:storage/pbs:Pbs"
            or (r.type.startswith("proxmoxve:storage/") and "backup" in r.inputs.get("contents", []))
            or (r.type == COMMAND and "datastore create" in str(r.inputs.get("create", "")))
        ):
            holders.append(r)
    return holders


@pytest.fixture
def plan_with_backup_share(run_program, example_sections):
    example_sections["proxmox"]["durable_storages"].append(
        {"name": "nas-dumps", "type": "cifs", "server": "10.0.10.40", "export": "dumps", "content": ["backup"],
         "username": "pve", "password_secret": "nasDumpsPassword"}
    )  # fmt: skip
    return run_program(example_sections)


def test_backup_holders_are_found(plan_with_backup_share) -> None:
    names = {r.name for r in backup_holders(plan_with_backup_share)}
    assert names == {"storage-pbs-main", "storage-nas-dumps", "pbs-datastore-main", "pbs-datastore-offsite-copy"}


def test_every_backup_holder_is_protected_and_retained(plan_with_backup_share) -> None:
    for r in backup_holders(plan_with_backup_share):
        assert r.options["protect"], f"{r.name} is not protect=True"
        assert r.options["retainOnDelete"], f"{r.name} is not retain_on_delete=True"
        assert "triggers" not in r.inputs, f"{r.name}: a trigger would replace a protected resource"


def run_delete(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a delete command with every tool that could remove data replaced by a recorder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    for tool in ("proxmox-backup-manager", "rm", "rmdir", "zfs", "pvesm", "find", "mv", "truncate", "shred"):
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >>"{log}"\n')
        fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True, check=False)


def test_delete_commands_of_backup_holders_delete_nothing(plan_with_backup_share, tmp_path: Path) -> None:
    commands = [r for r in backup_holders(plan_with_backup_share) if r.type == COMMAND]
    assert commands
    for r in commands:
        result = run_delete(r.inputs["delete"], tmp_path)
        assert result.returncode == 0, r.name
        assert not (tmp_path / "calls.log").exists(), f"{r.name} delete ran: {(tmp_path / 'calls.log').read_text()}"
        assert "left in place" in result.stdout and "backups" in result.stdout, r.name


def test_no_command_anywhere_deletes_a_datastore(example_plan) -> None:
    for r in example_plan.find(COMMAND):
        for phase in ("create", "update", "delete"):
            script = str(r.inputs.get(phase, ""))
            executable = [line for line in script.splitlines() if not line.lstrip().startswith(("echo", "#"))]
            assert not [line for line in executable if "datastore remove" in line or "datastore delete" in line]


def test_plan_json_shows_the_job(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = subprocess.run(
        [str(engine.ROOT / ".venv/bin/python"), "-m", "tools.plan", "--stack", "prod", "--out", str(out), "--quiet"],
        cwd=engine.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads((out / "plan.json").read_text())
    jobs = [r for r in plan["resources"] if r["type"] == JOB]
    assert len(jobs) == 1 and jobs[0]["inputs"]["pruneBackups"]["keep-daily"] == "30"
    markdown = (out / "plan.md").read_text()
    assert "### Prune simulation" in markdown
    for host in ("pve1", "pve2", "pve3"):
        assert (out / "hosts" / host / vzdump_hook.HOOK_PATH.lstrip("/")).exists()


def test_pbs_storage_waits_for_the_datastore_and_token(example_plan) -> None:
    depends = set(example_plan.one("proxmoxve:storage/pbs:Pbs").options["dependsOn"])
    assert {"pbs-datastore-main", "pbs-pve-token"} <= depends

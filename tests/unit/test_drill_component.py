"""RestoreDrills under the mock engine: canaries over SSH, the drill's own least-privilege PVE
identity, the token only as a secret, and the schedule installed on one monitoring host."""

from __future__ import annotations

import json

import pytest

from components.drill.schedule import SCRATCH_PRIVILEGES
from components.render import drill as layout
from tools.plan import engine

COMMAND = "command:remote:Command"


def test_canary_installed_on_every_drill_target(example_plan: engine.PlanResult, example_inventory) -> None:
    for target in example_inventory.drill_targets:
        cmd = example_plan.one(COMMAND, f"drills-canary-{target.name}")
        assert cmd.parent == "drills"
        assert "systemctl start obs-canary.service" in cmd.inputs["create"]  # the first canary at once
        assert cmd.inputs["connection"] == engine.SECRET
        assert cmd.inputs["update"] == cmd.inputs["create"] and "triggers" not in cmd.inputs  # in place
        assert "# /usr/local/sbin/obs-canary " in cmd.inputs["create"]  # the diff names the file


def test_identity_is_least_privilege(example_plan: engine.PlanResult, example_config) -> None:
    drill_acls = [r for r in example_plan.find("proxmoxve:index/acl:Acl") if r.parent == "drills"]
    acls = {r.inputs["path"]: r.inputs["roleId"] for r in drill_acls}
    assert acls == {
        "/vms/110": "ObsDrillSource",
        "/vms/120": "ObsDrillSource",
        "/vms/121": "ObsDrillSource",
        "/storage/pbs-main": "ObsDrillStorage",
        "/storage/local-lvm": "ObsDrillStorage",
        "/sdn/zones/localnetwork": "ObsDrillSdn",
        "/pool/obs-drill": "ObsDrillScratch",
    }, "no ACL on / and none on other guests"
    roles = {
        r.inputs["roleId"]: set(r.inputs["privileges"])
        for r in example_plan.find("proxmoxve:index/roleLegacy:RoleLegacy")
        if r.parent == "drills"
    }
    assert roles["ObsDrillSource"] == {"VM.Backup"}
    assert roles["ObsDrillScratch"] == set(SCRATCH_PRIVILEGES[9])
    assert not any(p.startswith(("Sys.", "Permissions.", "User.")) for privs in roles.values() for p in privs)
    token = example_plan.one("proxmoxve:user/token:Token", "drills-token")
    assert token.inputs["privilegesSeparation"] is False and token.inputs["userId"] == "obs-drill@pve"
    assert example_plan.one("proxmoxve:index/poolLegacy:PoolLegacy").inputs["poolId"] == "obs-drill"


@pytest.mark.parametrize(
    ("version", "agent_privilege"), [(8, "VM.Monitor"), (9, "VM.GuestAgent.Unrestricted")], ids=["pve8", "pve9"]
)
def test_agent_privilege_follows_pve_version(run_program, example_sections, version: int, agent_privilege: str) -> None:
    example_sections["backups"]["drill"]["pve_version"] = version
    plan = run_program(example_sections)
    scratch = plan.one("proxmoxve:index/roleLegacy:RoleLegacy", "drills-role-scratch")
    assert agent_privilege in scratch.inputs["privileges"]


def test_token_is_a_secret_output_and_reaches_the_host_only_by_stdin(example_plan: engine.PlanResult) -> None:
    assert example_plan.outputs["restoreDrillPveToken"] == engine.SECRET
    token_file = example_plan.one(COMMAND, "drills-token-file")
    assert token_file.inputs["stdin"] == engine.SECRET
    assert token_file.inputs["logging"] == "none"
    assert {"stdin", "stdout", "stderr"} <= set(token_file.options["additionalSecretOutputs"])
    assert "umask 077" in token_file.inputs["create"]
    dump = json.dumps([r.as_plan() for r in example_plan.resources]) + json.dumps(example_plan.outputs)
    assert "mock-token" not in dump


def test_schedule_validates_then_enables_the_timer(example_plan: engine.PlanResult) -> None:
    schedule = example_plan.one(COMMAND, "drills-schedule")
    script = schedule.inputs["create"]
    assert script.index("--dry-run") < script.index("enable --now obs-restore-drill.timer")
    assert "drills-token-file" in schedule.options["dependsOn"]


def test_no_drill_targets_no_identity(run_program, example_sections) -> None:
    for asset in example_sections["inventory"]["assets"]:
        asset.pop("drill", None)
    plan = run_program(example_sections)
    assert [r.name for r in plan.find(type_="proxmoxve:user/token:Token")] == ["pve-exporter-token"]
    assert [r for r in plan.resources if r.parent == "drills"] == []


def test_canary_files_take_the_install_path(example_plan: engine.PlanResult, example_inventory) -> None:
    for target in example_inventory.drill_targets:
        apply = example_plan.one(COMMAND, f"drills-canary-{target.name}-files-apply-files")
        assert f'bash -n "$candidate{layout.CANARY_SCRIPT}"' in apply.inputs["create"]  # checked before the swap
        assert "systemctl enable --now --quiet obs-canary.timer" in apply.inputs["create"]
        first_run = example_plan.one(COMMAND, f"drills-canary-{target.name}")
        assert apply.name in first_run.options["dependsOn"]

"""Two stacks on one cluster (Pulumi.prod.yaml and Pulumi.staging.yaml): nothing either creates on
PVE, PBS or a node has the other's name, and one stack's destroy leaves the other's jobs alone."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components import names
from components.render import shipment, vzdump_hook
from tests.conftest import ROOT, distinct_secrets, load_sections
from tools.plan import engine

STACKS = ("prod", "staging")
COMMAND = "command:remote:Command"


class Planned:
    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.sections = load_sections(ROOT / f"Pulumi.{stack}.yaml")
        self.config = stack_config.validate(self.sections, source=f"Pulumi.{stack}.yaml")
        self.inventory = stack_inventory.build(self.config)
        self.plan = engine.run(stack, self.sections, distinct_secrets(self.config))

    def resources(self) -> list[engine.Recorded]:
        return list(self.plan.resources)


@pytest.fixture(scope="module")
def planned() -> dict[str, Planned]:
    return {stack: Planned(stack) for stack in STACKS}


# What names an object outside Pulumi's state, per resource type: the object's identity there.
IDENTITY = {
    "proxmoxve:backup/job:Job": ("resourceId",),
    "proxmoxve:storage/pbs:Pbs": ("resourceId",),
    "proxmoxve:storage/nfs:Nfs": ("resourceId",),
    "proxmoxve:index/userLegacy:UserLegacy": ("userId",),
    "proxmoxve:index/roleLegacy:RoleLegacy": ("roleId",),
    "proxmoxve:index/poolLegacy:PoolLegacy": ("poolId",),
    "proxmoxve:user/token:Token": ("userId", "tokenName"),
    "proxmoxve:index/acl:Acl": ("path", "userId", "roleId"),
    "proxmoxve:index/vmLegacy:VmLegacy": ("vmId",),
    "proxmoxve:download/file:File": ("nodeName", "datastoreId", "fileName"),
    "proxmoxve:index/fileLegacy:FileLegacy": ("nodeName", "datastoreId", "sourceRaw"),
}


def identities(p: Planned) -> set[tuple[Any, ...]]:
    found = set()
    for r in p.resources():
        if r.type in IDENTITY:
            found.add((r.type, *(_identity_value(r.inputs.get(k)) for k in IDENTITY[r.type])))
    return found


def _identity_value(value: Any) -> Any:
    if isinstance(value, dict):  # a snippet's source: its file name is what the node stores
        return value.get("fileName")
    return int(value) if isinstance(value, float) else value


def test_every_example_stack_creates_named_objects(planned) -> None:
    """The collision test below compares something: each stack names a job, a user, a pool and VMs."""
    for p in planned.values():
        kinds = {identity[0] for identity in identities(p)}
        assert {"proxmoxve:backup/job:Job", "proxmoxve:index/userLegacy:UserLegacy"} <= kinds, p.stack
        assert {"proxmoxve:index/poolLegacy:PoolLegacy", "proxmoxve:index/vmLegacy:VmLegacy"} <= kinds, p.stack


def test_no_pve_object_of_one_stack_has_the_other_stacks_name(planned) -> None:
    assert identities(planned["prod"]) & identities(planned["staging"]) == set()


def vmid_ranges(p: Planned) -> list[tuple[int, int]]:
    guests = [(a.vmid, a.vmid) for a in p.config.assets if a.vmid is not None]
    monitoring = [(h.vmid, h.vmid) for h in p.config.monitoring.hosts]
    return [*guests, *monitoring, p.config.backups.drill.scratch_vmid_range]


def test_vmids_and_scratch_ranges_do_not_overlap(planned) -> None:
    for low, high in vmid_ranges(planned["prod"]):
        for other_low, other_high in vmid_ranges(planned["staging"]):
            assert high < other_low or other_high < low, ((low, high), (other_low, other_high))


PBS_JOB = re.compile(r"proxmox-backup-manager (?:prune-job|verify-job|sync-job) (?:create|update|remove) '?([\w.-]+)")


def pbs_job_ids(p: Planned) -> set[str]:
    ids = set()
    for r in p.resources():
        if r.type == COMMAND:
            for key in ("create", "delete"):
                ids |= set(PBS_JOB.findall(str(r.inputs.get(key, ""))))
    return ids


def test_pbs_job_ids_are_the_stacks_own(planned) -> None:
    prod, staging = (pbs_job_ids(planned[s]) for s in STACKS)
    assert prod and staging
    assert prod & staging == set()
    # prod keeps the ids it has (names: {legacy: true}); staging's carry its scope.
    assert "obsstack-prune-main" in prod and all(i.startswith("obs-staging-") for i in staging)


def host_files(p: Planned) -> dict[tuple[str, str], str]:
    """(host address, path) -> content of every file the stack ships."""
    address = {a.name: str(a.address) for a in p.config.assets if a.address} | {
        m.name: m.ip for m in p.inventory.monitoring
    }
    return {(address[f.host], f.path): f.content for f in shipment(p.config, p.inventory).files}


def test_a_shared_node_gets_only_the_shared_dispatcher_from_both(planned) -> None:
    prod, staging = (host_files(planned[s]) for s in STACKS)
    shared = set(prod) & set(staging)
    assert {path for _, path in shared} == {vzdump_hook.HOOK_PATH}  # pve1: the one `script:` target
    for key in shared:
        assert prod[key] == staging[key], key


def test_both_stacks_wire_the_same_single_hook_line(planned) -> None:
    lines = set()
    for p in planned.values():
        for r in p.resources():
            if r.type == COMMAND and r.name.startswith("backups-hook-") and "-files" not in r.name:
                lines |= set(re.findall(r"printf 'script: %s\\n' \"([^\"]+)\"", r.inputs["create"]))
    assert lines == {vzdump_hook.HOOK_PATH}


def test_staging_deletes_mention_none_of_prods_names(planned) -> None:
    """Every delete a `pulumi destroy` of staging runs over SSH names staging's objects only."""
    prod = planned["prod"]
    prod_names = {
        *pbs_job_ids(prod),
        prod.config.stack_names.backup_job,
        vzdump_hook.placement(prod.config).hook_file,
        vzdump_hook.placement(prod.config).prom_file,
    }
    deletes = [str(r.inputs.get("delete", "")) for r in planned["staging"].resources() if r.type == COMMAND]
    assert deletes
    for script in deletes:
        for name in prod_names:
            assert not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", script), (name, script[:200])


def _run(script: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "OBSSTACK_ROOT": str(root)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)


def _hook_command(p: Planned, node: str) -> engine.Recorded:
    return p.plan.one(COMMAND, f"backups-hook-{node}")


def test_destroying_staging_leaves_prods_hook_wired_on_the_shared_node(planned, tmp_path: Path) -> None:
    """The planned create and delete scripts themselves, run against one node's file tree."""
    conf = tmp_path / "etc/vzdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("bwlimit: 1\n")
    for p in planned.values():
        where = vzdump_hook.placement(p.config)
        for path, content in ((vzdump_hook.HOOK_PATH, vzdump_hook.render_dispatcher()), (where.hook_file, "")):
            file = tmp_path / path.lstrip("/")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(content or vzdump_hook.render_hook("pve1", where))
            file.chmod(0o755)
        assert _run(_hook_command(p, "pve1").inputs["create"], tmp_path).returncode == 0
    result = _run(_hook_command(planned["staging"], "pve1").inputs["delete"], tmp_path)
    assert result.returncode == 0, result.stderr
    prod_hook = tmp_path / vzdump_hook.placement(planned["prod"].config).hook_file.lstrip("/")
    assert prod_hook.exists() and (tmp_path / vzdump_hook.HOOK_PATH.lstrip("/")).exists()
    assert conf.read_text() == f"bwlimit: 1\nscript: {vzdump_hook.HOOK_PATH}\n"
    assert not (tmp_path / vzdump_hook.placement(planned["staging"].config).hook_file.lstrip("/")).exists()


@pytest.mark.parametrize(
    ("scope", "datastore", "fragment"),
    [
        ("a-scope-long-enough-to-break-pbs", "main", "PBS job id"),
        ("staging", "a-datastore-name-that-is-too-long", "PBS job id"),
    ],
    ids=["long-scope", "long-datastore"],
)
def test_names_that_a_target_refuses_are_reported(scope: str, datastore: str, fragment: str) -> None:
    problems = names.StackNames(scope=scope, legacy=False).problems([datastore])
    assert problems and all(fragment in p for p in problems)


def test_invalid_scope_fails_validation_naming_the_field(example_sections) -> None:
    example_sections["names"] = {"scope": "a-scope-long-enough-to-break-pbs"}
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(example_sections)
    assert "obsstack:names.scope" in str(err.value) and "shorter" in str(err.value)


def test_a_stack_name_that_is_no_scope_asks_for_one(example_sections) -> None:
    del example_sections["names"]
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(example_sections, source="Pulumi.Team_A.yaml")
    assert "names.scope" in str(err.value) and "'Team_A'" in str(err.value)


def test_scope_defaults_to_the_stack_name(example_sections) -> None:
    del example_sections["names"]
    config = stack_config.validate(example_sections, source="Pulumi.lab.yaml")
    assert config.stack_names.backup_job == "obs-lab-nightly"
    assert config.stack_names.drill_user == "obs-drill-lab@pve"


def stack_files() -> list[Path]:
    return sorted(ROOT.glob("Pulumi.*.yaml"))


def test_both_example_stacks_are_found() -> None:
    assert {p.name for p in stack_files()} >= {"Pulumi.prod.yaml", "Pulumi.staging.yaml"}


@pytest.mark.parametrize("stack_file", stack_files(), ids=lambda p: p.name)
def test_every_stack_file_plans(stack_file: Path, tmp_path: Path) -> None:
    """CI plans each stack file there is: a new one is covered without editing a test."""
    from tools.plan.__main__ import main as plan

    stack = stack_config.stack_of(stack_file.name)
    assert stack is not None
    assert plan(["--stack", stack, "--out", str(tmp_path / "plan"), "--quiet"]) == 0


def test_legacy_names_and_a_scope_are_refused_together(example_sections) -> None:
    example_sections["names"] = {"legacy": True, "scope": "prod"}
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(example_sections)
    assert "obsstack:names" in str(err.value) and "remove one of them" in str(err.value)


def test_prod_keeps_every_name_it_had_before_scoping(planned) -> None:
    """`names: {legacy: true}`: no PVE object of prod changes its id (a change would replace it)."""
    prod = identities(planned["prod"])
    legacy = {
        ("proxmoxve:backup/job:Job", "obsstack-nightly"),
        ("proxmoxve:index/userLegacy:UserLegacy", "obs-drill@pve"),
        ("proxmoxve:index/poolLegacy:PoolLegacy", "obs-drill"),
        *(("proxmoxve:index/roleLegacy:RoleLegacy", f"ObsDrill{r}") for r in ("Source", "Storage", "Sdn", "Scratch")),
        ("proxmoxve:user/token:Token", "obs-drill@pve", "drill"),
    }
    assert legacy <= prod
    # The vzdump.conf line keeps its path: the dispatcher took the hook's old place.
    wire = planned["prod"].plan.one(COMMAND, "backups-hook-pve1").inputs["create"]
    assert f"printf 'script: %s\\n' \"{vzdump_hook.HOOK_PATH}\"" in wire
    assert vzdump_hook.HOOK_PATH == "/usr/local/lib/obsstack/vzdump-hook.sh"

"""The plan held against the real providers' schemas and semantics (what the mock engine accepts
blindly). Each fact is cited where the program relies on it; the schemas are the pinned ones."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components import config as stack_config
from tests.conftest import RunProgram, load_sections
from tests.support import provider_schema
from tools.plan import engine

COMMAND = "command:remote:Command"
PBS = "proxmoxve:storage/pbs:Pbs"
FIXED_NAME_FILES = ("proxmoxve:index/fileLegacy:FileLegacy", "proxmoxve:download/file:File")


def custom_types(plan: engine.PlanResult) -> list[str]:
    return sorted({r.type for r in plan.resources if r.custom})


def test_every_input_is_one_the_provider_knows(example_plan: engine.PlanResult) -> None:
    unknown = [
        f"{r.type} {r.name}: {key}"
        for r in example_plan.resources
        if r.custom
        for key in r.inputs
        if key not in provider_schema.resource(r.type).get("inputProperties", {})
    ]
    assert unknown == []


def test_no_command_that_deletes_sets_an_input_that_replaces(example_plan: engine.PlanResult) -> None:
    """A replacement is create-before-delete: the old delete would undo the new create."""
    replacing = provider_schema.replace_on_changes(COMMAND)
    assert "triggers" in replacing  # pulumi-command's schema: the fact this test rests on
    offenders = [
        f"{r.name}: {sorted(keys)}"
        for r in example_plan.find(COMMAND)
        if r.inputs.get("delete")
        and (keys := {k for k in replacing | set(r.options["replaceOnChanges"]) if r.inputs.get(k)})
    ]
    assert offenders == []


def test_a_command_that_deletes_is_deleted_before_it_is_replaced(example_plan: engine.PlanResult) -> None:
    """Stacks made while these commands had triggers see their removal as a replacing change once:
    deleting first and creating last leaves the job written (protected datastores never replace)."""
    offenders = [
        r.name
        for r in example_plan.find(COMMAND)
        if r.inputs.get("delete") and not r.options["protect"] and not r.options["deleteBeforeReplace"]
    ]
    assert offenders == []


def test_no_command_pushes_environment_at_sshd(example_plan: engine.PlanResult) -> None:
    commands = example_plan.find(COMMAND)
    assert commands
    assert [r.name for r in commands if r.inputs.get("addPreviousOutputInEnv") is not False] == []
    assert [r.name for r in commands if r.inputs.get("environment")] == []


@pytest.mark.parametrize("key_given", [True, False], ids=["key-from-config", "key-generated"])
def test_pbs_storage_sets_only_one_of_the_conflicting_key_inputs(run_program: RunProgram, key_given: bool) -> None:
    sections = load_sections()
    if not key_given:
        sections["pbs"]["encryption_key_secret"] = None
    storage = run_program(sections).one(PBS)
    present = {k for k in ("encryptionKey", "generateEncryptionKey") if storage.inputs.get(k) is not None}
    assert present == ({"encryptionKey"} if key_given else {"generateEncryptionKey"})


def test_a_rotated_pbs_token_updates_in_place(run_program: RunProgram) -> None:
    sections = load_sections()
    config = stack_config.validate(sections)
    secrets = {key: f"value-{key}" for key in config.secret_key_names()}
    rotated = {**secrets, config.pbs.api_token_secret: "rotated-token-value"}
    before, after = run_program(sections, secrets), run_program(sections, rotated)
    storage = after.one(PBS)
    assert "password" in storage.options["ignoreChanges"]  # RequiresReplace in the provider
    assert storage.options["protect"]
    rotation = [r for r in after.find(COMMAND) if "/etc/pve/priv/storage/" in str(r.inputs.get("create"))]
    assert len(rotation) == 1
    (command,) = rotation
    assert command.inputs["stdin"] == engine.SECRET
    assert not command.inputs.get("delete") and not command.inputs.get("triggers")
    assert command.inputs["create"] == before.one(COMMAND, command.name).inputs["create"]


def test_fixed_name_files_are_deleted_before_they_are_replaced(example_plan: engine.PlanResult) -> None:
    files = [r for r in example_plan.resources if r.type in FIXED_NAME_FILES]
    assert {r.type for r in files} == set(FIXED_NAME_FILES)
    assert [r.name for r in files if not r.options["deleteBeforeReplace"]] == []


def test_the_vm_waits_for_the_storage_of_its_disks(example_plan: engine.PlanResult, example_config) -> None:
    data_storage = example_config.monitoring.vm.data_storage
    assert data_storage in {s.name for s in example_config.proxmox.durable_storages}
    storage = next(r.name for r in example_plan.resources if r.inputs.get("resourceId") == data_storage)
    vm = example_plan.one("obsstack:proxmox:ProxmoxVm")
    assert storage in vm.options["dependsOn"]


def test_the_cloud_image_is_verified(example_plan: engine.PlanResult) -> None:
    image = example_plan.one("proxmoxve:download/file:File")
    assert len(image.inputs["checksum"]) == 128 and image.inputs["checksumAlgorithm"] == "sha512"


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        pytest.param({"checksum": "abc"}, "128 hex digits", id="short-checksum"),
        pytest.param({"checksum_algorithm": "sha256"}, "64 hex digits", id="wrong-algorithm"),
        pytest.param(
            {"url": "https://cloud.debian.org/images/cloud/bookworm/latest/x.qcow2"}, "not latest", id="latest"
        ),
    ],
)
def test_an_unverifiable_image_is_refused(image: dict[str, Any], fragment: str) -> None:
    sections = copy.deepcopy(load_sections())
    sections["proxmox"]["cloud_image"] = image
    with pytest.raises(stack_config.ConfigError, match=fragment):
        stack_config.validate(sections)

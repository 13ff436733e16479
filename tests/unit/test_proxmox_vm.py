"""ProxmoxVm under the mock engine: what the VM gets, and that cosmetic changes never replace it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.proxmox import vm as vm_module
from tests.conftest import distinct_secrets
from tools.plan import engine

VM = "proxmoxve:index/vmLegacy:VmLegacy"
IMAGE = "proxmoxve:download/file:File"
SNIPPET = "proxmoxve:index/fileLegacy:FileLegacy"

# Inputs for which the provider (bpg/proxmox `proxmox_virtual_environment_vm`) plans a new VM
# instead of an update: the VMID, the clone source and the boot disk's source image. With
# migrate=true a node change migrates. Everything else (tags, description, name, cpu, memory,
# disk size, network, ip configs) is updated in place.
REPLACING_INPUTS = ("vmId", "clone", "disks[0].fileId")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def changed_inputs(before: engine.Recorded, after: engine.Recorded) -> set[str]:
    a, b = flatten(before.inputs), flatten(after.inputs)
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def ignored(path: str, ignore: list[str]) -> bool:
    return any(path == i or path.startswith(f"{i}.") or path.startswith(f"{i}[") for i in ignore)


def test_vm_shape(example_plan, example_config) -> None:
    vm = example_plan.one(VM)
    inputs = vm.inputs
    host = example_config.monitoring.hosts[0]
    assert inputs["vmId"] == host.vmid and inputs["nodeName"] == host.node
    assert inputs["agent"]["enabled"] is True
    assert inputs["cpu"]["cores"] == 4 and inputs["memory"]["dedicated"] == 8192
    assert inputs["networkDevices"] == [{"bridge": "vmbr0", "model": "virtio", "vlanId": 20}]
    assert inputs["initialization"]["ipConfigs"] == [{"ipv4": {"address": "10.0.20.10/24", "gateway": "10.0.20.1"}}]
    assert [d["datastoreId"] for d in inputs["disks"]] == ["local-lvm", "nas-monitoring"]
    assert [d["size"] for d in inputs["disks"]] == [32, 350]
    assert inputs["disks"][0]["fileId"] == "mon-1-image-id"
    assert inputs["initialization"]["userDataFileId"] == "mon-1-user-data-id"
    assert set(inputs["tags"]) == {"homelab", "service-monitoring", "tier-critical"}
    assert inputs["migrate"] is True


def test_cloud_image_is_downloaded_to_the_vms_node(example_plan, example_config) -> None:
    image = example_plan.one(IMAGE)
    assert image.inputs["nodeName"] == "pve2"
    assert image.inputs["url"] == example_config.proxmox.cloud_image.url
    assert image.inputs["contentType"] == "iso"
    assert image.inputs["overwrite"] is False


def test_cloud_init_installs_guest_agent_and_key(example_plan) -> None:
    snippet = example_plan.one(SNIPPET)
    data = snippet.inputs["sourceRaw"]["data"]
    assert data == engine.SECRET  # derived from the secret SSH key: stays secret
    assert snippet.inputs["contentType"] == "snippets"


def test_user_data_document() -> None:
    from components.render import cloud_init

    text = cloud_init.user_data(
        "mon-1", "lab.example.net", "debian", "ssh-ed25519 AAAAkey\n", apt_proxy="http://10.0.0.5:3142"
    )
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["packages"] == ["qemu-guest-agent"]
    assert ["systemctl", "enable", "--now", "qemu-guest-agent"] in doc["runcmd"]
    assert doc["users"][0]["ssh_authorized_keys"] == ["ssh-ed25519 AAAAkey"]
    assert doc["users"][0]["lock_passwd"] is True and doc["ssh_pwauth"] is False
    assert doc["apt"] == {"proxy": "http://10.0.0.5:3142"}


def test_the_data_disk_is_formatted_once_mounted_and_holds_the_data_directories(tmp_path: Path) -> None:
    """cloud-init formats the data disk (found by its serial) only if it has no filesystem, mounts
    it, and bind-mounts Prometheus' and Loki's data into it; the bind commands are idempotent."""
    from components.render import cloud_init

    doc = yaml.safe_load(cloud_init.user_data("mon-1", "lab", "debian", "ssh-ed25519 K", data_mount="/srv/obsstack"))
    (fs,) = doc["fs_setup"]
    assert fs["device"] == f"/dev/disk/by-id/virtio-{cloud_init.DATA_DISK_SERIAL}"
    assert fs["overwrite"] is False and fs["partition"] == "none"
    assert doc["mounts"] == [
        ["LABEL=obsdata", "/srv/obsstack", "ext4", "defaults,nofail,x-systemd.device-timeout=30s", "0", "2"]
    ]
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=root / ext4 defaults 0 1\n")
    for _ in range(2):  # cloud-init may run runcmd again: the fstab must not grow
        for argv in doc["runcmd"]:
            if argv[0] == "sh" and "/etc/fstab" in argv[2]:
                subprocess.run(["sh", "-c", argv[2].replace("/etc/fstab", str(fstab))], check=True)
    binds = [line.split() for line in fstab.read_text().splitlines()[1:]]
    assert [(b[0], b[1]) for b in binds] == [
        ("/srv/obsstack/prometheus", "/var/lib/prometheus"),
        ("/srv/obsstack/loki", "/var/lib/loki"),
    ]
    assert all("bind" in b[3] for b in binds)


def test_the_vm_data_disk_carries_the_serial_cloud_init_looks_for(example_plan) -> None:
    from components.render import cloud_init

    data = example_plan.one(VM).inputs["disks"][1]
    assert data["serial"] == cloud_init.DATA_DISK_SERIAL


@pytest.mark.parametrize(
    ("on_data_disk", "accepted"), [(True, True), (False, False)], ids=["on-the-data-disk", "on-the-root-disk"]
)
def test_prometheus_and_loki_refuse_to_write_to_the_root_disk(
    tmp_path: Path, example_config, on_data_disk: bool, accepted: bool
) -> None:
    """The check their apply steps run before any swap (components/monitoring/services.py)."""
    from components.monitoring import services

    shm = Path("/dev/shm")  # a filesystem of its own (tmpfs), as the data disk is
    assert shm.is_dir() and os.stat(shm).st_dev != os.stat("/").st_dev
    mount = Path(tempfile.mkdtemp(dir=shm))
    data = Path(tempfile.mkdtemp(dir=shm if on_data_disk else tmp_path))
    try:
        (check,) = services._on_data_disk(example_config, "DIR")
        done = subprocess.run(
            [
                "bash",
                "-c",
                check.replace("DIR", str(data)).replace(example_config.monitoring.vm.data_mount, str(mount)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(mount)
        shutil.rmtree(data, ignore_errors=True)
    assert (done.returncode == 0) == accepted
    if not accepted:
        assert "is not on the data disk" in done.stdout


def test_replacement_policy_options(example_plan) -> None:
    options = example_plan.one(VM).options
    assert options["ignoreChanges"] == sorted(vm_module.IGNORED_AFTER_CREATE)
    assert options["replaceOnChanges"] == []
    assert options["deleteBeforeReplace"] is False


def test_the_vm_is_protected_and_retained_its_replaceable_children_are_not(example_plan) -> None:
    """Destroy and replacements never delete the VM and its disks; the snippet and the image (which
    hold no data and are delete-before-replace) must stay replaceable: protect is inherited, so it
    is on the VM itself, not on the component."""
    vm = example_plan.one(VM)
    assert vm.options["protect"] is True and vm.options["retainOnDelete"] is True
    assert vm.options["ignoreChanges"] == sorted(vm_module.IGNORED_AFTER_CREATE)  # still: no replace on these
    assert vm.options["deleteBeforeReplace"] is False  # a retained VM is left in place while the new one comes up
    component = example_plan.one("obsstack:proxmox:ProxmoxVm", vm.parent)
    assert component.options["protect"] is False
    for child in (example_plan.one(SNIPPET), example_plan.one(IMAGE)):
        assert child.parent == vm.parent
        assert child.options["deleteBeforeReplace"] is True
        assert child.options["protect"] is False and child.options["retainOnDelete"] is False, child.name


def rename_mon_1(sections: dict[str, Any], previous_name: bool = True) -> None:
    sections["monitoring"]["hosts"][0].update(
        {"name": "mon-a", **({"previous_name": "mon-1"} if previous_name else {})}
    )


def alias_names(resource: engine.Recorded) -> set[str]:
    return {a["spec"]["name"] for a in resource.options.get("aliases", []) if a.get("spec", {}).get("name")}


@pytest.mark.parametrize("template", [None, 9000], ids=["cloud-image", "template-clone"])
def test_a_renamed_monitoring_host_aliases_its_vm_and_every_child_to_the_old_names(
    run_program, example_sections, template: int | None
) -> None:
    example_sections["monitoring"]["vm"]["template_vmid"] = template
    before = run_program(example_sections)
    rename_mon_1(example_sections)
    after = run_program(example_sections)
    old_tree = [before.one("obsstack:proxmox:ProxmoxVm", "mon-1"), *before.children("mon-1")]
    new_tree = [after.one("obsstack:proxmox:ProxmoxVm", "mon-a"), *after.children("mon-a")]
    assert len(old_tree) == len(new_tree) == (3 if template else 4)
    for old in old_tree:
        (new,) = [r for r in new_tree if r.type == old.type]
        assert new.name == "mon-a" + old.name.removeprefix("mon-1"), new.name
        assert old.name in alias_names(new), f"{new.name} has no alias to {old.name}"
    renamed_vm = after.one(VM)
    assert renamed_vm.options["protect"] and renamed_vm.options["retainOnDelete"]
    assert renamed_vm.inputs["vmId"] == before.one(VM).inputs["vmId"]  # the same VM, renamed in PVE
    assert not after.find(name="mon-1")


@pytest.mark.parametrize(
    ("previous_name", "expected"),
    [("mon-1", "is the current name: remove previous_name"), ("Mon 1", "is not a valid name")],
    ids=["same-as-name", "not-a-name"],
)
def test_previous_name_is_checked(example_sections, previous_name: str, expected: str) -> None:
    from components import config as stack_config

    example_sections["monitoring"]["hosts"][0]["previous_name"] = previous_name
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(example_sections)
    assert "monitoring.hosts[0]" in str(err.value) and expected in str(err.value)


def edit_cluster(s: dict[str, Any]) -> None:
    s["cluster"] = "basement"  # changes the VM's tags and description


def edit_alerting(s: dict[str, Any]) -> None:
    s["alerting"]["routing"]["warning"]["repeat_interval"] = "8h"
    s["alerting"]["thresholds"] = {"target_down_for": "2m"}


def edit_backups(s: dict[str, Any]) -> None:
    s["backups"]["schedule"] = "03:30"


def edit_size(s: dict[str, Any]) -> None:
    s["monitoring"]["vm"].update({"memory_mb": 16384, "cores": 6, "data_disk_gb": 400})


def edit_image(s: dict[str, Any]) -> None:
    s["proxmox"]["cloud_image"] = {
        "url": "https://mirror.example.net/debian-12-genericcloud-amd64-20251112.qcow2",
        "checksum": "ab" * 64,
    }


def edit_apt_proxy(s: dict[str, Any]) -> None:
    s["monitoring"]["apt_proxy"] = "http://10.0.10.5:3142"  # only cloud-init user data changes


@pytest.mark.parametrize(
    ("edit", "allowed"),
    [
        (edit_cluster, {"tags", "description"}),
        (edit_alerting, set()),
        (edit_backups, set()),
        (edit_size, {"memory.dedicated", "cpu.cores", "disks[1].size"}),
        (edit_image, set()),
        (edit_apt_proxy, set()),
    ],
    ids=["tags-and-description", "alerting", "backup-schedule", "cpu-memory-disk", "new-image-url", "cloud-init"],
)
def test_unrelated_change_does_not_replace_the_vm(run_program, example_sections, edit, allowed) -> None:
    before = run_program(example_sections).one(VM)
    edit(example_sections)
    after = run_program(example_sections).one(VM)
    changed = {p for p in changed_inputs(before, after) if not ignored(p, after.options["ignoreChanges"])}
    assert changed <= allowed, f"unexpected VM changes: {changed - allowed}"
    assert not [p for p in changed if p.split("[")[0] in REPLACING_INPUTS or p in REPLACING_INPUTS]
    assert not set(after.options["replaceOnChanges"]) & changed


def test_a_new_vmid_is_a_new_vm_on_purpose(run_program, example_sections) -> None:
    before = run_program(example_sections).one(VM)
    example_sections["monitoring"]["hosts"][0]["vmid"] = 201
    after = run_program(example_sections).one(VM)
    assert "vmId" in changed_inputs(before, after)  # the test above can see a replacing change


def test_clone_from_template(run_program, example_sections) -> None:
    example_sections["monitoring"]["vm"]["template_vmid"] = 9000
    plan = run_program(example_sections)
    vm = plan.one(VM)
    assert vm.inputs["clone"] == {"full": True, "vmId": 9000}
    assert "fileId" not in vm.inputs["disks"][0]
    assert not plan.find(IMAGE)


PROGRAM = textwrap.dedent(
    """
    import pulumi
    from components import config as stack_config, inventory as stack_inventory
    from components.proxmox.vm import ProxmoxVm, ProxmoxVmArgs
    import dataclasses

    config = stack_config.load()
    secrets = stack_config.load_secrets(config)
    node = stack_inventory.build(config).monitoring[0]
    args = ProxmoxVmArgs.monitoring(config, node, secrets[config.proxmox.ssh_private_key_secret])
    vm = ProxmoxVm("probe", dataclasses.replace(args, dhcp=DHCP))
    pulumi.export("ip", vm.ip)
    pulumi.export("vmId", vm.vm_id)
    """
)


@pytest.mark.parametrize(("dhcp", "ip"), [(False, "10.0.20.10"), (True, "10.0.99.7")], ids=["static", "dhcp"])
def test_ip_and_vm_id_outputs(tmp_path: Path, example_sections, example_config, dhcp: bool, ip: str) -> None:
    program = tmp_path / "program.py"
    program.write_text(PROGRAM.replace("DHCP", str(dhcp)))
    result = engine.run("prod", example_sections, distinct_secrets(example_config), program=program)
    assert result.outputs == {"ip": ip, "vmId": 200}
    address = result.one(VM).inputs["initialization"]["ipConfigs"][0]["ipv4"]
    assert address == ({"address": "dhcp"} if dhcp else {"address": "10.0.20.10/24", "gateway": "10.0.20.1"})


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [([["127.0.0.1"], ["10.0.20.10", "fe80::1"]], "10.0.20.10"), ([["127.0.0.1"]], ""), (None, "")],
    ids=["agent-reports", "only-loopback", "agent-not-up"],
)
def test_first_routable(addresses, expected: str) -> None:
    assert vm_module.first_routable(addresses) == expected

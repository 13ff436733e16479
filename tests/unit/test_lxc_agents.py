"""Agents in LXC guests are installed the way Proxmox users reach containers: over the PVE node's
SSH with `pct exec <vmid> --` (no sshd, no sudo in the container), stdin passed through."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components import config as stack_config
from components.monitoring import agents, scripts
from tools.plan import engine

# pct exec as pve-container's pct.pm runs it (lxc-attach -n <vmid> ... -- <command>): here the
# "container" is this machine, the command runs with the pipes it was given.
FAKE_PCT = """#!/bin/bash
[ "$1" = exec ] || { echo "unsupported: $*" >&2; exit 2; }
echo "$2" >"$LOG"
shift 2
[ "$1" = -- ] || { echo "missing --" >&2; exit 2; }
shift
exec "$@"
"""


def test_an_lxc_guest_is_reached_through_its_node(example_config) -> None:
    assets = example_config.inventory.by_name()
    dns1 = assets["dns1"]
    assert dns1.kind == "lxc"
    host, user, container = agents.reach(example_config, dns1)
    assert host == str(assets[str(dns1.node)].address)
    assert user == example_config.proxmox.ssh_user
    assert container == dns1.vmid


@pytest.mark.parametrize("kind", ["vm", "pve_node", "pbs_host"], ids=["vm", "pve-node", "pbs-host"])
def test_other_hosts_are_reached_directly(example_config, kind: str) -> None:
    asset = next(a for a in example_config.assets if a.kind == kind)
    host, _, container = agents.reach(example_config, asset)
    assert host == str(asset.address) and container is None


def test_every_agent_step_of_an_lxc_guest_runs_in_the_container(example_plan: engine.PlanResult) -> None:
    steps = [r for r in example_plan.resources if r.parent == "dns1-agents" and r.type == "command:remote:Command"]
    assert steps
    for step in steps:
        create = step.inputs["create"]
        assert f"pct exec 101 -- {scripts.CONTAINER_ENV} bash -c " in create, step.name
        assert "sudo" not in create.split("bash -c", 1)[0], step.name


def test_pct_exec_passes_the_payload_on_stdin(tmp_path: Path) -> None:
    """The staging step's payload arrives on stdin through pct exec, as it does over plain SSH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pct").write_text(FAKE_PCT)
    (bin_dir / "pct").chmod(0o755)
    line = scripts.as_root('cat >"$OUT"', "root", container=101)
    out, log = tmp_path / "out", tmp_path / "log"
    done = subprocess.run(
        ["bash", "-c", line.replace("env -i ", f"env -i OUT={out} ")],
        input="payload\n",
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(log)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "payload\n" and log.read_text().strip() == "101"


def test_a_non_root_node_user_runs_pct_with_sudo() -> None:
    assert scripts.as_root("true", "admin", container=101).startswith("sudo -n pct exec 101 -- ")


def test_ssh_user_on_an_lxc_guest_is_refused_naming_the_fix(example_sections) -> None:
    lxc = next(a for a in example_sections["inventory"]["assets"] if a["kind"] == "lxc")
    lxc["ssh_user"] = "debian"
    with pytest.raises(stack_config.ConfigError, match=r"ssh_user.*pct exec.*remove ssh_user"):
        stack_config.validate(example_sections)

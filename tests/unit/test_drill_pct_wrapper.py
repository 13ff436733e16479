"""The forced command of the drill's SSH key on a PVE node: `pct exec` of a scratch VMID, the
command line parsed inside the container only; anything else is refused before pct runs."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import drill as layout
from tests.conftest import ROOT, distinct_secrets, load_sections
from tools.plan import engine
from tools.restore_drill.pct import PctExec
from tools.restore_drill.pve import ScratchVm
from tools.restore_drill.schema import Lxc, NodeSsh

STAGING = ROOT / "Pulumi.staging.yaml"


@pytest.fixture(scope="module")
def staging() -> stack_config.StackConfig:
    return stack_config.validate(load_sections(STAGING), source=STAGING.name)


@pytest.fixture
def node(tmp_path: Path, staging: stack_config.StackConfig) -> Path:
    """The wrapper as installed, and a fake pct that runs the container's `/bin/sh -c <line>`
    locally (standing in for the container) after logging its argv."""
    wrapper = tmp_path / "obs-drill-pct"
    wrapper.write_text(layout.pct_wrapper(staging))
    wrapper.chmod(0o755)
    pct = tmp_path / "pct"
    log_argv = f"jq -cn '$ARGS.positional' --args -- \"$@\" >> {tmp_path}/pct.log"
    pct.write_text(f'#!/bin/bash\n{log_argv}\nshift 3\nexec "$@"\n')
    pct.chmod(0o755)
    return tmp_path


def ssh_in(node: Path, request: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """What sshd does with the key's forced command: the client's line in SSH_ORIGINAL_COMMAND."""
    env = {"PATH": os.environ["PATH"], "SSH_ORIGINAL_COMMAND": request, "OBSSTACK_PCT": str(node / "pct")}
    return subprocess.run([str(node / "obs-drill-pct")], input=stdin, env=env, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def pct_calls(node: Path) -> list[list[str]]:
    log = node / "pct.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_shellcheck(node: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required (apt-get install shellcheck; see .ci/run)"
    result = subprocess.run([shellcheck, str(node / "obs-drill-pct")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("user", ["root", "admin"], ids=["root", "sudo-prefix"])
def test_the_drills_own_request_runs_with_its_words_intact(node: Path, user: str) -> None:
    """The line tools/restore_drill sends reaches the container's shell and splits back into argv."""
    pct = PctExec(Lxc(nodes={"pve1": NodeSsh(address="10.0.30.11", user=user)}))
    command = ["printf", "%s\\n", "a b", "it's", "$HOME"]
    request = pct.argv(ScratchVm("pve1", 9801, (9800, 9899), frozenset({610, 611}), "lxc"), command)[-1]
    result = ssh_in(node, request)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["a b", "it's", "$HOME"]
    (call,) = pct_calls(node)
    assert call[:5] == ["exec", "9801", "--", "/bin/sh", "-c"]


def test_stdin_reaches_the_command(node: Path) -> None:
    result = ssh_in(node, "pct exec 9801 -- cat", stdin="manifest line\n")
    assert result.returncode == 0 and result.stdout == "manifest line\n"


REFUSED = [
    ("not-pct", "rm -rf /"),
    ("pct-destroy", "pct destroy 9801"),
    ("source-vmid", "pct exec 611 -- cat /etc/shadow"),
    ("above-range", "pct exec 9900 -- true"),
    ("host-command-after-vmid", "pct exec 9801; touch /tmp/obs-pwned -- true"),
    ("no-command", "pct exec 9801 --"),
    ("empty", ""),
]


@pytest.mark.parametrize("request_line", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_anything_else_is_refused_before_pct_runs(node: Path, request_line: str) -> None:
    result = ssh_in(node, request_line)
    assert result.returncode == 2 and "obs-drill-pct:" in result.stderr
    assert pct_calls(node) == []


def test_a_shell_line_runs_in_the_container_not_on_the_node(node: Path, tmp_path: Path) -> None:
    """`;` after `--` is the container's business: pct gets it as one argument of `sh -c`."""
    marker = tmp_path / "would-be-on-the-node"
    ssh_in(node, f"pct exec 9801 -- true; echo {shlex.quote(str(marker))}")
    (call,) = pct_calls(node)
    assert call == ["exec", "9801", "--", "/bin/sh", "-c", f"true; echo {shlex.quote(str(marker))}"]


def test_shipped_to_every_pve_node_only_with_a_container_drill(staging: stack_config.StackConfig) -> None:
    path = layout.pct_wrapper_path(staging)
    shipped = [f for f in layout.files(staging, stack_inventory.build(staging)) if f.path == path]
    assert [f.host for f in shipped] == [n.name for n in staging.pve_nodes()] and shipped[0].mode == "0755"
    prod = stack_config.validate(load_sections())
    assert not [f for f in layout.files(prod, stack_inventory.build(prod)) if "obs-drill-pct" in f.path]


def test_the_staging_plan_installs_it_on_its_node(staging: stack_config.StackConfig) -> None:
    plan = engine.run("staging", load_sections(STAGING), distinct_secrets(staging))
    names = [r.name for r in plan.resources if r.type == "command:remote:Command"]
    assert any(n.startswith("drills-pct-pve1-files") for n in names), names

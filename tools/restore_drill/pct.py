"""``pct exec`` in a scratch container, over SSH on its node.

The PVE API offers no exec for containers (pve-container src/PVE/CLI/pct.pm: ``exec`` is a CLI
method that runs ``lxc-attach`` on the node itself), so the drill runs ``pct exec <vmid> -- cmd``
on the node. ``ssh`` joins its arguments into one remote command line, so every argument is
quoted for the remote shell (``shlex.join``). Only ever for a :class:`ScratchVm` of kind ``lxc``.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from tools.restore_drill.pve import PveError, ScratchVm, WaitTimeoutError
from tools.restore_drill.schema import Lxc


@dataclass(frozen=True)
class Completed:
    exitcode: int
    out: str
    err: str


@dataclass(frozen=True)
class PctExec:
    lxc: Lxc

    def argv(self, vm: ScratchVm, command: list[str]) -> list[str]:
        if vm.kind != "lxc":
            raise PveError(f"pct exec is for containers, not {vm.kind} guest {vm.vmid}")
        node = self.lxc.nodes.get(vm.node)
        if node is None:
            raise PveError(f"no SSH address of node {vm.node} (restoreDrill.lxc.nodes): cannot run pct exec")
        remote = ["pct", "exec", str(vm.vmid), "--", *command]
        if node.user != "root":
            remote = ["sudo", "-n", *remote]
        key = ["-i", self.lxc.ssh_key_file] if self.lxc.ssh_key_file else []
        return [*self.lxc.ssh_command, *key, f"{node.user}@{node.address}", shlex.join(remote)]

    def run(self, vm: ScratchVm, command: list[str], timeout: float, input_data: str | None = None) -> Completed:
        try:
            done = subprocess.run(
                self.argv(vm, command),
                input=input_data or "",
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WaitTimeoutError(f"pct exec {command[0]} in {vm.vmid}: still running after {timeout:.0f} s") from None
        except OSError as err:
            raise PveError(f"pct exec over ssh: {err}") from None
        if done.returncode == 255:  # ssh's own failure (pct passes the command's status through)
            raise PveError(f"ssh to {vm.node} for pct exec failed: {done.stderr.strip()[:300]}")
        return Completed(done.returncode, done.stdout, done.stderr)

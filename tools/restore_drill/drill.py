"""One restore drill of one target: newest backup -> isolated scratch guest -> canary verified.

A VM (qemu) is looked into through its guest agent (``agent/exec``); a container (lxc) through
``pct exec`` over SSH on its node (tools/restore_drill/pct.py), the PVE API having no exec for
containers. The scratch guest is destroyed in a ``finally`` that also runs on failure, timeout, Ctrl-C and
SIGTERM (turned into KeyboardInterrupt by the CLI); Ctrl-C during the cleanup itself is deferred.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from tools.restore_drill import checks
from tools.restore_drill.checks import CheckResult
from tools.restore_drill.pct import PctExec
from tools.restore_drill.pve import Pve, PveError, ScratchVm, UnknownOutcomeError, WaitTimeoutError
from tools.restore_drill.schema import Check, DrillPlan, Target

NET_KEY = re.compile(r"^net\d+$")
FAILED_LINES_SHOWN = 10


class DrillError(Exception):
    """The drill cannot go on; the message says what was wrong and what to check."""


@dataclass
class Step:
    name: str
    status: str = "running"
    seconds: float = 0.0
    detail: str = ""


def _all_exist(paths: list[str]) -> list[str]:
    """``test`` arguments true when every path exists: ``-e a -a -e b ...``."""
    args: list[str] = []
    for path in paths:
        args += [*(["-a"] if args else []), "-e", path]
    return args


@dataclass
class Canary:
    timestamp: datetime
    nonce: str
    files: int
    manifest: str
    manifest_sha256: str

    @classmethod
    def parse(cls, text: str) -> Canary:
        try:
            data = json.loads(text)
            return cls(
                timestamp=datetime.strptime(data["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                nonce=str(data["nonce"]),
                files=int(data["files"]),
                manifest=str(data["manifest"]),
                manifest_sha256=str(data["manifestSha256"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise DrillError(
                f"canary.json in the restored guest is unreadable ({err}): is obs-canary installed?"
            ) from None


@dataclass
class Result:
    target: str
    source_vmid: int
    node: str
    status: str = "running"  # verified | failed | interrupted
    error: str = ""
    failed_step: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    backup: str = ""
    backup_time: float | None = None
    scratch_vmid: int | None = None
    canary: dict[str, Any] = field(default_factory=dict)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_budget_seconds: int = 0
    rpo_budget_seconds: int = 0
    scratch_destroyed: bool | None = None
    cleanup_error: str = ""
    steps: list[Step] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @property
    def within_budget(self) -> bool:
        return (
            self.verified
            and self.rto_seconds is not None
            and self.rpo_seconds is not None
            and self.rto_seconds <= self.rto_budget_seconds
            and self.rpo_seconds <= self.rpo_budget_seconds
        )


class Progress:
    """Step-by-step progress lines with the elapsed time of the run and of each step."""

    def __init__(self, out: TextIO = sys.stdout, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.t0 = clock()

    def line(self, text: str) -> None:
        print(f"[{self.clock() - self.t0:7.1f}s] {text}", file=self.out, flush=True)


@contextmanager
def deferred_interrupts(progress: Progress) -> Iterator[None]:
    """Ctrl-C or SIGTERM while the scratch VM is being destroyed would leave it behind: note it,
    finish first (every cleanup wait is bounded)."""

    def note(signum: int, _frame: Any) -> None:
        progress.line(f"{signal.Signals(signum).name} received: finishing the cleanup of the scratch VM first")

    try:
        previous = {signum: signal.signal(signum, note) for signum in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (tests): nothing to defer
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Drill:
    def __init__(self, pve: Pve, plan: DrillPlan, progress: Progress, clock: Callable[[], float] = time.time) -> None:
        self.pve = pve
        self.pct = PctExec(plan.lxc)
        self.plan = plan
        self.progress = progress
        self.clock = clock
        self.protected = {t.vmid for t in plan.targets}

    # -- the drill ------------------------------------------------------------------------------

    def run(self, target: Target) -> Result:
        node = self.plan.scratch.node or target.node
        result = Result(
            target.name,
            target.vmid,
            node,
            started_at=self.clock(),
            rto_budget_seconds=target.rto_seconds,
            rpo_budget_seconds=target.rpo_seconds,
        )
        self.last_result = result
        state: dict[str, Any] = {}
        what = "CT" if target.kind == "lxc" else "VM"
        self.progress.line(f"{target.name}: drill of {what} {target.vmid} starts (restore node {node})")
        try:
            self._steps(target, node, result, state)
            result.status = "verified"
        except KeyboardInterrupt:
            result.status, result.error = "interrupted", "interrupted (Ctrl-C or SIGTERM)"
            self._close_step(result, "interrupted", result.error)
            raise
        except (DrillError, PveError) as err:
            result.status, result.error = "failed", str(err)
            self._close_step(result, "failed", str(err))
        except Exception as err:  # noqa: BLE001 - a bug must still end in cleanup, report and metrics
            result.status, result.error = "failed", f"internal error {type(err).__name__}: {err} (please report it)"
            self._close_step(result, "failed", result.error)
        finally:
            with deferred_interrupts(self.progress):
                self._cleanup(result, state)
            result.finished_at = self.clock()
            self._summary(result)
        return result

    def _steps(self, target: Target, node: str, result: Result, state: dict[str, Any]) -> None:
        timeouts = self.plan.timeouts
        drill_start = result.started_at

        with self._step(result, "find newest backup") as step:
            backups = self.pve.backups(target.node, self.plan.pbs_storage, target.vmid, target.kind)
            if not backups:
                raise DrillError(
                    f"no {target.kind} backup of guest {target.vmid} on storage {self.plan.pbs_storage}: "
                    "check the backup job, "
                    f"and that the token has VM.Backup on /vms/{target.vmid} and Datastore.AllocateSpace on "
                    f"/storage/{self.plan.pbs_storage} (PVE lists nothing without them)"
                )
            newest = max(backups, key=lambda b: int(b.get("ctime", 0)))
            result.backup, result.backup_time = str(newest["volid"]), float(newest.get("ctime", 0))
            step.detail = f"{result.backup} ({_age(drill_start - (result.backup_time or 0))} old)"

        with self._step(result, "pick scratch VMID") as step:
            vm = self._free_scratch(node, target.kind)
            result.scratch_vmid = vm.vmid
            step.detail = f"{vm.vmid} on {node}"

        rto_start = self.clock()
        with self._step(result, "restore") as step:
            try:
                upid = self.pve.restore(vm, result.backup, self.plan.scratch.storage, self.plan.scratch.pool)
            except UnknownOutcomeError:
                state["vm"] = vm  # PVE may have started the restore: the cleanup looks for it
                raise
            state["vm"], state["restore_upid"] = vm, upid
            self.pve.wait_task(node, upid, timeouts.restore_seconds, f"restore of {result.backup}")
            state["restore_done"] = True
            step.detail = f"to {self.plan.scratch.storage}, new MACs (unique=1)"

        with self._step(result, "isolate network") as step:
            step.detail = self._isolate(vm, target)

        with self._step(result, "start") as step:
            upid = self.pve.start(vm)
            self.pve.wait_task(node, upid, timeouts.start_seconds, f"start of {vm.vmid}")

        if vm.kind == "lxc":
            with self._step(result, "wait for container") as step:
                self._wait_container(vm, timeouts.agent_seconds)
        else:
            with self._step(result, "wait for guest agent") as step:
                self._wait_agent(vm, timeouts.agent_seconds)

        with self._step(result, "read canary") as step:
            out = self._exec(vm, ["cat", self.plan.canary.file], timeouts.agent_seconds, "read canary.json")
            canary = Canary.parse(out)
            result.canary = {
                "timestamp": canary.timestamp.isoformat().replace("+00:00", "Z"),
                "nonce": canary.nonce,
                "files": canary.files,
            }
            step.detail = f"written {result.canary['timestamp']}, nonce {canary.nonce[:12]}, {canary.files} files"

        with self._step(result, "verify checksums") as step:
            self._exec(
                vm,
                ["sha256sum", "--check", "--strict", "-"],
                timeouts.verify_seconds,
                "manifest integrity",
                input_data=f"{canary.manifest_sha256}  {canary.manifest}\n",
            )
            self._exec(
                vm,
                ["sha256sum", "--check", "--strict", "--quiet", canary.manifest],
                timeouts.verify_seconds,
                "sha256sum -c of the canary manifest",
            )
            step.detail = f"{canary.files} files match"

        with self._step(result, "check restored paths") as step:
            # Live data is not byte-compared (it changes after the canary ran): it must be there.
            paths = list(target.canary_paths)
            self._exec(vm, ["test", *_all_exist(paths)], timeouts.agent_seconds, f"presence of {', '.join(paths)}")
            step.detail = f"{len(paths)} paths present"

        if target.checks:
            with self._step(result, "application checks") as step:
                result.checks = [self._check(vm, check, target.name) for check in target.checks]
                step.detail = ", ".join(f"{c.name} {c.status}" for c in result.checks)
                failed = [c for c in result.checks if not c.passed]
                if failed:
                    raise DrillError("application check failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))

        verified_at = self.clock()
        result.rto_seconds = round(verified_at - rto_start, 3)
        result.rpo_seconds = round(drill_start - canary.timestamp.timestamp(), 3)

    def _check(self, vm: ScratchVm, check: Check, target: str) -> CheckResult:
        """One application check; its failure is recorded, the other checks still run."""
        started = self.clock()
        try:
            out = self._exec(vm, checks.argv(check), checks.exec_seconds(check), f"check {check.name}")
            status, detail = "passed", out.strip().splitlines()[-1] if out.strip() else "passed"
        except (DrillError, PveError) as err:
            status, detail = "failed", str(err)
        seconds = round(self.clock() - started, 3)
        self.progress.line(f"{target}: check {check.name} ({check.type}) {status} ({seconds:.1f}s)")
        return CheckResult(check.name, check.type, status, seconds, detail)

    def _free_scratch(self, node: str, kind: str) -> ScratchVm:
        low, high = self.plan.scratch.vmid_range
        for vmid in range(low, high + 1):
            if vmid in self.protected:
                continue
            if self.pve.vmid_free(vmid):
                return ScratchVm(node, vmid, (low, high), frozenset(self.protected), kind)
        raise DrillError(f"no free VMID in the scratch range {low}-{high}: remove leftover scratch VMs")

    def _isolate(self, vm: ScratchVm, target: Target) -> str:
        if vm.kind == "lxc":
            return self._isolate_container(vm)
        config = self.pve.config(vm)
        if str(config.get("agent", "0")).split(",")[0] not in ("1", "enabled=1"):
            raise DrillError(
                f"VM {target.vmid} has no guest agent enabled (`agent: 1`): the drill cannot look inside; "
                f"enable it with `qm set {target.vmid} --agent enabled=1` and install qemu-guest-agent"
            )
        changes: dict[str, Any] = {
            key: isolated_nic(str(value), self.plan.isolation.mode, self.plan.isolation.bridge)
            for key, value in config.items()
            if NET_KEY.match(key)
        }
        changes.update(name=f"drill-{target.name}"[:63], onboot=0)
        self.pve.set_config(vm, **changes)
        after = self.pve.config(vm)
        leaking = [
            k
            for k, v in after.items()
            if NET_KEY.match(k) and not is_isolated(str(v), self.plan.isolation.mode, self.plan.isolation.bridge)
        ]
        if leaking:
            raise DrillError(f"refusing to start: {leaking} of scratch VM {vm.vmid} still reach the network")
        nics = sorted(k for k in after if NET_KEY.match(k))
        how = "link_down=1" if self.plan.isolation.mode == "link_down" else f"bridge={self.plan.isolation.bridge}"
        return f"{', '.join(nics) or 'no NICs'}: {how}"

    def _isolate_container(self, vm: ScratchVm) -> str:
        """link_down: the container loses every NIC (only loopback is left), a removal every PVE
        version takes; bridge: each NIC moves to the isolated bridge, VLAN tag dropped."""
        mode, bridge = self.plan.isolation.mode, self.plan.isolation.bridge
        nics = sorted(k for k in self.pve.config(vm) if NET_KEY.match(k))
        if mode == "link_down":
            changes: dict[str, Any] = {"delete": ",".join(nics)} if nics else {}
        else:
            config = self.pve.config(vm)
            changes = {k: isolated_nic(str(config[k]), mode, bridge) for k in nics}
        self.pve.set_config(vm, onboot=0, **changes)
        after = self.pve.config(vm)
        leaking = [
            k
            for k, v in after.items()
            if NET_KEY.match(k) and (mode == "link_down" or not is_isolated(str(v), mode, bridge))
        ]
        if leaking:
            raise DrillError(f"refusing to start: {leaking} of scratch CT {vm.vmid} still reach the network")
        return f"{', '.join(nics) or 'no NICs'}: " + ("removed" if mode == "link_down" else f"bridge={bridge}")

    def _wait_container(self, vm: ScratchVm, timeout: float) -> None:
        """Running, and `pct exec` answers (init has set the container up)."""
        deadline = self.pve.clock() + timeout
        last = "not running"
        while True:
            if self.pve.running(vm):
                done = self.pct.run(vm, ["true"], timeout)
                if done.exitcode == 0:
                    return
                last = done.err.strip()[:200] or f"exit {done.exitcode}"
            if self.pve.clock() >= deadline:
                raise WaitTimeoutError(
                    f"scratch CT {vm.vmid} did not answer `pct exec` within {timeout:.0f} s ({last}): does it boot?"
                )
            self.pve.sleep(self.pve.poll)

    def _wait_agent(self, vm: ScratchVm, timeout: float) -> None:
        deadline = self.pve.clock() + timeout
        while not self.pve.agent_ping(vm):
            if self.pve.clock() >= deadline:
                raise WaitTimeoutError(
                    f"guest agent of scratch VM {vm.vmid} did not answer within {timeout:.0f} s: is qemu-guest-agent "
                    "installed and enabled in the guest, and does it boot?"
                )
            self.pve.sleep(self.pve.poll)

    def _exec(self, vm: ScratchVm, command: list[str], timeout: float, what: str, input_data: str | None = None) -> str:
        if vm.kind == "lxc":
            done = self.pct.run(vm, command, timeout, input_data)
            status = {"exitcode": done.exitcode, "out-data": done.out, "err-data": done.err}
            return _checked(status, what)
        pid = self.pve.agent_exec(vm, command, input_data)
        deadline = self.pve.clock() + timeout
        while True:
            status = self.pve.agent_exec_status(vm, pid)
            if status.get("exited"):
                break
            if self.pve.clock() >= deadline:
                raise WaitTimeoutError(f"{what}: still running in the guest after {timeout:.0f} s")
            self.pve.sleep(self.pve.poll)
        return _checked(status, what)

    # -- cleanup --------------------------------------------------------------------------------

    def _cleanup(self, result: Result, state: dict[str, Any]) -> None:
        vm: ScratchVm | None = state.get("vm")
        if vm is None:
            return
        start = self.clock()
        deadline = self.pve.clock() + self.plan.timeouts.cleanup_seconds
        self.progress.line(f"{result.target}: cleanup: destroying scratch VM {vm.vmid}")
        errors: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            try:
                self._destroy(vm, state, deadline)
                result.scratch_destroyed = True
                break
            except PveError as err:
                errors.append(str(err))
            if self.pve.clock() >= deadline or attempt >= 5:
                result.scratch_destroyed = False
                tool = "pct" if vm.kind == "lxc" else "qm"
                result.cleanup_error = (
                    f"scratch {'CT' if vm.kind == 'lxc' else 'VM'} {vm.vmid} on {vm.node} NOT destroyed: {errors[-1]}; "
                    f"destroy it by hand: {tool} stop {vm.vmid}; {tool} destroy {vm.vmid} --purge "
                    "--destroy-unreferenced-disks"
                )
                break
            self.pve.sleep(self.pve.poll * attempt)
        seconds = self.clock() - start
        status = "ok" if result.scratch_destroyed else "failed"
        result.steps.append(Step("destroy scratch VM", status, round(seconds, 3), result.cleanup_error or str(vm.vmid)))
        self.progress.line(f"{result.target}: cleanup: {status} ({seconds:.1f}s) {result.cleanup_error}".rstrip())

    def _unanswered_restore(self, vm: ScratchVm) -> str | None:
        """The restore request got no answer: watch for a while whether PVE started it anyway."""
        until = self.pve.clock() + 2 * self.plan.timeouts.request_seconds
        while True:
            upid = self.pve.active_restore(vm.node, vm.vmid, vm.kind)
            if upid or not self.pve.vmid_free(vm.vmid) or self.pve.clock() >= until:
                return upid
            self.pve.sleep(self.pve.poll)

    def _destroy(self, vm: ScratchVm, state: dict[str, Any], deadline: float) -> None:
        upid = state.get("restore_upid")
        if upid is None:
            upid = state["restore_upid"] = self._unanswered_restore(vm)
        if upid and not state.get("restore_done"):
            if self.pve.task_status(vm.node, upid).get("status") == "running":
                self.pve.stop_task(vm.node, upid)
            self.pve.wait_task_end(vm.node, upid, max(deadline - self.pve.clock(), 1))
            state["restore_done"] = True
        if self.pve.vmid_free(vm.vmid):
            return  # a failed restore removes its VM itself
        if self.pve.running(vm):
            self.pve.wait_task(vm.node, self.pve.stop(vm), max(deadline - self.pve.clock(), 1), f"stop of {vm.vmid}")
        self.pve.wait_task(vm.node, self.pve.destroy(vm), max(deadline - self.pve.clock(), 1), f"destroy of {vm.vmid}")
        if not self.pve.vmid_free(vm.vmid):
            raise PveError(f"VM {vm.vmid} still exists after its destroy task")

    # -- progress -------------------------------------------------------------------------------

    @contextmanager
    def _step(self, result: Result, name: str) -> Iterator[Step]:
        step = Step(name)
        result.steps.append(step)
        started = self.clock()
        self.progress.line(f"{result.target}: {name} ...")
        try:
            yield step
        except BaseException:
            step.seconds = round(self.clock() - started, 3)
            raise
        step.seconds = round(self.clock() - started, 3)
        step.status = "ok"
        self.progress.line(f"{result.target}: {name} ok ({step.seconds:.1f}s) {step.detail}".rstrip())

    def _close_step(self, result: Result, status: str, detail: str) -> None:
        running = [s for s in result.steps if s.status == "running"]
        if running:
            step = running[-1]
            step.status, step.detail = status, detail
            result.failed_step = step.name
            self.progress.line(f"{result.target}: {step.name} {status.upper()}: {detail}")

    def _summary(self, result: Result) -> None:
        if result.verified:
            budget = "within budget" if result.within_budget else "OVER BUDGET"
            rto = f"RTO {_age(result.rto_seconds or 0)} (budget {_age(result.rto_budget_seconds)})"
            self.progress.line(
                f"{result.target}: VERIFIED, {rto}, "
                f"RPO {_age(result.rpo_seconds or 0)} (budget {_age(result.rpo_budget_seconds)}): {budget}"
            )
        else:
            self.progress.line(f"{result.target}: {result.status.upper()} at '{result.failed_step}': {result.error}")


def _checked(status: dict[str, Any], what: str) -> str:
    """The command's output, or a DrillError with its first lines when it failed."""
    out = str(status.get("out-data", ""))
    if status.get("exitcode", 1) != 0:
        errors = (out + str(status.get("err-data", ""))).strip().splitlines()
        shown = "; ".join(errors[:FAILED_LINES_SHOWN]) + (
            f" (+{len(errors) - FAILED_LINES_SHOWN} more)" if len(errors) > FAILED_LINES_SHOWN else ""
        )
        raise DrillError(f"{what} failed (exit {status.get('exitcode')}): {shown or 'no output'}")
    if status.get("out-truncated"):
        raise DrillError(f"{what}: output truncated by the guest agent")
    return out


def _nic_options(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def isolated_nic(value: str, mode: str, bridge: str | None) -> str:
    """The netN string with its link down, or moved to the isolated bridge (MAC and model kept)."""
    parts = [p for p in _nic_options(value) if not p.startswith("link_down=")]
    if mode == "bridge":
        return ",".join([*(p for p in parts if not p.startswith(("bridge=", "tag="))), f"bridge={bridge}"])
    return ",".join([*parts, "link_down=1"])


def is_isolated(value: str, mode: str, bridge: str | None) -> bool:
    options = _nic_options(value)
    if mode == "bridge":
        return f"bridge={bridge}" in options
    return "link_down=1" in options


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"

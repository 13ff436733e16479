"""The PVE API calls a drill makes, through proxmoxer, each bounded in time.

Reads retry transient failures (HTTP 5xx, timeouts, connection resets); writes never retry
implicitly, except the idempotent cleanup calls. Every write names a :class:`ScratchVm`, which
can only be made for a VMID inside the scratch range that is not a drill target: the source VM
cannot be written to by construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

T = TypeVar("T")
READ_ATTEMPTS = 3


class PveError(Exception):
    """A PVE API call failed (after retries) or a task ended with an error."""


class WaitTimeoutError(PveError):
    """A bounded wait ran out."""


class UnknownOutcomeError(PveError):
    """A write got no answer (timeout, reset): PVE may or may not have done it."""


@dataclass(frozen=True)
class ScratchVm:
    """A VM the drill restored and owns: the only VM it ever changes. It cannot exist for a VMID
    outside the scratch range or for a drill target."""

    node: str
    vmid: int
    vmid_range: tuple[int, int]
    protected: frozenset[int]
    kind: str = "qemu"  # qemu | lxc

    def __post_init__(self) -> None:
        low, high = self.vmid_range
        if not low <= self.vmid <= high or self.vmid in self.protected:
            raise PveError(
                f"refusing VMID {self.vmid}: not a scratch VMID (range {low}-{high}, targets {sorted(self.protected)})"
            )


def _transient(err: Exception) -> bool:
    if isinstance(err, ResourceException):
        return err.status_code >= 500
    return isinstance(err, requests.exceptions.RequestException)


def describe(err: Exception) -> str:
    if isinstance(err, ResourceException):
        detail = f" {err.errors}" if err.errors else ""
        return f"HTTP {err.status_code} {err.status_message}: {err.content}{detail}".strip()
    if isinstance(err, requests.exceptions.Timeout):
        return f"request timed out ({type(err).__name__})"
    return f"{type(err).__name__}: {err}"


class Pve:
    def __init__(
        self,
        api: ProxmoxAPI,
        poll_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.poll = poll_seconds
        self.sleep = sleep
        self.clock = clock

    @classmethod
    def connect(
        cls, host_port: str, token_id: str, secret: str, *, verify: bool | str, request_seconds: float, poll: float
    ) -> Pve:
        user, token_name = token_id.split("!", 1)
        api = ProxmoxAPI(
            host_port,
            user=user,
            token_name=token_name,
            token_value=secret,
            verify_ssl=verify,
            timeout=request_seconds,
        )
        return cls(api, poll)

    # -- plumbing ---------------------------------------------------------------------------

    def _read(self, what: str, call: Callable[[], T]) -> T:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return call()
            except (ResourceException, requests.exceptions.RequestException) as err:
                if not _transient(err) or attempt == READ_ATTEMPTS:
                    raise PveError(f"{what}: {describe(err)}") from None
                self.sleep(self.poll * attempt)
        raise AssertionError("unreachable")

    def _write(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ResourceException as err:
            raise PveError(f"{what}: {describe(err)}") from None
        except requests.exceptions.RequestException as err:
            raise UnknownOutcomeError(f"{what}: {describe(err)}") from None

    def _node(self, node: str) -> Any:
        return self.api.nodes(node)

    def _guest(self, vm: ScratchVm) -> Any:
        """/nodes/{node}/qemu/{vmid} or /nodes/{node}/lxc/{vmid}: same verbs for both kinds."""
        node = self._node(vm.node)
        return node.lxc(vm.vmid) if vm.kind == "lxc" else node.qemu(vm.vmid)

    # -- reads ------------------------------------------------------------------------------

    def backups(self, node: str, storage: str, vmid: int, kind: str = "qemu") -> list[dict[str, Any]]:
        content = self._read(
            f"list backups of {vmid} on {storage}",
            lambda: self._node(node).storage(storage).content.get(content="backup", vmid=vmid),
        )
        return [
            item
            for item in content or []
            if item.get("content") == "backup"
            and int(item.get("vmid", -1)) == vmid
            and item.get("subtype", "qemu") == kind
        ]

    def vmid_free(self, vmid: int) -> bool:
        """True if no guest anywhere in the cluster has this VMID (GET /cluster/nextid?vmid=N)."""
        try:
            return int(self.api.cluster.nextid.get(vmid=vmid)) == vmid
        except ResourceException as err:
            if err.status_code == 400:
                return False
            raise PveError(f"check VMID {vmid}: {describe(err)}") from None
        except requests.exceptions.RequestException as err:
            raise PveError(f"check VMID {vmid}: {describe(err)}") from None

    def config(self, vm: ScratchVm) -> dict[str, Any]:
        return dict(self._read(f"read config of {vm.vmid}", self._guest(vm).config.get))

    def task_status(self, node: str, upid: str) -> dict[str, Any]:
        return dict(self._read(f"task {upid}", self._node(node).tasks(upid).status.get))

    def wait_task(self, node: str, upid: str, timeout: float, what: str) -> None:
        deadline = self.clock() + timeout
        while True:
            status = self.task_status(node, upid)
            if status.get("status") == "stopped":
                exit_status = status.get("exitstatus")
                if exit_status != "OK":
                    raise PveError(f"{what} failed: {exit_status} (task log: {upid})")
                return
            if self.clock() >= deadline:
                raise WaitTimeoutError(f"{what} still running after {timeout:.0f} s (task {upid})")
            self.sleep(self.poll)

    def active_restore(self, node: str, vmid: int, kind: str = "qemu") -> str | None:
        """UPID of a restore task still running for this VMID (GET /nodes/{node}/tasks). Restore
        workers are `qmrestore` (qemu-server) and `vzrestore` (pve-container API2/LXC.pm)."""
        worker = "vzrestore" if kind == "lxc" else "qmrestore"
        tasks = self._read(
            f"tasks of {vmid}",
            lambda: self._node(node).tasks.get(vmid=vmid, typefilter=worker, source="active"),
        )
        running = [t for t in tasks or [] if t.get("type") == worker and "endtime" not in t]
        return str(running[0]["upid"]) if running else None

    def wait_task_end(self, node: str, upid: str, timeout: float) -> None:
        """Wait for a task to stop, whatever its outcome (a stopped restore ends in an error)."""
        deadline = self.clock() + timeout
        while self.task_status(node, upid).get("status") != "stopped":
            if self.clock() >= deadline:
                raise WaitTimeoutError(f"task {upid} still running after {timeout:.0f} s")
            self.sleep(self.poll)

    def running(self, vm: ScratchVm) -> bool:
        status = self._read(f"status of {vm.vmid}", self._guest(vm).status.current.get)
        return dict(status).get("status") == "running"

    # -- writes, scratch VM only ---------------------------------------------------------------

    def restore(self, vm: ScratchVm, archive: str, storage: str, pool: str | None) -> str:
        """qemu: POST /nodes/{node}/qemu with `archive`; lxc: POST /nodes/{node}/lxc with the backup
        as `ostemplate` and `restore=1` (pve-container src/PVE/API2/LXC.pm; `unique` requires
        `restore`). Never `force`: an existing guest is never overwritten."""
        params: dict[str, Any] = {"vmid": vm.vmid, "storage": storage, "unique": 1}
        if pool:
            params["pool"] = pool
        if vm.kind == "lxc":
            params.update(ostemplate=archive, restore=1)
            create = self._node(vm.node).lxc.post
        else:
            params["archive"] = archive
            create = self._node(vm.node).qemu.post
        return str(self._write(f"restore {archive} to {vm.vmid}", lambda: create(**params)))

    def set_config(self, vm: ScratchVm, **options: Any) -> None:
        self._write(f"configure {vm.vmid}", lambda: self._guest(vm).config.put(**options))

    def start(self, vm: ScratchVm) -> str:
        return str(self._write(f"start {vm.vmid}", self._guest(vm).status.start.post))

    def agent_ping(self, vm: ScratchVm) -> bool:
        try:
            self._node(vm.node).qemu(vm.vmid).agent.ping.post()
            return True
        except (ResourceException, requests.exceptions.RequestException):
            return False

    def agent_exec(self, vm: ScratchVm, command: list[str], input_data: str | None = None) -> int:
        params: dict[str, Any] = {"command": command}
        if input_data is not None:
            params["input-data"] = input_data
        result = self._write(
            f"agent exec {command[0]} in {vm.vmid}", lambda: self._node(vm.node).qemu(vm.vmid).agent.exec.post(**params)
        )
        return int(dict(result)["pid"])

    def agent_exec_status(self, vm: ScratchVm, pid: int) -> dict[str, Any]:
        return dict(
            self._read(
                f"agent exec-status {pid} in {vm.vmid}",
                lambda: self._node(vm.node).qemu(vm.vmid).agent("exec-status").get(pid=pid),
            )
        )

    def stop_task(self, node: str, upid: str) -> None:
        self._write(f"stop task {upid}", lambda: self._node(node).tasks(upid).delete())

    def stop(self, vm: ScratchVm) -> str:
        return str(self._write(f"stop {vm.vmid}", self._guest(vm).status.stop.post))

    def destroy(self, vm: ScratchVm) -> str:
        return str(
            self._write(
                f"destroy {vm.vmid}",
                lambda: self._guest(vm).delete(purge=1, **{"destroy-unreferenced-disks": 1}),
            )
        )

"""Container drills against the fake PVE API: the newest backup of a CT restored into an isolated
scratch CT, the canary checked with `pct exec` (over the fake ssh), RPO/RTO measured, and the
scratch CT destroyed on every path, with the same failure injection as the VM drill."""

from __future__ import annotations

import io
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components import outputs as stack_outputs
from tests.fixtures.fake_pve import TOKEN_ID, TOKEN_SECRET, FakePve, guest_files, make_cert
from tests.unit.test_restore_drill import CANARY, corrupt, corrupt_payload, drop_under, textfile_metrics
from tools.restore_drill.__main__ import main
from tools.restore_drill.pct import PctExec
from tools.restore_drill.pve import PveError, ScratchVm
from tools.restore_drill.schema import Lxc, NodeSsh

ROOT = Path(__file__).resolve().parents[2]
CANARY_AGE = 5 * 3600
CT = "dns1"  # kind: lxc in the example stack, given a drill here
SCRATCH = range(9900, 10000)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def with_ct_drill(example_sections: dict[str, Any]) -> stack_config.StackConfig:
    """The example stack with a drill on its DNS container."""
    for asset in example_sections["inventory"]["assets"]:
        if asset["name"] == CT:
            asset["drill"] = {"canary_paths": ["/etc", "/etc/unbound"], "rpo": "24h", "rto": "1h"}
    return stack_config.validate(example_sections)


@pytest.fixture
def inventory(with_ct_drill: stack_config.StackConfig) -> stack_inventory.Inventory:
    return stack_inventory.build(with_ct_drill)


@pytest.fixture
def fake(cert: tuple[Path, Path], inventory: stack_inventory.Inventory) -> Iterator[FakePve]:
    server = FakePve(*cert)
    now = time.time()
    for t in inventory.drill_targets:
        data = {f"{p}/important.conf": f"{t.name} data in {p}\n" for p in t.canary_paths}
        files = guest_files(t.name, data, now - CANARY_AGE)
        server.add_guest(t.vmid, t.node, files, nets=2 if t.kind == "lxc" else 1, kind=t.kind)
        server.add_backup("pbs-main", t.vmid, int(now - 86400 - CANARY_AGE), files={})  # older, unusable
        server.add_backup("pbs-main", t.vmid, int(now - CANARY_AGE + 1800))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outputs_file(  # noqa: PLR0917 - pytest passes fixtures positionally
    tmp_path: Path, fake: FakePve, cert: tuple[Path, Path], with_ct_drill, inventory, isolation: dict[str, Any]
) -> Path:
    drill = stack_outputs.restore_drill_output(with_ct_drill, inventory)
    drill["pve"].update(endpoint=f"https://127.0.0.1:{fake.port}/", caFile=str(cert[0]))
    drill["isolation"] = isolation
    drill["timeouts"].update(restoreSeconds=2, agentSeconds=2, verifySeconds=2, startSeconds=2,
                             cleanupSeconds=10, requestSeconds=1, pollSeconds=0.02)  # fmt: skip
    # ssh replaced by the fake's: same argv shape, the remote command quoted the same way.
    fake_ssh = ["env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "tests.fixtures.fake_pve.ssh"]
    drill["lxc"]["sshCommand"] = [*fake_ssh, "--port", str(fake.port), "--ca", str(cert[0])]
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"restoreDrill": drill, "restoreDrillPveToken": f"{TOKEN_ID}={TOKEN_SECRET}"}))
    return path


@pytest.fixture
def isolation() -> dict[str, Any]:
    return {"mode": "link_down", "bridge": None}


def run(outputs_file: Path, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    out = io.StringIO()
    code = main(["--outputs", str(outputs_file), "--report-dir", str(tmp_path / "state"),
                 "--textfile-dir", str(tmp_path / "textfile"), "--target", CT, *args], out)  # fmt: skip
    reports = sorted((tmp_path / "state" / "reports").glob("*.json"))
    return code, out.getvalue(), json.loads(reports[-1].read_text()) if reports else {}


def assert_ct_safe(fake: FakePve, inventory: stack_inventory.Inventory) -> None:
    """No scratch guest left; no write addressed a source guest; every CT create was a restore."""
    assert [vmid for vmid in fake.vms if vmid in SCRATCH] == []
    sources = {t.vmid for t in inventory.drill_targets}
    for request in fake.mutations():
        assert not any(f"/lxc/{vmid}" in request.path or f"/qemu/{vmid}" in request.path for vmid in sources)
        if request.path.endswith("/lxc") and request.method == "POST":
            assert int(request.params["vmid"][0]) in SCRATCH
            assert request.params["restore"] == ["1"] and request.params["unique"] == ["1"]
            assert "force" not in request.params
    assert all(fake.vms[vmid].status == "running" for vmid in sources)


def test_the_container_target_is_an_lxc_drill(inventory) -> None:
    kinds = {t.name: t.kind for t in inventory.drill_targets}
    assert kinds[CT] == "lxc" and kinds["gitea"] == "qemu"


def test_container_drill_verifies_and_destroys_the_scratch_ct(
    fake: FakePve, outputs_file: Path, tmp_path: Path, inventory
) -> None:
    started: list[dict[str, Any]] = []
    original = fake._start

    def spy(node: str, **kw: Any) -> Any:
        started.append(dict(fake.vms[int(kw["ct"])].config))
        return original(node=node, **kw)

    fake._start = spy  # type: ignore[method-assign]
    code, out, report = run(outputs_file, tmp_path)
    assert code == 0, out
    (result,) = report["results"]
    assert result["status"] == "verified" and result["scratchDestroyed"] is True
    assert result["backup"].startswith("pbs-main:backup/ct/101/")
    assert CANARY_AGE <= result["rpoSeconds"] < CANARY_AGE + 60 and 0 < result["rtoSeconds"] < 30
    assert [s["name"] for s in result["steps"]][5] == "wait for container"
    assert [s["status"] for s in result["steps"]] == ["ok"] * 10
    (config,) = started
    assert not [k for k in config if k.startswith("net")], "every NIC removed before the start"
    assert config["onboot"] == "0"
    restore = next(r for r in fake.mutations() if r.path == "/nodes/pve1/lxc")
    assert restore.params["ostemplate"] == [result["backup"]] and restore.params["storage"] == ["local-lvm"]
    assert textfile_metrics(tmp_path, CT)["obs_restore_drill_last_status"] == 1
    assert_ct_safe(fake, inventory)


@pytest.mark.parametrize("isolation", [{"mode": "bridge", "bridge": "vmbr99"}], ids=["bridge"])
def test_bridge_isolation_moves_every_nic(fake: FakePve, outputs_file: Path, tmp_path: Path, inventory) -> None:
    code, out, report = run(outputs_file, tmp_path)
    assert code == 0, out
    isolate = next(s for s in report["results"][0]["steps"] if s["name"] == "isolate network")
    assert isolate["detail"] == "net0, net1: bridge=vmbr99"
    put = next(r for r in fake.mutations() if r.method == "PUT")
    for nic in ("net0", "net1"):
        (value,) = put.params[nic]
        assert "bridge=vmbr99" in value and "bridge=vmbr0" not in value and "tag=" not in value
    assert_ct_safe(fake, inventory)


Inject = Callable[[FakePve], None]
FAILURES: list[tuple[str, Inject, str, str]] = [
    ("restore-task-error", lambda f: setattr(f, "restore_error", "restore failed: exit code 255"), "restore", "255"),
    ("container-never-answers", lambda f: setattr(f, "ct_exec_never", True), "wait for container", "pct exec"),
    ("checksum-mismatch", corrupt_payload, "verify checksums", "/1: FAILED"),
    ("restored-path-missing", lambda f: drop_under(f, "/etc/unbound/"), "check restored paths", "presence of"),
    ("canary-missing", lambda f: corrupt(f, CANARY, delete=True), "read canary", "No such file"),
    ("http-500-on-start", lambda f: f.fail("POST", r"/lxc/99\d\d/status/start$"), "start", "HTTP 500"),
    ("timeout-on-restore-post", lambda f: f.fail("POST", r"/lxc$", status=0, delay=1.5), "restore", "timed out"),
    ("restore-never-finishes", lambda f: setattr(f, "restore_seconds", 1e9), "restore", "still running"),
    ("http-500-on-config", lambda f: f.fail("PUT", r"/lxc/99\d\d/config$"), "isolate network", "HTTP 500"),
]


@pytest.mark.parametrize("case", FAILURES, ids=[f[0] for f in FAILURES])
def test_failures_destroy_the_scratch_ct(
    fake: FakePve, outputs_file: Path, tmp_path: Path, inventory, case: tuple[str, Inject, str, str]
) -> None:
    _, inject, step, message = case
    inject(fake)
    code, out, report = run(outputs_file, tmp_path)
    assert code == 1, out
    (result,) = report["results"]
    assert result["status"] == "failed" and result["failedStep"] == step, result
    assert message in result["error"]
    assert result["scratchDestroyed"] in (True, None) and result["rtoSeconds"] is None
    metrics = textfile_metrics(tmp_path, CT)
    assert metrics["obs_restore_drill_last_status"] == 0 and metrics["obs_restore_drill_scratch_leftover"] == 0
    assert_ct_safe(fake, inventory)


def test_a_scratch_ct_that_cannot_be_destroyed_is_reported(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    fake.fail("DELETE", r"/lxc/99\d\d$")
    code, _, report = run(outputs_file, tmp_path)
    assert code == 3
    result = report["results"][0]
    assert result["scratchDestroyed"] is False
    assert f"pct destroy {result['scratchVmid']}" in result["cleanupError"]


@pytest.mark.parametrize(("user", "sudo"), [("root", []), ("admin", ["sudo", "-n"])], ids=["root", "sudo"])
def test_pct_exec_quotes_every_argument_for_the_remote_shell(user: str, sudo: list[str]) -> None:
    """ssh joins its arguments into one line the remote shell splits again: the words survive."""
    pct = PctExec(Lxc(nodes={"pve1": NodeSsh(address="10.0.10.11", user=user)}, ssh_key_file="/etc/k"))
    vm = ScratchVm("pve1", 9901, (9900, 9999), frozenset({101}), "lxc")
    command = ["test", "-e", "/srv/a dir", "-a", "-e", "/it's; rm -rf /"]
    argv = pct.argv(vm, command)
    assert argv[:2] == ["ssh", "-o"] and argv[-3:-1] == ["/etc/k", f"{user}@10.0.10.11"]
    assert shlex.split(argv[-1]) == [*sudo, "pct", "exec", "9901", "--", *command]


def test_pct_exec_is_refused_for_a_vm() -> None:
    pct = PctExec(Lxc(nodes={"pve1": NodeSsh(address="10.0.10.11")}))
    with pytest.raises(PveError, match="for containers"):
        pct.argv(ScratchVm("pve1", 9901, (9900, 9999), frozenset()), ["true"])


def test_an_application_check_runs_in_the_container_through_pct_exec(
    fake: FakePve, outputs_file: Path, tmp_path: Path, inventory
) -> None:
    bin_dir = tmp_path / "ct-bin"
    bin_dir.mkdir()
    (bin_dir / "unbound-control").write_text("#!/bin/sh\necho 'is running...'\n")
    (bin_dir / "unbound-control").chmod(0o755)
    fake.guest_bin = bin_dir
    data = json.loads(outputs_file.read_text())
    target = next(t for t in data["restoreDrill"]["targets"] if t["name"] == CT)
    target["checks"] = [
        {"name": "resolver", "type": "command", "timeoutSeconds": 3, "command": ["unbound-control", "status"]}
    ]
    outputs_file.write_text(json.dumps(data))
    code, out, report = run(outputs_file, tmp_path)
    assert code == 0, out
    (check,) = report["results"][0]["checks"]
    assert (check["name"], check["type"], check["status"]) == ("resolver", "command", "passed")
    assert check["detail"].startswith("passed after ")
    (bin_dir / "unbound-control").write_text("#!/bin/sh\necho 'unbound is stopped' >&2; exit 1\n")
    code, _, report = run(outputs_file, tmp_path)
    assert (
        code == 1
        and "resolver: " in report["results"][0]["error"]
        and "unbound is stopped" in report["results"][0]["error"]
    )
    assert_ct_safe(fake, inventory)


def test_the_staging_dry_run_shows_both_kinds_and_the_checks(tmp_path: Path) -> None:
    sections, _ = stack_config.read_stack_file(ROOT / "Pulumi.staging.yaml")
    config = stack_config.validate(sections, source="Pulumi.staging.yaml")
    drill = stack_outputs.restore_drill_output(config, stack_inventory.build(config))
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"restoreDrill": drill}))
    out = io.StringIO()
    assert main(["--outputs", str(path), "--all", "--dry-run"], out) == 0
    text = out.getvalue()
    assert "stg-dns: CT 611" in text and "wait for `pct exec` over SSH on pve1" in text
    assert "application checks, each until it passes or times out: web (http, 5m)" in text
    assert "destroy the scratch CT" in text and "destroy the scratch VM" in text

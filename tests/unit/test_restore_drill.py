"""The restore-drill tool against a fake PVE API (tests/fixtures/fake_pve) with failure injection.

Whatever goes wrong, the scratch VM is destroyed, the source VM receives no write, and the
metrics and the report say what happened.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components import outputs as stack_outputs
from tests.fixtures.fake_pve import TOKEN_ID, TOKEN_SECRET, FakePve, guest_files, make_cert
from tests.fixtures.pushgateway import pushgateway_fixture, scrape  # noqa: F401 - the pushgateway fixture
from tools.restore_drill.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
CANARY_AGE = 5 * 3600
TARGET = "gitea"
CANARY = "/var/lib/obs-canary/canary.json"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fake(cert: tuple[Path, Path], example_inventory) -> Iterator[FakePve]:
    """A PVE cluster holding every drill target of the example stack, each with two backups."""
    server = FakePve(*cert)
    now = time.time()
    for t in example_inventory.drill_targets:
        files = guest_files(
            t.name, {f"{p}/important.conf": f"{t.name} data in {p}\n" for p in t.canary_paths}, now - CANARY_AGE
        )
        server.add_guest(t.vmid, t.node, files)
        server.add_backup("pbs-main", t.vmid, int(now - 86400 - CANARY_AGE), files={})  # older, unusable
        server.add_backup("pbs-main", t.vmid, int(now - CANARY_AGE + 1800))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outputs_file(tmp_path: Path, fake: FakePve, cert: tuple[Path, Path], example_config, example_inventory) -> Path:
    drill = stack_outputs.restore_drill_output(example_config, example_inventory)
    drill["pve"].update(endpoint=f"https://127.0.0.1:{fake.port}/", caFile=str(cert[0]))
    drill["timeouts"].update(
        restoreSeconds=2,
        agentSeconds=1,
        verifySeconds=2,
        startSeconds=2,
        cleanupSeconds=10,
        requestSeconds=1,
        pollSeconds=0.02,
    )
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"restoreDrill": drill, "restoreDrillPveToken": f"{TOKEN_ID}={TOKEN_SECRET}"}))
    return path


def drill(outputs_file: Path, tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    out = io.StringIO()
    code = main(["--outputs", str(outputs_file), "--report-dir", str(tmp_path / "state"),
                 "--textfile-dir", str(tmp_path / "textfile"), *args], out)  # fmt: skip
    return code, out.getvalue(), latest_report(tmp_path)


def latest_report(tmp_path: Path) -> dict[str, Any]:
    reports = sorted((tmp_path / "state" / "reports").glob("*.json"))
    return json.loads(reports[-1].read_text()) if reports else {}


def textfile_metrics(tmp_path: Path, target: str = TARGET) -> dict[str, float]:
    text = (tmp_path / "textfile" / f"obs_restore_drill_{target}.prom").read_text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels == {"target": target}
    }


def assert_safe(fake: FakePve, example_inventory) -> None:
    """No scratch VM is left, and no write ever addressed a source VM."""
    leftovers = [vmid for vmid in fake.vms if 9900 <= vmid <= 9999]
    assert leftovers == [], f"scratch VMs left behind: {leftovers}"
    sources = {t.vmid for t in example_inventory.drill_targets}
    for request in fake.mutations():
        assert not any(f"/qemu/{vmid}" in request.path for vmid in sources), request
        if request.path.endswith("/qemu") and request.method == "POST":
            assert int(request.params["vmid"][0]) not in sources
            assert request.params["unique"] == ["1"] and "force" not in request.params
    assert all(vm.status == "running" for vmid, vm in fake.vms.items() if vmid in sources)


def test_every_target_verified(fake: FakePve, outputs_file: Path, tmp_path: Path, example_inventory) -> None:
    code, out, report = drill(outputs_file, tmp_path, "--all")
    assert code == 0, out
    assert [r["status"] for r in report["results"]] == ["verified"] * len(example_inventory.drill_targets)
    for r in report["results"]:
        assert r["scratchDestroyed"] is True
        assert r["backup"].endswith(
            time.strftime("%Y-%m-%dT", time.gmtime(time.time() - CANARY_AGE + 1800)) + r["backup"][-9:]
        )
        assert CANARY_AGE <= r["rpoSeconds"] < CANARY_AGE + 60
        assert 0 < r["rtoSeconds"] < 30 and r["withinBudget"]
        assert [s["status"] for s in r["steps"]] == ["ok"] * 10
    metrics = textfile_metrics(tmp_path)
    assert metrics["obs_restore_drill_last_status"] == 1
    assert (
        metrics["obs_restore_drill_last_success_timestamp_seconds"]
        == metrics["obs_restore_drill_last_run_timestamp_seconds"]
    )
    assert CANARY_AGE <= metrics["obs_restore_drill_rpo_seconds"] < CANARY_AGE + 60
    assert metrics["obs_restore_drill_scratch_leftover"] == 0
    assert (metrics["obs_restore_drill_rto_budget_seconds"], metrics["obs_restore_drill_rpo_budget_seconds"]) == (
        7200,
        86400,
    )
    assert_safe(fake, example_inventory)
    assert "restore ok" in out and "wait for guest agent ok" in out and "VERIFIED" in out
    markdown = next((tmp_path / "state" / "reports").glob("*.md")).read_text()
    assert f"| {TARGET} | verified | " in markdown and "destroyed |" in markdown
    png = next((tmp_path / "state" / "reports").glob("*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png.name})" in markdown


def test_outcomes_pushed_to_a_real_pushgateway(
    fake: FakePve, outputs_file: Path, tmp_path: Path, pushgateway: str
) -> None:
    corrupt_payload(fake, of_guest_with="/var/lib/postgresql/")
    out = io.StringIO()
    code = main(
        ["--outputs", str(outputs_file), "--all", "--report-dir", str(tmp_path), "--pushgateway", pushgateway], out
    )
    assert code == 1, out.getvalue()
    text = scrape(pushgateway)
    for target, status in (("gitea", 1), ("nextcloud", 1), ("postgres", 0)):
        assert (
            f'obs_restore_drill_last_status{{instance="",job="obs_restore_drill",target="{target}"}} {status}' in text
        )
    assert 'obs_restore_drill_rpo_seconds{instance="",job="obs_restore_drill",target="gitea"}' in text
    assert 'obs_restore_drill_rpo_seconds{instance="",job="obs_restore_drill",target="postgres"}' not in text
    assert not (tmp_path / "textfile").exists()


def test_restored_vm_was_isolated_before_it_started(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    started: list[dict[str, Any]] = []
    original = fake._start

    def spy(node: str, vmid: str, **kw: Any) -> Any:
        started.append(dict(fake.vms[int(vmid)].config))
        return original(node=node, vmid=vmid, **kw)

    fake._start = spy  # type: ignore[method-assign]
    code, out, _ = drill(outputs_file, tmp_path, "--target", TARGET)
    assert code == 0, out
    (config,) = started
    assert config["net0"].endswith(",link_down=1") and "BC:24:11:FE:" in config["net0"], "new MAC, link down"
    assert config["name"] == f"drill-{TARGET}" and config["onboot"] == "0"


def test_existing_scratch_vmid_is_never_used(
    fake: FakePve, outputs_file: Path, tmp_path: Path, example_inventory
) -> None:
    fake.add_guest(9900, "pve1", {})  # somebody else's VM squatting in the scratch range
    code, out, report = drill(outputs_file, tmp_path, "--target", TARGET)
    assert code == 0, out
    assert report["results"][0]["scratchVmid"] == 9901
    assert not [r for r in fake.mutations() if "/qemu/9900" in r.path or r.params.get("vmid") == ["9900"]]
    assert 9900 in fake.vms
    del fake.vms[9900]
    assert_safe(fake, example_inventory)


def test_no_free_scratch_vmid_fails_before_restoring(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    data = json.loads(outputs_file.read_text())
    data["restoreDrill"]["scratch"]["vmidRange"] = [9900, 9904]
    outputs_file.write_text(json.dumps(data))
    for vmid in range(9900, 9905):
        fake.add_guest(vmid, "pve1", {})
    code, _, report = drill(outputs_file, tmp_path, "--target", TARGET)
    assert code == 1
    assert report["results"][0]["failedStep"] == "pick scratch VMID"
    assert "no free VMID" in report["results"][0]["error"]
    assert fake.mutations() == []


Inject = Callable[[FakePve], None]


def without_agent(fake: FakePve) -> None:
    fake.backup_configs.update({volid: {**c, "agent": "0"} for volid, c in fake.backup_configs.items()})


def corrupt_payload(fake: FakePve, of_guest_with: str = "/") -> None:
    """Bit rot in a file the canary wrote (and the manifest covers), in the backups of the guests
    that hold a file under ``of_guest_with``."""
    for files in fake.backup_files.values():
        if not any(p.startswith(of_guest_with) for p in files):
            continue
        for path in [p for p in files if "/var/lib/obs-canary/payload." in p and p.endswith("/1")]:
            files[path] = b"bit rot\n"


def drop_under(fake: FakePve, prefix: str) -> None:
    for files in fake.backup_files.values():
        for path in [p for p in files if p.startswith(prefix)]:
            del files[path]


FAILURES: list[tuple[str, Inject, str, str]] = [
    ("restore-task-error", lambda f: setattr(f, "restore_error", "restore failed: exit code 255"), "restore", "255"),
    ("agent-never-answers", lambda f: setattr(f, "agent_never", True), "wait for guest agent", "did not answer"),
    ("checksum-mismatch", corrupt_payload, "verify checksums", "/1: FAILED"),
    ("restored-path-missing", lambda f: drop_under(f, "/etc/"), "check restored paths", "presence of"),
    ("canary-missing", lambda f: corrupt(f, CANARY, delete=True), "read canary", "No such file"),
    ("http-500-on-start", lambda f: f.fail("POST", r"/status/start$"), "start", "HTTP 500"),
    ("http-500-on-exec-status", lambda f: f.fail("GET", r"/agent/exec-status$"), "read canary", "HTTP 500"),
    ("timeout-on-restore-post", lambda f: f.fail("POST", r"/qemu$", status=0, delay=1.5), "restore", "timed out"),
    (
        "timeout-on-config",
        lambda f: f.fail("GET", r"/99\d\d/config$", status=0, delay=1.5),
        "isolate network",
        "timed out",
    ),
    ("restore-never-finishes", lambda f: setattr(f, "restore_seconds", 1e9), "restore", "still running"),
    ("guest-without-agent", without_agent, "isolate network", "no guest agent"),
    (
        "malformed-answer-is-a-bug-not-a-leak",
        lambda f: setattr(f, "_exec", lambda **_: (200, "OK", {})),
        "read canary",
        "internal error KeyError",
    ),
]


def test_live_data_changed_after_the_canary_still_verifies(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    """Databases and app data change between the canary and the backup: the drill compares only
    what the canary owns, and checks the data paths are there."""
    corrupt(fake, "/var/lib/postgresql/important.conf")
    corrupt(fake, "/etc/important.conf")
    out = io.StringIO()
    assert main(["--outputs", str(outputs_file), "--all", "--report-dir", str(tmp_path)], out) == 0, out.getvalue()


def corrupt(fake: FakePve, path: str, delete: bool = False) -> None:
    for files in fake.backup_files.values():
        if path in files:
            if delete:
                del files[path]
            else:
                files[path] = b"bit rot\n"


@pytest.mark.parametrize("case", FAILURES, ids=[f[0] for f in FAILURES])
def test_failures_destroy_the_scratch_vm(
    fake: FakePve, outputs_file: Path, tmp_path: Path, example_inventory, case: tuple[str, Inject, str, str]
) -> None:
    _, inject, step, message = case
    inject(fake)
    code, out, report = drill(outputs_file, tmp_path, "--target", TARGET)
    assert code == 1, out
    (result,) = report["results"]
    assert result["status"] == "failed"
    assert result["failedStep"] == step, result
    assert message in result["error"]
    assert result["scratchDestroyed"] in (True, None)
    assert result["rtoSeconds"] is None
    metrics = textfile_metrics(tmp_path)
    assert metrics["obs_restore_drill_last_status"] == 0
    assert metrics["obs_restore_drill_last_success_timestamp_seconds"] == 0
    assert metrics["obs_restore_drill_scratch_leftover"] == 0
    assert "obs_restore_drill_rto_seconds" not in metrics
    assert f"{step} FAILED" in out
    assert_safe(fake, example_inventory)


def test_transient_500s_are_retried_and_cleanup_retries(
    fake: FakePve, outputs_file: Path, tmp_path: Path, example_inventory
) -> None:
    fake.fail("GET", r"/agent/exec-status$", times=2)
    fake.fail("GET", r"/storage/pbs-main/content$", times=1)
    fake.fail("DELETE", r"/qemu/99\d\d$", times=2)
    code, out, report = drill(outputs_file, tmp_path, "--target", TARGET)
    assert code == 0, out
    assert report["results"][0]["scratchDestroyed"] is True
    assert len([r for r in fake.requests if r.method == "DELETE" and "/qemu/99" in r.path]) == 3
    assert_safe(fake, example_inventory)


def test_scratch_vm_that_cannot_be_destroyed_is_reported(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    fake.fail("DELETE", r"/qemu/99\d\d$")
    code, _, report = drill(outputs_file, tmp_path, "--target", TARGET)
    assert code == 3
    result = report["results"][0]
    assert result["status"] == "verified" and result["scratchDestroyed"] is False
    assert f"qm destroy {result['scratchVmid']}" in result["cleanupError"]
    assert textfile_metrics(tmp_path)["obs_restore_drill_scratch_leftover"] == 1


def test_failure_keeps_the_last_success(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    assert drill(outputs_file, tmp_path, "--target", TARGET)[0] == 0
    before = textfile_metrics(tmp_path)
    fake.agent_never = True
    assert drill(outputs_file, tmp_path, "--target", TARGET)[0] == 1
    after = textfile_metrics(tmp_path)
    assert after["obs_restore_drill_last_status"] == 0
    assert (
        after["obs_restore_drill_last_run_timestamp_seconds"] > before["obs_restore_drill_last_run_timestamp_seconds"]
    )
    for kept in ("last_success_timestamp_seconds", "rto_seconds", "rpo_seconds"):
        assert after[f"obs_restore_drill_{kept}"] == before[f"obs_restore_drill_{kept}"]


def test_due_skips_recently_verified_targets(fake: FakePve, outputs_file: Path, tmp_path: Path) -> None:
    assert drill(outputs_file, tmp_path, "--target", TARGET)[0] == 0
    calls = len(fake.requests)
    code, out, _ = drill(outputs_file, tmp_path, "--target", TARGET, "--due")
    assert code == 0 and "no drill is due" in out
    assert len(fake.requests) == calls


def test_one_drill_at_a_time(outputs_file: Path, tmp_path: Path) -> None:
    import fcntl

    (tmp_path / "state").mkdir()
    with (tmp_path / "state" / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, _ = drill(outputs_file, tmp_path, "--all")
    assert code == 4


INTERRUPTS = [
    (signum, during)
    for signum in (signal.SIGINT, signal.SIGTERM)
    for during in ("restore ...", "wait for guest agent ...")
]


@pytest.mark.parametrize("interrupt", INTERRUPTS, ids=[f"{s.name}-during-{d.split()[0]}" for s, d in INTERRUPTS])
def test_interrupt_destroys_the_scratch_vm(
    fake: FakePve, outputs_file: Path, tmp_path: Path, example_inventory, interrupt: tuple[int, str]
) -> None:
    signum, during = interrupt
    fake.restore_seconds = 1e9 if during.startswith("restore") else None
    fake.agent_never = during.startswith("wait")
    data = json.loads(outputs_file.read_text())
    data["restoreDrill"]["timeouts"].update(agentSeconds=30, restoreSeconds=30)
    outputs_file.write_text(json.dumps(data))
    command = [sys.executable, "-m", "tools.restore_drill", "--outputs", str(outputs_file), "--all",
               "--report-dir", str(tmp_path / "state"), "--textfile-dir", str(tmp_path / "textfile")]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.rstrip().endswith(f"{TARGET}: {during}"):
            time.sleep(0.2)
            proc.send_signal(signum)
            break
    rest, _ = proc.communicate(timeout=60)
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    report = latest_report(tmp_path)
    assert [r["target"] for r in report["results"]] == [TARGET], "stops after the interrupted target"
    assert report["results"][0]["status"] == "interrupted"
    assert report["results"][0]["scratchDestroyed"] is True
    assert textfile_metrics(tmp_path)["obs_restore_drill_last_status"] == 0
    assert_safe(fake, example_inventory)

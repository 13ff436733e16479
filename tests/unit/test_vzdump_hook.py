"""The vzdump hook, run for real through every phase with the environment vzdump gives it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from components import names
from components.render import vzdump_hook

GUEST_PHASES = ("backup-start", "backup-end", "backup-abort", "log-end", "pre-stop", "pre-restart", "post-restart")


def require(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} is required for this test (apt-get install it; see .ci/run)"
    return path


@pytest.fixture
def hook(tmp_path: Path) -> Path:
    path = tmp_path / "vzdump-hook.sh"
    path.write_text(vzdump_hook.render_hook("pve1"))
    path.chmod(0o755)
    return path


class Vzdump:
    """Calls the hook the way vzdump does: argv and the documented environment per phase."""

    def __init__(self, hook: Path, root: Path, storage: str | None = "pbs-main", dumpdir: str | None = None) -> None:
        self.hook = hook
        self.textfile = root / "textfile"
        self.state = root / "state"
        self.storage = storage
        self.dumpdir = dumpdir

    def env(self, phase: str, vmid: str | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "OBSSTACK_TEXTFILE_DIR": str(self.textfile),
            "OBSSTACK_STATE_DIR": str(self.state),
        }
        if self.storage is not None:
            env["STOREID"] = self.storage
        if self.dumpdir is not None and phase != "job-init":
            env["DUMPDIR"] = self.dumpdir
        if vmid is not None:
            env.update({"VMTYPE": "qemu", "HOSTNAME": f"guest{vmid}"})
            if phase == "backup-end":
                env["TARGET"] = (
                    f"vm/{vmid}/2026-03-01T02:00:00Z" if self.dumpdir is None else f"{self.dumpdir}/x.vma.zst"
                )
            if phase == "log-end" and self.dumpdir is not None:
                env["LOGFILE"] = f"{self.dumpdir}/vzdump-qemu-{vmid}.log"
        return env

    def call(self, phase: str, vmid: str | None = None, mode: str = "snapshot") -> subprocess.CompletedProcess[str]:
        argv = [str(self.hook), phase] + ([mode, vmid] if vmid is not None else [])
        return subprocess.run(argv, env=self.env(phase, vmid), capture_output=True, text=True, timeout=30, check=False)

    def guest(self, vmid: str, ok: bool) -> None:
        for phase in ("backup-start", "backup-end" if ok else "backup-abort", "log-end"):
            assert self.call(phase, vmid).returncode == 0

    def job(self, outcomes: dict[str, bool], aborted: bool = False) -> None:
        """As PVE::VZDump does: job-end even when guests failed; job-abort only if the job dies."""
        for phase in ("job-init", "job-start"):
            assert self.call(phase).returncode == 0
        for vmid, ok in outcomes.items():
            self.guest(vmid, ok)
        assert self.call("job-abort" if aborted else "job-end").returncode == 0

    @property
    def prom(self) -> Path:
        return self.textfile / vzdump_hook.PROM_FILE

    def samples(self) -> dict[str, float]:
        out = {}
        for line in self.prom.read_text().splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                out[key] = float(value)
        return out


def check_metrics(path: Path) -> None:
    promtool = require("promtool")
    argv = [promtool, "check", "metrics"]
    result = subprocess.run(argv, input=path.read_text(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def series(name: str, vmid: str, storage: str = "pbs-main") -> str:
    return f'{name}{{vmid="{vmid}",node="pve1",storage="{storage}"}}'


@pytest.mark.parametrize(
    "script",
    [
        vzdump_hook.render_hook("pve1"),
        vzdump_hook.wire_script("pve1"),
        vzdump_hook.uninstall_script("pve1"),
        vzdump_hook.render_dispatcher(),
    ],
    ids=["hook", "wire", "uninstall", "dispatcher"],
)
def test_shellcheck(tmp_path: Path, script: str) -> None:
    path = tmp_path / "script.sh"
    path.write_text(script)
    result = subprocess.run([require("shellcheck"), "-x", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("storage", "dumpdir", "label"),
    [("pbs-main", None, "pbs-main"), ("local", "/var/lib/vz/dump", "local"), (None, "/mnt/dump", "dumpdir")],
    ids=["pbs-storage", "dir-storage", "dumpdir-only"],
)
def test_job_with_success_and_failure(hook: Path, tmp_path: Path, storage, dumpdir, label: str) -> None:
    vz = Vzdump(hook, tmp_path, storage, dumpdir)
    before = time.time()
    vz.job({"110": True, "121": False})
    samples = vz.samples()
    assert samples[series("obs_backup_last_status", "110", label)] == 1
    assert samples[series("obs_backup_last_status", "121", label)] == 0
    assert before - 1 <= samples[series("obs_backup_last_success_timestamp_seconds", "110", label)] <= time.time() + 1
    assert series("obs_backup_last_success_timestamp_seconds", "121", label) not in samples
    assert 0 <= samples[series("obs_backup_last_duration_seconds", "110", label)] < 30
    assert samples['obs_backup_job_last_status{node="pve1"}'] == 0
    assert before - 1 <= samples['obs_backup_job_last_end_timestamp_seconds{node="pve1"}'] <= time.time() + 1
    check_metrics(vz.prom)


def test_successful_job_and_a_failure_keeps_last_success(hook: Path, tmp_path: Path) -> None:
    vz = Vzdump(hook, tmp_path)
    vz.job({"110": True})
    first = vz.samples()
    assert first['obs_backup_job_last_status{node="pve1"}'] == 1
    vz.job({"110": False})
    second = vz.samples()
    assert second[series("obs_backup_last_status", "110")] == 0
    success = series("obs_backup_last_success_timestamp_seconds", "110")
    assert second[success] == first[success]
    assert second['obs_backup_job_last_status{node="pve1"}'] == 0
    check_metrics(vz.prom)


@pytest.mark.parametrize(
    ("outcomes", "aborted", "status"),
    [
        ({"110": True, "121": True}, False, 1),
        ({"110": True, "121": False}, False, 0),
        ({"110": True}, True, 0),
        ({}, False, 1),
    ],
    ids=["all-ok", "one-guest-failed-job-end", "job-aborted", "empty-job"],
)
def test_job_status(hook: Path, tmp_path: Path, outcomes: dict[str, bool], aborted: bool, status: int) -> None:
    vz = Vzdump(hook, tmp_path)
    vz.job({"130": False})  # an earlier failed job must not leak into the next one
    vz.job(outcomes, aborted=aborted)
    assert vz.samples()['obs_backup_job_last_status{node="pve1"}'] == status
    check_metrics(vz.prom)


def test_failure_after_backup_end_keeps_the_restore_point(hook: Path, tmp_path: Path) -> None:
    # vzdump runs backup-end inside its eval; a later step (notes, protection flag, prune) can
    # still fail the guest, and then backup-abort follows backup-end for the same guest.
    vz = Vzdump(hook, tmp_path)
    for phase in ("job-start", "backup-start", "backup-end", "backup-abort", "log-end", "job-end"):
        vmid = None if phase.startswith("job") else "110"
        assert vz.call(phase, vmid).returncode == 0
    samples = vz.samples()
    assert samples[series("obs_backup_last_status", "110")] == 0
    assert series("obs_backup_last_success_timestamp_seconds", "110") in samples
    assert samples['obs_backup_job_last_status{node="pve1"}'] == 0


def test_duration_is_measured_from_backup_start(hook: Path, tmp_path: Path) -> None:
    vz = Vzdump(hook, tmp_path)
    vz.call("backup-start", "130")
    time.sleep(2.1)
    vz.call("backup-end", "130")
    assert vz.samples()[series("obs_backup_last_duration_seconds", "130")] >= 2


@pytest.mark.parametrize(
    "argv",
    [["job-init"], ["log-end", "snapshot", "110"], ["pre-stop", "stop", "110"],
     ["pre-restart", "stop", "110"], ["post-restart", "stop", "110"], ["not-a-phase"], []],
    ids=["job-init", "log-end", "pre-stop", "pre-restart", "post-restart", "unknown", "no-args"],
)  # fmt: skip
def test_other_phases_write_nothing_and_exit_zero(hook: Path, tmp_path: Path, argv: list[str]) -> None:
    vz = Vzdump(hook, tmp_path)
    env = vz.env(argv[0] if argv else "")
    result = subprocess.run([str(hook), *argv], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert not vz.prom.exists()


def test_never_fails_a_backup_when_metrics_cannot_be_written(hook: Path, tmp_path: Path) -> None:
    vz = Vzdump(hook, tmp_path)
    vz.textfile.write_text("a file where the directory should be")
    for phase, vmid in (("backup-start", "110"), ("backup-end", "110"), ("job-end", None)):
        result = vz.call(phase, vmid)
        assert result.returncode == 0
        assert "backup itself is not affected" in result.stderr


@pytest.mark.parametrize(
    ("storeid", "label"),
    [("pbs__main", "pbs__main"), ("odd/store:1", "odd_store_1"), ('quo"te', "quo_te")],
    ids=["double-underscore", "path-characters", "quote"],
)
def test_storage_label_is_sanitized(hook: Path, tmp_path: Path, storeid: str, label: str) -> None:
    vz = Vzdump(hook, tmp_path, storage=storeid)
    vz.guest("110", ok=True)
    assert vz.samples()[series("obs_backup_last_status", "110", label)] == 1
    check_metrics(vz.prom)


def test_bad_vmid_is_ignored(hook: Path, tmp_path: Path) -> None:
    vz = Vzdump(hook, tmp_path)
    result = vz.call("backup-end", "110; rm -rf /")
    assert result.returncode == 0
    assert "ignored" in result.stderr
    assert not list((vz.state / "guests").iterdir())


def test_writes_are_atomic_and_leave_no_temp_files(hook: Path, tmp_path: Path) -> None:
    vz = Vzdump(hook, tmp_path)
    vz.job({"110": True, "121": True, "131": False})
    assert sorted(p.name for p in vz.textfile.iterdir()) == [vzdump_hook.PROM_FILE]
    assert oct(vz.prom.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in vz.state.rglob(".write.*")]
    text = hook.read_text()
    assert re.search(r'mktemp "\$TEXTFILE_DIR/\.', text) and 'mv -f "$tmp" "$PROM_FILE"' in text


# --- install over SSH: idempotent, refuses to clobber another hook, uninstall keeps backups ----


def run_script(script: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "OBSSTACK_ROOT": str(root)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=False)


def install_hook(root: Path, where: vzdump_hook.Placement = vzdump_hook.LEGACY) -> Path:
    """What the install path leaves on the node: the dispatcher and the stack's hook, executable."""
    for path, content in (
        (vzdump_hook.HOOK_PATH, vzdump_hook.render_dispatcher()),
        (where.hook_file, vzdump_hook.render_hook("pve1", where)),
    ):
        file = root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
        file.chmod(0o755)
    return root / where.hook_file.lstrip("/")


def test_wiring_is_idempotent(tmp_path: Path) -> None:
    conf = tmp_path / "etc/vzdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("# vzdump default settings\nbwlimit: 100000\n")
    install_hook(tmp_path)
    first = run_script(vzdump_hook.wire_script("pve1"), tmp_path)
    assert first.returncode == 0, first.stderr
    snapshot = conf.read_text()
    assert snapshot.count(f"script: {vzdump_hook.HOOK_PATH}") == 1 and "bwlimit: 100000" in snapshot
    second = run_script(vzdump_hook.wire_script("pve1"), tmp_path)
    assert second.returncode == 0 and "already wired" in second.stdout
    assert conf.read_text() == snapshot


def test_wiring_refuses_a_hook_that_is_not_installed(tmp_path: Path) -> None:
    conf = tmp_path / "etc/vzdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("bwlimit: 1\n")
    result = run_script(vzdump_hook.wire_script("pve1"), tmp_path)
    assert result.returncode == 1 and "is not installed" in result.stderr
    assert conf.read_text() == "bwlimit: 1\n"


def test_wiring_refuses_to_replace_another_hook(tmp_path: Path) -> None:
    conf = tmp_path / "etc/vzdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("script: /usr/local/bin/my-hook.pl\n")
    install_hook(tmp_path)
    result = run_script(vzdump_hook.wire_script("pve1"), tmp_path)
    assert result.returncode == 1
    assert "/usr/local/bin/my-hook.pl" in result.stderr and "fix:" in result.stderr
    assert conf.read_text() == "script: /usr/local/bin/my-hook.pl\n"


def test_uninstall_unwires_and_keeps_state(tmp_path: Path) -> None:
    conf = tmp_path / "etc/vzdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("bwlimit: 1\n")
    install_hook(tmp_path)
    assert run_script(vzdump_hook.wire_script("pve1"), tmp_path).returncode == 0
    state = tmp_path / vzdump_hook.STATE_DIR.lstrip("/") / "guests/pbs-main__110"
    state.write_text("status=1\n")
    result = run_script(vzdump_hook.uninstall_script("pve1"), tmp_path)
    assert result.returncode == 0 and "left in place" in result.stdout
    assert conf.read_text() == "bwlimit: 1\n"
    assert state.exists()


def test_one_hook_per_pve_node_with_its_node_label(example_config, example_inventory) -> None:
    shipped = vzdump_hook.files(example_config, example_inventory)
    where = vzdump_hook.placement(example_config)
    assert {f.host for f in shipped} == {n.name for n in example_config.pve_nodes()}
    assert {f.path for f in shipped} == {vzdump_hook.HOOK_PATH, where.hook_file}
    for f in shipped:
        assert f.mode == "0755"
        if f.path == where.hook_file:
            assert f'NODE="{f.host}"' in f.content and 'ONLY_STORAGE="pbs-main"' in f.content


# --- several stacks on one node: one `script:` line, one hook per stack --------------------------

STAGING = vzdump_hook.Placement.of(names.StackNames(scope="staging", legacy=False), "pbs-staging")
PROD = vzdump_hook.Placement.of(names.LEGACY, "pbs-main")


def run_through_dispatcher(root: Path, storage: str, phases: list[list[str]]) -> None:
    """vzdump calling the one `script:` line of vzdump.conf, with the job's STOREID."""
    dispatcher = root / vzdump_hook.HOOK_PATH.lstrip("/")
    env = {
        "PATH": os.environ["PATH"],
        "OBSSTACK_HOOK_DIR": str(root / vzdump_hook.HOOK_DIR.lstrip("/")),
        "STOREID": storage,
    }
    for argv in phases:
        result = subprocess.run([str(dispatcher), *argv], env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


def two_stacks_wired(root: Path) -> Path:
    conf = root / "etc/vzdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("bwlimit: 1\n")
    for where in (PROD, STAGING):
        hook = install_hook(root, where)
        # The hook's own paths are absolute: point this stack's defaults below root, once.
        text = hook.read_text().replace(f"-{where.state_dir}}}", f"-{root}{where.state_dir}}}")
        hook.write_text(text.replace(f"-{vzdump_hook.TEXTFILE_DIR}}}", f"-{root}/textfile}}"))
        result = run_script(vzdump_hook.wire_script("pve1", where), root)
        assert result.returncode == 0, result.stderr
    return conf


def test_two_stacks_share_one_script_line_and_record_only_their_own_jobs(tmp_path: Path) -> None:
    conf = two_stacks_wired(tmp_path)
    assert conf.read_text().count(f"script: {vzdump_hook.HOOK_PATH}") == 1
    nightly = [["job-start"], ["backup-start", "snapshot", "{v}"], ["backup-end", "snapshot", "{v}"], ["job-end"]]
    for storage, vmid in (("pbs-main", "110"), ("pbs-staging", "610")):
        run_through_dispatcher(tmp_path, storage, [[a.format(v=vmid) for a in argv] for argv in nightly])
    prod = (tmp_path / "textfile" / PROD.prom_file).read_text()
    staging = (tmp_path / "textfile" / STAGING.prom_file).read_text()
    assert PROD.prom_file != STAGING.prom_file and PROD.state_dir != STAGING.state_dir
    assert 'vmid="110"' in prod and 'vmid="610"' not in prod and 'storage="pbs-staging"' not in prod
    assert 'vmid="610"' in staging and 'vmid="110"' not in staging


@pytest.mark.parametrize(("removed", "kept"), [(STAGING, PROD), (PROD, STAGING)], ids=["staging", "prod"])
def test_removing_one_stack_leaves_the_other_wired(
    tmp_path: Path, removed: vzdump_hook.Placement, kept: vzdump_hook.Placement
) -> None:
    conf = two_stacks_wired(tmp_path)
    result = run_script(vzdump_hook.uninstall_script("pve1", removed), tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / removed.hook_file.lstrip("/")).exists()
    assert (tmp_path / kept.hook_file.lstrip("/")).exists()
    assert (tmp_path / vzdump_hook.HOOK_PATH.lstrip("/")).exists()
    assert conf.read_text() == f"bwlimit: 1\nscript: {vzdump_hook.HOOK_PATH}\n"
    # The last stack's removal takes the line and the dispatcher with it.
    assert run_script(vzdump_hook.uninstall_script("pve1", kept), tmp_path).returncode == 0
    assert conf.read_text() == "bwlimit: 1\n"
    assert not (tmp_path / vzdump_hook.HOOK_PATH.lstrip("/")).exists()

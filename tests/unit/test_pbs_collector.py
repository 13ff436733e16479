"""The PBS collector, run for real against a fake proxmox-backup-manager printing the task list.

The fake encodes what the real CLI and server do (proxmox/proxmox-backup):

- `task list` (src/bin/proxmox-backup-manager.rs, `task_list`): `--limit` is an integer with
  minimum 1, maximum 1000, default 50; `--all` also lists stopped tasks. A value out of range fails
  parameter verification (proxmox/proxmox-rs, proxmox-schema/src/schema.rs: "value must have a
  maximum value of {} (got {})") and the CLI exits with -1, i.e. status 255
  (proxmox-router/src/cli/command.rs, `run_async_cli_command`).
- worker ids: garbage collection `<store>` (src/server/gc_job.rs), prune job `<store>` or
  `<store>:<ns>` (src/server/prune_job.rs, `do_prune_job`), verify job `<store>:<job id>`
  (src/server/verify_job.rs).
- status: "OK", "WARNINGS: <n>", or the error message itself (proxmox-rest-server worker_task.rs,
  `impl Display for TaskState`).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.render import pbs_collector
from tests.unit.test_vzdump_hook import check_metrics, require

T0 = 1_772_000_000
CLI_TASK_LIMIT_MAX = 1000  # src/bin/proxmox-backup-manager.rs, task_list: `maximum: 1000`


def task(worker_type: str, worker_id: str, end: int | None, status: str | None) -> dict[str, Any]:
    """A TaskListItem as `proxmox-backup-manager task list --output-format json` prints it."""
    item: dict[str, Any] = {
        "upid": f"UPID:pbs1:00001234:0000ABCD:00000000:{end or T0:08X}:{worker_type}:{worker_id}:root@pam:",
        "node": "pbs1",
        "pid": 4660,
        "pstart": 43981,
        "starttime": (end or T0) - 60,
        "worker_type": worker_type,
        "worker_id": worker_id,
        "user": "root@pam",
    }
    if end is not None:
        item.update({"endtime": end, "status": status})
    return item


FAKE_TASK_LIST = r"""
import json, os, sys
tasks_file, calls, fail, limit_max = sys.argv[1:5]
args = sys.argv[5:]
with open(calls, "a") as log:
    log.write(" ".join(args) + "\n")

def die(msg):
    # proxmox-router: the error is printed and the process exits with -1 (status 255)
    print(f"Error: {msg}", file=sys.stderr)
    sys.exit(255)

if args[:2] != ["task", "list"]:
    die(f"unsupported: {args}")
opts, rest = {}, args[2:]
while rest:
    name = rest.pop(0)
    if name == "--all":
        opts["all"] = "true"
    elif name in ("--limit", "--output-format"):
        if not rest:
            die(f"missing argument for option '{name[2:]}'")
        opts[name[2:]] = rest.pop(0)
    else:
        die(f"schema does not have a parameter '{name}'")
try:
    limit = int(opts.get("limit", "50"))
except ValueError:
    die("parameter verification failed - 'limit': Expected integer value.")
if limit < 1:
    die(f"parameter verification failed - 'limit': value must have a minimum value of 1 (got {limit})")
if limit > int(limit_max):
    die(f"parameter verification failed - 'limit': value must have a maximum value of {limit_max} (got {limit})")
if opts.get("output-format") != "json":
    die("this fake only prints --output-format json")
if os.path.exists(fail):
    die("connection refused")
tasks = json.load(open(tasks_file))
if "all" not in opts:
    tasks = [t for t in tasks if "endtime" not in t]  # without --all: running tasks only
# newest first, at most `limit` (proxmox-rest-server worker_task.rs, TaskListInfoIterator: pop_back
# from the active list, then the rotated archive; src/api2/node/tasks.rs list_tasks stops at limit)
tasks.sort(key=lambda t: t["starttime"], reverse=True)
print(json.dumps(tasks[:limit]))
"""


FAKE_CLIENT = r"""
import json, os, sys
root, args = sys.argv[1], sys.argv[2:]
# proxmox-backup-client reads the secret from PBS_PASSWORD and trusts the server's certificate by
# PBS_FINGERPRINT (PBS docs, backup-client.rst, Environment Variables); an API token logs in as
# <user>@<realm>!<token> in the repository (same page, Backup Repository Locations).
with open(os.path.join(root, "client-calls.log"), "a") as log:
    log.write(json.dumps({"args": args, "password": os.environ.get("PBS_PASSWORD"),
                          "fingerprint": os.environ.get("PBS_FINGERPRINT")}) + "\n")
if args[:2] != ["snapshot", "list"] or "--repository" not in args:
    sys.exit(f"unsupported: {args}")
repository = args[args.index("--repository") + 1]
store = repository.rsplit(":", 1)[1]
print(open(os.path.join(root, f"snapshots-{store}.json")).read())
"""


class FakePbs:
    """Puts a fake proxmox-backup-manager first on PATH; `task list` prints `tasks` like the real CLI."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.tasks_file = root / "tasks.json"
        self.tasks_file.write_text("[]")
        self.calls = root / "calls.log"
        impl = root / "fake_pbm.py"
        impl.write_text(FAKE_TASK_LIST)
        fake = self.bin / "proxmox-backup-manager"
        argv = f'"{impl}" "{self.tasks_file}" "{self.calls}" "{root}/fail" {CLI_TASK_LIMIT_MAX}'
        fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S -E {argv} "$@"\n')
        fake.chmod(0o755)
        self.textfile = root / "textfile"
        self.state = root / "state"
        client = root / "fake_client.py"
        client.write_text(FAKE_CLIENT)
        (self.bin / "proxmox-backup-client").write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -S -E "{client}" "{root}" "$@"\n'
        )
        (self.bin / "proxmox-backup-client").chmod(0o755)
        self.token = root / "token"
        self.token.write_text("metrics-secret\n")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "proxmox-backup-manager"), *args], capture_output=True, text=True, timeout=30, check=False
        )

    def run(
        self, script: Path, tasks: list[dict[str, Any]], datastore_root: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.tasks_file.write_text(json.dumps(tasks))
        env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "OBSSTACK_TEXTFILE_DIR": str(self.textfile),
            "OBSSTACK_STATE_DIR": str(self.state),
            "OBSSTACK_DATASTORE_ROOT": str(datastore_root or self.root / "no-datastores"),
            "OBSSTACK_TOKEN_FILE": str(self.token),
        }
        return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30, check=False)

    @property
    def prom(self) -> Path:
        return self.textfile / pbs_collector.PROM_FILE

    def samples(self) -> dict[str, float]:
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in self.prom.read_text().splitlines()
            if line and not line.startswith("#")
        }


@pytest.fixture
def collector(tmp_path: Path, example_config) -> Path:
    require("jq")
    path = tmp_path / "pbs-collector.sh"
    path.write_text(pbs_collector.render_script(example_config.pbs))
    path.chmod(0o755)
    return path


def key(name: str, datastore: str, job_type: str) -> str:
    return f'{name}{{datastore="{datastore}",job_type="{job_type}"}}'


SUCCESS = "obs_pbs_job_last_success_timestamp_seconds"
STATUS = "obs_pbs_job_last_status"

HISTORY = [
    task("garbage_collection", "main", T0 + 100, "OK"),
    task("garbage_collection", "main", T0 + 900, "unable to read chunk"),
    task("prunejob", "main", T0 + 200, "OK"),  # obsstack-prune-main: no --ns, worker id is the store
    task("prunejob", "main", T0 + 300, "WARNINGS: 1"),
    task("verificationjob", "main:obsstack-verify-new-main", T0 + 400, "OK"),
    task("verificationjob", "main:obsstack-verify-full-main", T0 + 500, "OK"),
    task("garbage_collection", "offsite-copy", T0 + 600, "OK"),
    task("verificationjob", "offsite-copy:obsstack-verify-new-offsite-copy", None, None),  # still running
    task("backup", "vm/110", T0 + 700, "OK"),
    task("garbage_collection", "someone-elses-store", T0 + 800, "OK"),
    task("prunejob", "someone-elses-store", T0 + 810, "OK"),
    task("prunejob", "main:tenant-a", T0 + 950, "OK"),  # a hand-made prune job in namespace tenant-a
    task("prune", "main", T0 + 960, "OK"),  # a manual prune of the datastore, not a job
    task("verificationjob", "main:a-hand-made-verify", T0 + 970, "verification failed - job aborted"),
]


@pytest.mark.parametrize(
    ("name", "datastore", "job_type", "value"),
    [
        (SUCCESS, "main", "gc", T0 + 100),
        (STATUS, "main", "gc", 0),
        (SUCCESS, "main", "prune", T0 + 200),
        (STATUS, "main", "prune", 0),
        (SUCCESS, "main", "verify", T0 + 500),
        (STATUS, "main", "verify", 1),
        (SUCCESS, "offsite-copy", "gc", T0 + 600),
        (STATUS, "offsite-copy", "gc", 1),
    ],
    ids=[
        "main-gc-success",
        "main-gc-failed-last",
        "main-prune-success",
        "main-prune-warnings-are-failure",
        "main-verify-newest-of-both-jobs",
        "main-verify-ok",
        "offsite-gc-success",
        "offsite-gc-ok",
    ],
)
def test_metrics_from_task_list(
    tmp_path: Path, collector: Path, name: str, datastore: str, job_type: str, *, value: int
) -> None:
    fake = FakePbs(tmp_path)
    result = fake.run(collector, HISTORY)
    assert result.returncode == 0, result.stderr
    assert fake.samples()[key(name, datastore, job_type)] == value


def test_only_managed_jobs_and_finished_tasks_count(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, HISTORY).returncode == 0
    samples = fake.samples()
    assert not [k for k in samples if "someone-elses-store" in k]
    # neither the namespaced hand-made prune job nor the manual prune (both OK and newer) counts
    assert samples[key(SUCCESS, "main", "prune")] == T0 + 200
    assert samples[key(STATUS, "main", "prune")] == 0
    assert samples[key(STATUS, "main", "verify")] == 1  # a hand-made verify job failing is not ours
    assert key(SUCCESS, "offsite-copy", "verify") not in samples  # only a running task so far
    check_metrics(fake.prom)


def test_state_survives_tasks_rotating_out_of_the_list(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, HISTORY).returncode == 0
    first = fake.samples()
    later = [task("garbage_collection", "main", T0 + 2000, "OK")]
    assert fake.run(collector, later).returncode == 0
    second = fake.samples()
    assert second[key(SUCCESS, "main", "gc")] == T0 + 2000
    assert second[key(STATUS, "main", "gc")] == 1
    assert second[key(SUCCESS, "main", "verify")] == first[key(SUCCESS, "main", "verify")]
    check_metrics(fake.prom)


def test_fake_cli_limit_is_the_real_one(tmp_path: Path) -> None:
    fake = FakePbs(tmp_path)
    ok = fake.cli("task", "list", "--all", "--limit", str(CLI_TASK_LIMIT_MAX), "--output-format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == []
    too_many = fake.cli("task", "list", "--all", "--limit", str(CLI_TASK_LIMIT_MAX + 1), "--output-format", "json")
    assert too_many.returncode == 255
    assert f"value must have a maximum value of {CLI_TASK_LIMIT_MAX}" in too_many.stderr


def test_collector_writes_metrics_with_a_limit_the_cli_accepts(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    result = fake.run(collector, HISTORY)
    assert result.returncode == 0, result.stderr
    assert fake.samples(), "no metrics written"
    check_metrics(fake.prom)
    (call,) = fake.calls.read_text().splitlines()
    limit = int(call.split("--limit ")[1].split()[0])
    assert 1 <= limit <= CLI_TASK_LIMIT_MAX
    assert "--all" in call.split()  # finished tasks too, not only running ones


def test_state_keeps_tasks_pushed_out_of_the_cli_window(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, HISTORY).returncode == 0
    first = fake.samples()
    newer = [task("backup", f"vm/{i}", T0 + 10_000 + i, "OK") for i in range(CLI_TASK_LIMIT_MAX)]
    result = fake.run(collector, [*HISTORY, *newer])  # the CLI lists only the newest `--limit` tasks
    assert result.returncode == 0, result.stderr
    assert fake.samples() == first


def test_failed_prune_job_task_is_a_failure_for_its_datastore(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    tasks = [
        task("prunejob", "main", T0 + 100, "OK"),
        task("prunejob", "main", T0 + 200, "removing backup snapshot vm/110/2026-01-01T00:00:00Z failed"),
        task("prunejob", "offsite-copy", T0 + 150, "OK"),
    ]
    result = fake.run(collector, tasks)
    assert result.returncode == 0, result.stderr
    samples = fake.samples()
    assert samples[key(STATUS, "main", "prune")] == 0
    assert samples[key(SUCCESS, "main", "prune")] == T0 + 100
    assert samples[key(STATUS, "offsite-copy", "prune")] == 1
    assert samples[key(SUCCESS, "offsite-copy", "prune")] == T0 + 150


def test_matching_uses_the_worker_ids_pbs_records(example_config) -> None:
    jobs = {(j.job_type, j.job_id): j for j in pbs_collector.maintenance_jobs(example_config.pbs)}
    for ds in example_config.pbs.datastores:
        assert jobs[("gc", ds.name)].worker_id == ds.name
        prune = jobs[("prune", pbs_collector.prune_job_id(ds.name))]
        assert (prune.worker_type, prune.worker_id) == ("prunejob", ds.name)
        for job_id in pbs_collector.verify_job_ids(ds.name):
            assert jobs[("verify", job_id)].worker_id == f"{ds.name}:{job_id}"


def test_empty_task_list_gives_valid_empty_metrics(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, []).returncode == 0
    assert fake.samples() == {"pbs_up": 1.0}
    check_metrics(fake.prom)


def test_an_api_refusing_the_snapshot_listing_is_pbs_up_0_and_keeps_the_job_outcomes(
    tmp_path: Path, collector: Path, example_config
) -> None:
    """PbsApiDown reads pbs_up: a listing the API refuses (down, the token revoked) must not stop the
    collector under set -e, or the job outcomes and usage would go stale with it."""
    fake = FakePbs(tmp_path)
    root = tmp_path / "root"
    main = next(ds for ds in example_config.pbs.datastores if ds.name == "main")
    (root / main.path.lstrip("/")).mkdir(parents=True)  # no snapshots-main.json: the fake client fails
    result = fake.run(collector, HISTORY, datastore_root=root)
    assert result.returncode == 0, result.stderr
    samples = fake.samples()
    assert samples["pbs_up"] == 0
    assert samples['pbs_size{datastore="main"}'] > 0
    assert any(k.startswith("obs_pbs_job_last_status") for k in samples)
    assert not [k for k in samples if k.startswith("pbs_snapshot_vm_last_timestamp{")]
    check_metrics(fake.prom)


def test_failure_keeps_the_previous_file_and_reports(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, HISTORY).returncode == 0
    before = fake.prom.read_text()
    (tmp_path / "fail").write_text("")
    result = fake.run(collector, HISTORY)
    assert result.returncode == 255 and "connection refused" in result.stderr
    assert fake.prom.read_text() == before
    assert sorted(p.name for p in fake.textfile.iterdir()) == [pbs_collector.PROM_FILE]
    assert not list(fake.state.glob(".*"))


@pytest.mark.parametrize(
    "script",
    ["collector", "prerequisites", "uninstall"],
)
def test_shellcheck(tmp_path: Path, example_config, example_inventory, script: str) -> None:
    text = {
        "collector": lambda: pbs_collector.render_script(example_config.pbs),
        "prerequisites": pbs_collector.prerequisites_script,
        "uninstall": pbs_collector.uninstall_script,
    }[script]()
    path = tmp_path / "script.sh"
    path.write_text(text)
    result = subprocess.run([require("shellcheck"), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_systemd_units() -> None:
    service = configparser.ConfigParser()
    service.read_string(pbs_collector.render_service())
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"] == pbs_collector.SCRIPT_PATH
    timer = configparser.ConfigParser()
    timer.read_string(pbs_collector.render_timer())
    assert timer["Timer"]["OnUnitActiveSec"] == pbs_collector.INTERVAL
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_files_go_to_the_pbs_host(example_config, example_inventory) -> None:
    shipped = pbs_collector.files(example_config, example_inventory)
    assert {f.host for f in shipped} == {example_config.pbs.host}
    expected = {pbs_collector.SCRIPT_PATH, pbs_collector.SERVICE_PATH, pbs_collector.TIMER_PATH}
    assert {f.path for f in shipped} == expected


def test_datastore_usage_is_the_filesystem_of_its_path(tmp_path: Path, collector: Path, example_config) -> None:
    """pbs_size/used/available per datastore (natrontech/pbs-exporter's names, which the rules use),
    from df of the datastore's path; an offsite datastore whose disk is not mounted reports nothing
    rather than the root filesystem's numbers."""
    fake = FakePbs(tmp_path)
    root = tmp_path / "root"
    stores = {ds.name: ds for ds in example_config.pbs.datastores}
    for ds in stores.values():
        (root / ds.path.lstrip("/")).mkdir(parents=True)
    assert stores["offsite-copy"].mounted_at is not None  # the example's USB disk, not mounted here
    (tmp_path / "snapshots-main.json").write_text("[]")
    result = fake.run(collector, HISTORY, datastore_root=root)
    assert result.returncode == 0, result.stderr
    main = root / stores["main"].path.lstrip("/")
    df = subprocess.run(
        ["df", "-B1", "--output=size,used,avail", str(main)], capture_output=True, text=True, check=True
    )
    size = float(df.stdout.splitlines()[-1].split()[0])
    samples = fake.samples()
    # Used and available move with the shared disk; the filesystem's size does not, and the two
    # always fit in it (ext4 keeps reserved blocks out of both).
    used, avail = samples['pbs_used{datastore="main"}'], samples['pbs_available{datastore="main"}']
    assert samples['pbs_size{datastore="main"}'] == size
    assert used > 0 and avail > 0 and used + avail <= size
    assert not [k for k in samples if "offsite-copy" in k and k.startswith("pbs_")], "unmounted disk reported"
    check_metrics(fake.prom)


def snapshot(vmid: str, time: int, verify: str | None = None, backup_type: str = "vm", comment: str = "") -> dict:
    """A SnapshotListItem as proxmox-backup-client prints it (pbs-api-types src/datastore.rs:
    kebab-case backup-type/backup-id/backup-time, optional comment and verification.state)."""
    item: dict[str, Any] = {"backup-type": backup_type, "backup-id": vmid, "backup-time": time, "files": []}
    if comment:
        item["comment"] = comment
    if verify:
        item["verification"] = {"state": verify, "upid": "UPID:pbs1:..."}
    return item


def test_snapshot_series_per_guest_from_the_read_only_token(tmp_path: Path, collector: Path, example_config) -> None:
    fake = FakePbs(tmp_path)
    root = tmp_path / "root"
    main = next(ds for ds in example_config.pbs.datastores if ds.name == "main")
    (root / main.path.lstrip("/")).mkdir(parents=True)
    (tmp_path / "snapshots-main.json").write_text(
        json.dumps(
            [
                snapshot("110", T0 - 86400, "ok", comment="gitea"),
                snapshot("110", T0, comment='gi"tea'),  # newest, not verified yet
                snapshot("101", T0 - 100, "ok", backup_type="ct", comment="dns1"),
                snapshot("120", T0 - 50, "failed"),
                snapshot("pve1", T0, "ok", backup_type="host"),  # a host backup is no guest
            ]
        )
    )
    result = fake.run(collector, HISTORY, datastore_root=root)
    assert result.returncode == 0, result.stderr
    samples = fake.samples()
    gitea = 'datastore="main",namespace="",vm_id="110",vm_name="gi\\"tea"'
    assert samples[f"pbs_snapshot_vm_last_timestamp{{{gitea}}}"] == T0
    assert samples[f"pbs_snapshot_vm_last_verify{{{gitea}}}"] == 0
    assert samples['pbs_snapshot_vm_last_verify{datastore="main",namespace="",vm_id="101",vm_name="dns1"}'] == 1
    assert samples['pbs_snapshot_vm_last_verify{datastore="main",namespace="",vm_id="120",vm_name=""}'] == 0
    assert not [k for k in samples if k.startswith("pbs_snapshot") and "_count" in k]
    assert not [k for k in samples if 'vm_id="pve1"' in k]
    (call,) = [json.loads(line) for line in (tmp_path / "client-calls.log").read_text().splitlines()]
    assert call["password"] == "metrics-secret" and call["fingerprint"] == example_config.pbs.fingerprint
    assert call["args"][-1] == f"{pbs_collector.METRICS_TOKEN_ID}@localhost:{example_config.pbs.port}:main"
    assert "metrics-secret" not in json.dumps(call["args"])
    check_metrics(fake.prom)


def test_every_pbs_series_the_rules_and_dashboards_read_is_written_by_the_collector(example_config) -> None:
    """With no PBS exporter, the collector is the only source of pbs_* series: a name the rules or
    dashboards read and nothing writes would leave an alert that can never fire."""
    root = Path(__file__).resolve().parents[2]
    texts = [
        p.read_text() for p in [*sorted((root / "rules").glob("*.yml")), *sorted((root / "dashboards").glob("*.json"))]
    ]
    read = {m for text in texts for m in re.findall(r"(?<![\w:])pbs_[a-z_]+\b(?!:)", text)}
    assert read, "the rules read PBS series"
    script = pbs_collector.render_script(example_config.pbs)
    written = set(re.findall(r"^  echo \"# TYPE (pbs_[a-z_]+) gauge\"$", script, flags=re.M))
    assert read <= written, sorted(read - written)


def test_the_collector_writes_only_its_state_and_a_privileged_step_publishes_the_textfile(tmp_path: Path) -> None:
    """Root without capabilities cannot write into node_exporter's textfile directory (owned by
    prometheus): the sandbox keeps it to its state directory, and ExecStartPost ("+": full
    privileges) installs the outbox's file there, 0644, by a rename."""
    service = configparser.ConfigParser(interpolation=None)
    service.read_string(pbs_collector.render_service())
    unit = service["Service"]
    assert pbs_collector.TEXTFILE_DIR not in unit["ReadWritePaths"]
    assert f"OBSSTACK_TEXTFILE_DIR={pbs_collector.OUTBOX}" in pbs_collector.render_service()
    publish = unit["ExecStartPost"]
    assert publish.startswith("+/bin/sh -c ")
    outbox, textfile = tmp_path / "outbox", tmp_path / "textfile"
    outbox.mkdir()
    textfile.mkdir()
    (outbox / pbs_collector.PROM_FILE).write_text("pbs_up 1\n")
    command = (
        publish.removeprefix("+/bin/sh -c ")
        .strip("'")
        .replace("$$", "$")
        .replace(pbs_collector.OUTBOX, str(outbox))
        .replace(pbs_collector.TEXTFILE_DIR, str(textfile))
    )
    assert subprocess.run(["/bin/sh", "-c", command], check=False).returncode == 0
    published = textfile / pbs_collector.PROM_FILE
    assert published.read_text() == "pbs_up 1\n"
    assert oct(published.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in textfile.iterdir()] == [pbs_collector.PROM_FILE]

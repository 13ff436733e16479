"""The PBS collector, run for real against a fake proxmox-backup-manager printing the task list."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.render import pbs_collector
from tests.unit.test_vzdump_hook import check_metrics, require

T0 = 1_772_000_000


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


class FakePbs:
    """Puts a fake proxmox-backup-manager first on PATH; it prints `tasks` for the expected argv."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        self.tasks_file = root / "tasks.json"
        self.calls = root / "calls.log"
        fake = self.bin / "proxmox-backup-manager"
        fake.write_text(
            "#!/bin/bash\n"
            f'echo "$*" >>"{self.calls}"\n'
            'if [ "$*" != "task list --all --limit '
            f'{pbs_collector.TASK_LIMIT} --output-format json" ]; then echo "unexpected: $*" >&2; exit 2; fi\n'
            f'if [ -f "{root}/fail" ]; then echo "connection refused" >&2; exit 1; fi\n'
            f'cat "{self.tasks_file}"\n'
        )
        fake.chmod(0o755)
        self.textfile = root / "textfile"
        self.state = root / "state"

    def run(self, script: Path, tasks: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        self.tasks_file.write_text(json.dumps(tasks))
        env = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "OBSSTACK_TEXTFILE_DIR": str(self.textfile),
            "OBSSTACK_STATE_DIR": str(self.state),
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
    task("garbage_collection", "main", T0 + 900, "TASK ERROR: unable to read chunk"),
    task("prunejob", "obsstack-prune-main", T0 + 200, "OK"),
    task("prunejob", "main:obsstack-prune-main", T0 + 300, "WARNINGS: 1"),
    task("verificationjob", "main:obsstack-verify-new-main", T0 + 400, "OK"),
    task("verificationjob", "main:obsstack-verify-full-main", T0 + 500, "OK"),
    task("garbage_collection", "offsite-copy", T0 + 600, "OK"),
    task("verificationjob", "offsite-copy:obsstack-verify-new-offsite-copy", None, None),  # still running
    task("backup", "vm/110", T0 + 700, "OK"),
    task("garbage_collection", "someone-elses-store", T0 + 800, "OK"),
    task("prunejob", "main:a-hand-made-job", T0 + 950, "TASK ERROR: oops"),
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


def test_empty_task_list_gives_valid_empty_metrics(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, []).returncode == 0
    assert fake.samples() == {}
    check_metrics(fake.prom)


def test_failure_keeps_the_previous_file_and_reports(tmp_path: Path, collector: Path) -> None:
    fake = FakePbs(tmp_path)
    assert fake.run(collector, HISTORY).returncode == 0
    before = fake.prom.read_text()
    (tmp_path / "fail").write_text("")
    result = fake.run(collector, HISTORY)
    assert result.returncode != 0 and "connection refused" in result.stderr
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

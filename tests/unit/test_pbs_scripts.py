"""PBS scripts, run for real against a stateful fake proxmox-backup-manager.

The fake keeps datastores, jobs, users, tokens and ACLs in a JSON file and logs every call, so
the tests can prove idempotency (a second run leaves the state as the first left it), refusal to
touch a datastore that exists elsewhere, least privilege, and that no delete removes data.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.config import PbsDatastore, Retention
from components.pbs import scripts
from components.render import pbs_collector
from tests.unit.test_vzdump_hook import require

FAKE_PBM = r"""
import json, sys
state_path, log_path = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
with open(log_path, "a") as log:
    log.write(json.dumps(args) + "\n")
state = json.load(open(state_path))

def options(rest):
    out, deletes, i = {}, [], 0
    while i < len(rest):
        key = rest[i].removeprefix("--")
        if key == "delete":
            deletes.append(rest[i + 1])
        elif key != "output-format":
            out[key] = rest[i + 1]
        i += 2
    return out, deletes

def save():
    json.dump(state, open(state_path, "w"), indent=1, sort_keys=True)

def update(entries, name, rest):
    opts, deletes = options(rest)
    entries[name].update(opts)
    for d in deletes:
        entries[name].pop(d, None)
    save()

def fail(message):
    print(message, file=sys.stderr)
    sys.exit(255)

group, verb, rest = args[0], args[1], args[2:]
if group == "datastore":
    stores = state.setdefault("datastores", {})
    if verb == "list":
        print(json.dumps([{"name": n, **v} for n, v in stores.items()]))
    elif verb == "create":
        if rest[0] in stores:
            fail(f"datastore '{rest[0]}' already exists.")
        stores[rest[0]] = {"path": rest[1]}
        save()
    elif verb == "update":
        update(stores, rest[0], rest[1:])
    else:
        fail(f"unsupported: {args}")
elif group in ("prune-job", "verify-job", "sync-job"):
    jobs = state.setdefault(group, {})
    if verb == "list":
        print(json.dumps([{"id": i, **v} for i, v in jobs.items()]))
    elif verb == "create":
        if rest[0] in jobs:
            fail("job already exists")
        jobs[rest[0]] = options(rest[1:])[0]
        save()
    elif verb == "update":
        update(jobs, rest[0], rest[1:])
    elif verb == "remove":
        jobs.pop(rest[0], None)
        save()
    else:
        fail(f"unsupported: {args}")
elif group == "user":
    users = state.setdefault("users", {})
    if verb == "list":
        print(json.dumps([{"userid": u} for u in users]))
    elif verb == "create":
        users[rest[0]] = {"tokens": []}
        save()
    elif verb == "list-tokens":
        print(json.dumps([{"tokenid": f"{rest[0]}!{t}"} for t in users[rest[0]]["tokens"]]))
    elif verb == "generate-token":
        users[rest[0]]["tokens"].append(rest[1])
        save()
        print(json.dumps({"tokenid": f"{rest[0]}!{rest[1]}", "value": "0f1e2d3c-SECRET-TOKEN-VALUE"}))
    elif verb == "delete-token":
        users[rest[0]]["tokens"].remove(rest[1])
        save()
    else:
        fail(f"unsupported: {args}")
elif group == "acl" and verb == "update":
    opts, _ = options(rest[2:])
    entry = [rest[0], rest[1], opts["auth-id"]]
    acl = state.setdefault("acl", [])
    if entry not in acl:
        acl.append(entry)
    save()
else:
    fail(f"unsupported: {args}")
"""


class FakePbm:
    def __init__(self, root: Path) -> None:
        require("jq")
        self.root = root
        self.state = root / "pbm-state.json"
        self.log = root / "pbm-calls.log"
        self.state.write_text("{}")
        self.log.write_text("")
        impl = root / "fake_pbm.py"
        impl.write_text(FAKE_PBM)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "proxmox-backup-manager"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S -E "{impl}" "{self.state}" "{self.log}" "$@"\n')
        wrapper.chmod(0o755)
        # mountpoint(1) for datastores on their own disk: mounted unless DIR/.unmounted exists.
        (bin_dir / "mountpoint").write_text('#!/bin/sh\n[ ! -e "$2/.unmounted" ]\n')
        (bin_dir / "mountpoint").chmod(0o755)
        self.path = f"{bin_dir}:{os.environ['PATH']}"

    def run(self, script: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": self.path, "OBSSTACK_ROOT": str(self.root)}
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)

    def data(self) -> dict[str, Any]:
        return json.loads(self.state.read_text())

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def mutations(self) -> list[list[str]]:
        return [c for c in self.calls() if c[1] not in ("list", "list-tokens")]


@pytest.fixture
def pbm(tmp_path: Path) -> FakePbm:
    return FakePbm(tmp_path)


def all_create_scripts(config) -> dict[str, str]:
    out = {}
    for ds in config.pbs.datastores:
        out[f"datastore-{ds.name}"] = scripts.datastore_create(ds)
        out[f"gc-{ds.name}"] = scripts.gc_schedule(ds)
        out[f"prune-{ds.name}"] = scripts.prune_job(ds)
        out[f"verify-{ds.name}"] = scripts.verify_jobs(ds)
        if ds.sync is not None:
            out[f"sync-{ds.name}"] = scripts.sync_job(ds)
    out["token"] = scripts.api_token(config.pbs)
    out["metrics-token"] = scripts.metrics_token(config.pbs)
    return out


def test_shellcheck_every_script(tmp_path: Path, example_config) -> None:
    texts = list(all_create_scripts(example_config).values())
    for ds in example_config.pbs.datastores:
        texts += [scripts.datastore_delete(ds), scripts.gc_schedule_delete(ds)]
    texts += [scripts.api_token_delete(example_config.pbs), scripts.job_delete("prune-job", "x")]
    texts.append(scripts.metrics_token_delete(example_config.pbs))
    for i, text in enumerate(texts):
        path = tmp_path / f"s{i}.sh"
        path.write_text(text)
        result = subprocess.run(
            [require("shellcheck"), "-s", "bash", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{text}\n{result.stdout}"


def test_full_setup_then_rerun_changes_nothing(pbm: FakePbm, example_config) -> None:
    for name, script in all_create_scripts(example_config).items():
        result = pbm.run(script)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    first = pbm.data()
    created = [c for c in pbm.mutations() if c[1] in ("create", "generate-token")]
    assert created
    pbm.log.write_text("")
    for name, script in all_create_scripts(example_config).items():
        result = pbm.run(script)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    assert pbm.data() == first
    assert not [c for c in pbm.mutations() if c[1] in ("create", "generate-token", "remove", "delete-token")]


def test_datastores_and_schedules(pbm: FakePbm, example_config) -> None:
    for script in all_create_scripts(example_config).values():
        assert pbm.run(script).returncode == 0
    state = pbm.data()
    assert state["datastores"] == {
        "main": {"path": "/mnt/datastore/main", "gc-schedule": "sat 03:30"},
        "offsite-copy": {"path": "/mnt/usb-offsite/offsite-copy", "gc-schedule": "sat 03:30"},
    }
    assert state["prune-job"]["obsstack-prune-main"] == {
        "store": "main",
        "schedule": "daily",
        "keep-daily": "30",
        "keep-weekly": "8",
        "keep-monthly": "6",
    }
    verify = state["verify-job"]
    assert verify["obsstack-verify-new-main"] == {"store": "main", "schedule": "daily", "ignore-verified": "true"}
    assert verify["obsstack-verify-full-main"] == {"store": "main", "schedule": "monthly", "ignore-verified": "false"}
    # main is copied to offsite-copy: a local pull job defined on the target, never removing there.
    assert state["sync-job"]["obsstack-sync-main"] == {
        "store": "offsite-copy",
        "remote-store": "main",
        "schedule": "daily",
        "remove-vanished": "false",
    }


def test_prune_job_update_drops_options_no_longer_set(pbm: FakePbm) -> None:
    ds = PbsDatastore(name="main", path="/mnt/main", prune=Retention(keep_daily=30, keep_weekly=8))
    assert pbm.run(scripts.prune_job(ds)).returncode == 0
    smaller = ds.model_copy(update={"prune": Retention(keep_daily=40)})
    assert pbm.run(scripts.prune_job(smaller)).returncode == 0
    assert pbm.data()["prune-job"]["obsstack-prune-main"] == {"store": "main", "schedule": "daily", "keep-daily": "40"}


def test_push_sync_to_a_remote(pbm: FakePbm) -> None:
    ds = PbsDatastore.model_validate(
        {"name": "main", "path": "/mnt/main", "sync": {"remote": "offsite", "remote_store": "copy"}}
    )
    assert pbm.run(scripts.sync_job(ds)).returncode == 0
    job = pbm.data()["sync-job"]["obsstack-sync-main"]
    assert job == {
        "store": "main",
        "remote": "offsite",
        "remote-store": "copy",
        "sync-direction": "push",
        "schedule": "daily",
        "remove-vanished": "false",
    }


def test_datastore_elsewhere_is_refused_and_untouched(pbm: FakePbm) -> None:
    pbm.state.write_text(json.dumps({"datastores": {"main": {"path": "/srv/old-disk/main"}}}))
    result = pbm.run(scripts.datastore_create(PbsDatastore(name="main", path="/mnt/datastore/main")))
    assert result.returncode == 1
    assert "/srv/old-disk/main" in result.stderr and "never moves or recreates" in result.stderr
    assert pbm.mutations() == []
    assert pbm.data() == {"datastores": {"main": {"path": "/srv/old-disk/main"}}}


def test_token_is_least_privilege_and_its_secret_never_printed(pbm: FakePbm, example_config) -> None:
    result = pbm.run(scripts.api_token(example_config.pbs))
    assert result.returncode == 0, result.stderr
    assert "SECRET-TOKEN-VALUE" not in result.stdout + result.stderr
    secret_file = pbm.root / "root/obsstack/pbs-token-pve.json"
    assert json.loads(secret_file.read_text())["value"] == "0f1e2d3c-SECRET-TOKEN-VALUE"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert pbm.data()["acl"] == [
        ["/datastore/main", "DatastoreBackup", "obsstack@pbs"],
        ["/datastore/main", "DatastoreBackup", "obsstack@pbs!pve"],
    ]
    again = pbm.run(scripts.api_token(example_config.pbs))
    assert again.returncode == 0 and "created API token" not in again.stdout
    assert pbm.data()["users"]["obsstack@pbs"]["tokens"] == ["pve"]


@pytest.mark.parametrize(
    "which",
    ["datastore-main", "datastore-offsite-copy", "token"],
)
def test_deletes_of_backup_holders_call_nothing_and_say_what_they_left(
    pbm: FakePbm, example_config, which: str
) -> None:
    by_name = {f"datastore-{ds.name}": scripts.datastore_delete(ds) for ds in example_config.pbs.datastores}
    by_name["token"] = scripts.api_token_delete(example_config.pbs)
    result = pbm.run(by_name[which])
    assert result.returncode == 0
    assert pbm.calls() == []
    assert "left in place" in result.stdout


def test_job_deletes_remove_configuration_only(pbm: FakePbm, example_config) -> None:
    for script in all_create_scripts(example_config).values():
        assert pbm.run(script).returncode == 0
    before = pbm.data()
    pbm.log.write_text("")
    for ds in example_config.pbs.datastores:
        assert pbm.run(scripts.gc_schedule_delete(ds)).returncode == 0
        assert pbm.run(scripts.job_delete("prune-job", f"obsstack-prune-{ds.name}")).returncode == 0
    after = pbm.data()
    assert set(after["datastores"]) == set(before["datastores"])
    assert all(store["path"] == before["datastores"][n]["path"] for n, store in after["datastores"].items())
    assert after["prune-job"] == {}
    assert {c[0] for c in pbm.mutations()} <= {"datastore", "prune-job"}
    assert not [c for c in pbm.mutations() if c[0] == "datastore" and c[1] != "update"]


@pytest.mark.parametrize("mounted", [True, False], ids=["disk-mounted", "disk-absent"])
def test_a_datastore_on_its_own_disk_is_created_only_while_that_disk_is_mounted(pbm: FakePbm, mounted: bool) -> None:
    """An absent USB disk leaves an empty directory on the root filesystem: a datastore created
    there fills the root disk and holds no offsite copy."""
    disk = pbm.root / "mnt/usb-offsite"
    disk.mkdir(parents=True)
    if not mounted:
        (disk / ".unmounted").touch()
    ds = PbsDatastore(name="offsite-copy", path="/mnt/usb-offsite/offsite-copy", mounted_at="/mnt/usb-offsite")
    result = pbm.run(scripts.datastore_create(ds))
    if mounted:
        assert result.returncode == 0, result.stderr
        assert pbm.data()["datastores"]["offsite-copy"]["path"] == "/mnt/usb-offsite/offsite-copy"
    else:
        assert result.returncode == 1
        assert "/mnt/usb-offsite is not mounted" in result.stderr
        assert pbm.mutations() == []


def test_a_datastore_outside_its_disk_is_refused() -> None:
    with pytest.raises(ValueError, match="is not under mounted_at"):
        PbsDatastore(name="x", path="/srv/x", mounted_at="/mnt/usb-offsite")


def test_collector_token_may_only_audit_and_its_secret_stays_on_the_host(pbm: FakePbm, example_config) -> None:
    result = pbm.run(scripts.metrics_token(example_config.pbs))
    assert result.returncode == 0, result.stderr
    assert "SECRET-TOKEN-VALUE" not in result.stdout + result.stderr
    secret = pbm.root / pbs_collector.METRICS_TOKEN_FILE.lstrip("/")
    assert secret.read_text() == "0f1e2d3c-SECRET-TOKEN-VALUE\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
    stores = [ds.name for ds in example_config.pbs.datastores]
    who = (pbs_collector.METRICS_USER, pbs_collector.METRICS_TOKEN_ID)
    assert sorted(pbm.data()["acl"]) == sorted([f"/datastore/{s}", "DatastoreAudit", w] for s in stores for w in who)


def test_collector_token_lost_file_gets_a_new_token(pbm: FakePbm, example_config) -> None:
    assert pbm.run(scripts.metrics_token(example_config.pbs)).returncode == 0
    (pbm.root / pbs_collector.METRICS_TOKEN_FILE.lstrip("/")).unlink()
    again = pbm.run(scripts.metrics_token(example_config.pbs))
    assert again.returncode == 0, again.stderr
    assert ["user", "delete-token", pbs_collector.METRICS_USER, pbs_collector.METRICS_TOKEN] in pbm.calls()
    assert pbm.data()["users"][pbs_collector.METRICS_USER]["tokens"] == [pbs_collector.METRICS_TOKEN]
    assert (pbm.root / pbs_collector.METRICS_TOKEN_FILE.lstrip("/")).read_text().strip()

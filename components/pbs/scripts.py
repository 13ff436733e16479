"""Shell scripts the PbsServer runs over SSH with ``proxmox-backup-manager`` (pure functions).

Every create script is idempotent: it looks at what exists (``... list --output-format json``) and
creates or updates to match, so re-running it changes nothing. No delete script removes backup
data: the datastore's only says what it left behind, and removing a prune/verify/sync job or a GC
schedule removes configuration only. Tests run these exact scripts against a fake
``proxmox-backup-manager`` that keeps state.
"""

from __future__ import annotations

import shlex

from components import names
from components.config import PbsDatastore, PbsSection, Retention
from components.render import pbs_collector
from components.render.pbs_collector import prune_job_id, verify_job_ids

PBM = "proxmox-backup-manager"
TOKEN_FILE_DIR = "/root/obsstack"
KEEP_OPTIONS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")

_PRELUDE = """#!/bin/bash
set -euo pipefail
command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends jq
"""


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _job_exists(kind: str, job_id: str) -> str:
    return f"{PBM} {kind} list --output-format json | jq -e --arg id {_q(job_id)} 'any(.[]; .id == $id)' >/dev/null"


def _upsert_job(kind: str, job_id: str, options: list[str], deletable: tuple[str, ...] = ()) -> str:
    """Create the job, or update it in place (dropping options no longer set)."""
    opts = " ".join(options)
    deletes = "".join(f" --delete {d}" for d in deletable)
    return (
        f"if {_job_exists(kind, job_id)}; then\n"
        f"    {PBM} {kind} update {_q(job_id)} {opts}{deletes}\n"
        f'    echo "{kind} {job_id}: up to date"\n'
        "else\n"
        f"    {PBM} {kind} create {_q(job_id)} {opts}\n"
        f'    echo "{kind} {job_id}: created"\n'
        "fi\n"
    )


def datastore_create(ds: PbsDatastore) -> str:
    """Create the datastore if missing; refuse (exit 1, nothing touched) if it exists elsewhere, or
    if the disk it belongs on is not mounted (it would land on the root filesystem and fill it)."""
    mounted = (
        f'if ! mountpoint -q "${{OBSSTACK_ROOT:-}}"{_q(ds.mounted_at)}; then\n'
        f'    echo "error: {ds.mounted_at} is not mounted: datastore {ds.name} belongs on that disk, '
        'not on the root filesystem. Mount it (or fix pbs.datastores[].mounted_at), then re-run." >&2\n'
        "    exit 1\n"
        "fi\n"
        if ds.mounted_at
        else ""
    )
    return (
        _PRELUDE
        + mounted
        + (
            f'current="$({PBM} datastore list --output-format json | jq -r --arg n {_q(ds.name)} '
            "'.[] | select(.name == $n) | .path')\"\n"
            'if [ -z "$current" ]; then\n'
            f"    {PBM} datastore create {_q(ds.name)} {_q(ds.path)}\n"
            f'    echo "datastore {ds.name} created at {ds.path}"\n'
            f'elif [ "$current" != {_q(ds.path)} ]; then\n'
            f'    echo "error: datastore {ds.name} already exists at $current, config says {ds.path}." >&2\n'
            '    echo "obsstack never moves or recreates a datastore: set pbs.datastores[].path to $current, '
            'or add a new datastore under a new name." >&2\n'
            "    exit 1\n"
            "else\n"
            f'    echo "datastore {ds.name} exists at {ds.path}: unchanged"\n'
            "fi\n"
        )
    )


def datastore_delete(ds: PbsDatastore) -> str:
    return (
        f'echo "obsstack: datastore {ds.name} left in place at {ds.path} with all its backups; '
        f'remove it by hand if you really mean to: {PBM} datastore remove {ds.name}"\n'
    )


def gc_schedule(ds: PbsDatastore) -> str:
    return _PRELUDE + (
        f"{PBM} datastore update {_q(ds.name)} --gc-schedule {_q(ds.gc_schedule)}\n"
        f'echo "datastore {ds.name}: garbage collection {ds.gc_schedule}"\n'
    )


def gc_schedule_delete(ds: PbsDatastore) -> str:
    return (
        f"{PBM} datastore update {_q(ds.name)} --delete gc-schedule || true\n"
        f'echo "garbage collection schedule of {ds.name} removed; its backups are untouched"\n'
    )


def keep_options(retention: Retention) -> tuple[list[str], list[str]]:
    """(--keep-x N options that are set, keep-x names to delete because they are unset)."""
    options, unset = [], []
    for field in KEEP_OPTIONS:
        value = getattr(retention, field)
        flag = field.replace("_", "-")
        if value:
            options.append(f"--{flag} {value}")
        else:
            unset.append(flag)
    return options, unset


def prune_job(ds: PbsDatastore, scoped: names.StackNames = names.LEGACY) -> str:
    keep, unset = keep_options(ds.prune)
    options = [f"--store {_q(ds.name)}", f"--schedule {_q(ds.prune_schedule)}", *keep]
    return _PRELUDE + _upsert_job("prune-job", prune_job_id(ds.name, scoped), options, tuple(unset))


def verify_jobs(ds: PbsDatastore, scoped: names.StackNames = names.LEGACY) -> str:
    new, full = verify_job_ids(ds.name, scoped)
    store = f"--store {_q(ds.name)}"
    return (
        _PRELUDE
        # Daily: only snapshots never verified. Monthly: everything again (bit rot, lost chunks).
        + _upsert_job("verify-job", new, [store, f"--schedule {_q(ds.verify_new_schedule)}", "--ignore-verified true"])
        + _upsert_job(
            "verify-job", full, [store, f"--schedule {_q(ds.full_verify_schedule)}", "--ignore-verified false"]
        )
    )


def sync_job_id(ds: PbsDatastore, scoped: names.StackNames = names.LEGACY) -> str:
    return scoped.sync_job(ds.name)


def sync_job(ds: PbsDatastore, scoped: names.StackNames = names.LEGACY) -> str:
    """Copy this datastore to ``sync.remote_store``: a local pull job on the target datastore, or
    a push job to a remote PBS. Vanished snapshots are never removed on the copy."""
    assert ds.sync is not None
    schedule = f"--schedule {_q(ds.sync.schedule)}"
    if ds.sync.remote is None:
        options = [f"--store {_q(ds.sync.remote_store)}", f"--remote-store {_q(ds.name)}", schedule]
    else:
        options = [
            f"--store {_q(ds.name)}",
            f"--remote {_q(ds.sync.remote)}",
            f"--remote-store {_q(ds.sync.remote_store)}",
            "--sync-direction push",
            schedule,
        ]
    return _PRELUDE + _upsert_job("sync-job", sync_job_id(ds, scoped), [*options, "--remove-vanished false"])


def job_delete(kind: str, *job_ids: str) -> str:
    lines = [f"{PBM} {kind} remove {_q(job_id)} || true" for job_id in job_ids]
    return "\n".join([*lines, f'echo "{kind} {" ".join(job_ids)} removed; no backup was deleted"', ""])


def api_token(pbs: PbsSection) -> str:
    """The PBS user and API token PVE backs up with, with DatastoreBackup on its datastore only.

    A new token's secret is written to a 0600 file on the PBS host, never to stdout: the operator
    copies it into the stack's secret config once (docs/proxmox-privileges.md).
    """
    user, token = pbs.token_user, f"{pbs.token_user}!{pbs.token_name}"
    secret_file = f"{TOKEN_FILE_DIR}/pbs-token-{pbs.token_name}.json"
    acl_path = f"/datastore/{pbs.datastore}"
    return _PRELUDE + (
        f"if ! {PBM} user list --output-format json | jq -e --arg u {_q(user)} 'any(.[]; .userid == $u)' >/dev/null; "
        "then\n"
        f"    {PBM} user create {_q(user)} --comment 'obsstack: PVE backups (API token only, no password)'\n"
        "fi\n"
        f"if ! {PBM} user list-tokens {_q(user)} --output-format json "
        f"| jq -e --arg t {_q(token)} 'any(.[]; .tokenid == $t)' >/dev/null; then\n"
        f'    install -d -m 0700 "${{OBSSTACK_ROOT:-}}"{TOKEN_FILE_DIR}\n'
        "    umask 077\n"
        f"    {PBM} user generate-token {_q(user)} {_q(pbs.token_name)} --output-format json "
        f'>"${{OBSSTACK_ROOT:-}}"{_q(secret_file)}\n'
        f'    echo "created API token {token}; its secret is in {secret_file} (0600) on this host."\n'
        f"    echo \"run: pulumi config set --secret obsstack:{pbs.api_token_secret} <value of that file's"
        f' \\"value\\">, then delete the file"\n'
        "fi\n"
        # Token permissions are the intersection of the user's and the token's: both need the role.
        f"{PBM} acl update {_q(acl_path)} DatastoreBackup --auth-id {_q(user)}\n"
        f"{PBM} acl update {_q(acl_path)} DatastoreBackup --auth-id {_q(token)}\n"
        f'echo "{token}: DatastoreBackup on {acl_path}"\n'
    )


def api_token_delete(pbs: PbsSection) -> str:
    token = f"{pbs.token_user}!{pbs.token_name}"
    return (
        f'echo "obsstack: API token {token} left in place (PVE may still back up with it); '
        f'remove it with: {PBM} user delete-token {pbs.token_user} {pbs.token_name}"\n'
    )


_HAS_TOKEN = "any(.[]; .tokenid == $t)"


def metrics_token(pbs: PbsSection) -> str:
    """The collector's read-only identity: a user and token with DatastoreAudit on each datastore
    (PBS's role for "view datastore settings and list content, but not read the actual data",
    proxmox/proxmox-backup docs/user-management.rst, Access Control), so it may list snapshots and
    nothing more. The secret never leaves the PBS host: it goes from ``generate-token`` straight to
    a root-only file the collector reads; a lost file gets a new token, since PBS shows a secret
    only once."""
    user, name, token = pbs_collector.METRICS_USER, pbs_collector.METRICS_TOKEN, pbs_collector.METRICS_TOKEN_ID
    secret = f'"${{OBSSTACK_ROOT:-}}"{_q(pbs_collector.METRICS_TOKEN_FILE)}'
    lists = f"{PBM} user list-tokens {_q(user)} --output-format json | jq -e --arg t {_q(token)} {_q(_HAS_TOKEN)}"
    acls = "".join(
        f"{PBM} acl update {_q(f'/datastore/{ds.name}')} DatastoreAudit --auth-id {_q(who)}\n"
        for ds in pbs.datastores
        for who in (user, token)
    )
    return _PRELUDE + (
        f"if ! {PBM} user list --output-format json | jq -e --arg u {_q(user)} 'any(.[]; .userid == $u)' >/dev/null; "
        "then\n"
        f"    {PBM} user create {_q(user)} --comment 'obsstack: PBS collector, lists snapshots (read-only token)'\n"
        "fi\n"
        f"if [ ! -s {secret} ]; then\n"
        f"    if {lists} >/dev/null; then {PBM} user delete-token {_q(user)} {_q(name)}; fi\n"
        f'    install -d -m 0700 "$(dirname {secret})"\n'
        "    umask 077\n"
        f"    {PBM} user generate-token {_q(user)} {_q(name)} --output-format json | jq -r .value >{secret}.new\n"
        f"    mv -f {secret}.new {secret}\n"
        f'    echo "created API token {token} for the collector (its secret stays on this host)"\n'
        "fi\n"
        f"{acls}"
        f'echo "{token}: DatastoreAudit on {" ".join(f"/datastore/{ds.name}" for ds in pbs.datastores)}"\n'
    )


def metrics_token_delete(pbs: PbsSection) -> str:
    """Configuration only: the collector's token and its file (no backup data)."""
    user, name = pbs_collector.METRICS_USER, pbs_collector.METRICS_TOKEN
    return (
        f"{PBM} user delete-token {_q(user)} {_q(name)} || true\n"
        f'rm -f "${{OBSSTACK_ROOT:-}}"{_q(pbs_collector.METRICS_TOKEN_FILE)}\n'
    )

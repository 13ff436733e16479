"""The names Proxmox VE, PBS and the PVE nodes see, scoped to one stack (docs/environments.md).

Several stacks (prod, staging, ...) may share one cluster and one PBS: every name this program
creates there is derived from the stack's *scope* (``names.scope``, default the stack name), so
two stacks never write the same object. ``names: {legacy: true}`` keeps the names of the stacks
created before scoping (``obsstack-nightly``, ``obs-drill@pve``, ...): renaming a protected backup
job is a replacement, and a stack that already runs must not trade its jobs for new ones.

Why the scope defaults to the stack name and not cluster + stack: every namespace below is either
one cluster's (PVE jobs, users, roles, pools, a node's files) or keyed by a datastore that only one
stack may own (PBS job ids carry the datastore name), so the cluster adds no uniqueness, only
length, and PBS job ids allow 32 characters. The cluster is in every comment and notes template.

Each target's own rules (checked by :func:`problems`):

- PVE backup job id: ``pve-configid`` (pve-common src/PVE/JSONSchema.pm ``pve_verify_configid``,
  ``^[a-z][a-z0-9_-]+$`` case-insensitive) and at most 50 characters (pve-manager
  PVE/API2/Backup.pm ``$vzdump_job_id_prop``).
- PVE user id: ``<name>@<realm>``, 3..64 characters, no whitespace, ``:`` or ``/`` in the name
  (pve-access-control src/PVE/Auth/Plugin.pm ``verify_username``).
- PVE role and pool ids: ``^[A-Za-z0-9.\\-_]+$`` (pve-access-control src/PVE/AccessControl.pm
  ``verify_rolename``, ``verify_poolname``).
- PBS job ids (prune, verify, sync): ``PROXMOX_SAFE_ID_REGEX`` ``[A-Za-z0-9_][A-Za-z0-9._\\-]*``,
  3..32 characters (proxmox-backup pbs-api-types ``JOB_ID_SCHEMA``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LEGACY_PREFIX = "obsstack"
DRILL_ROLE_KEYS = ("source", "storage", "sdn", "scratch")

_PVE_CONFIGID = re.compile(r"[a-z][a-z0-9_-]+", re.IGNORECASE)
_PVE_USERID = re.compile(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+")
_PVE_ROLE_OR_POOL = re.compile(r"[A-Za-z0-9.\-_]+")
_PBS_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]*")
BACKUP_JOB_MAX = 50
USERID_MAX = 64
PBS_JOB_ID_LENGTH = (3, 32)


@dataclass(frozen=True)
class StackNames:
    """Every name of one stack that lives outside Pulumi's state."""

    scope: str  # "" for a legacy stack
    legacy: bool

    @property
    def prefix(self) -> str:
        return LEGACY_PREFIX if self.legacy else f"obs-{self.scope}"

    @property
    def backup_job(self) -> str:
        return f"{self.prefix}-nightly"

    @property
    def drill_user(self) -> str:
        return "obs-drill@pve" if self.legacy else f"obs-drill-{self.scope}@pve"

    @property
    def exporter_user(self) -> str:
        """prometheus-pve-exporter's read-only user (components/proxmox/exporter_token.py)."""
        return "obsstack-exporter@pve" if self.legacy else f"obs-exporter-{self.scope}@pve"

    @property
    def exporter_role(self) -> str:
        return "ObsExporterAudit" if self.legacy else f"ObsExporterAudit-{self.scope}"

    @property
    def drill_pool(self) -> str:
        return "obs-drill" if self.legacy else f"obs-drill-{self.scope}"

    def drill_role(self, key: str) -> str:
        role = f"ObsDrill{key.capitalize()}"
        return role if self.legacy else f"{role}-{self.scope}"

    @property
    def hook_name(self) -> str:
        """This stack's vzdump hook in the node's hook directory (see components/render/vzdump_hook.py)."""
        return "legacy" if self.legacy else self.scope

    def prune_job(self, datastore: str) -> str:
        return f"{self.prefix}-prune-{datastore}"

    def verify_jobs(self, datastore: str) -> tuple[str, str]:
        """(new snapshots daily, full re-verify monthly)."""
        return f"{self.prefix}-verify-new-{datastore}", f"{self.prefix}-verify-full-{datastore}"

    def sync_job(self, datastore: str) -> str:
        return f"{self.prefix}-sync-{datastore}"

    def pbs_jobs(self, datastores: Iterable[str]) -> list[str]:
        ids = []
        for ds in datastores:
            ids += [self.prune_job(ds), *self.verify_jobs(ds), self.sync_job(ds)]
        return ids

    def pve_names(self) -> list[str]:
        """Every PVE-wide name: backup job, drill and exporter users, pool and roles."""
        roles = [*map(self.drill_role, DRILL_ROLE_KEYS), self.exporter_role]
        return [self.backup_job, self.drill_user, self.exporter_user, self.drill_pool, *roles]

    def problems(self, datastores: Iterable[str]) -> list[str]:
        """Why a derived name would be refused by its target (empty when every name fits)."""
        found = []
        if not (_PVE_CONFIGID.fullmatch(self.backup_job) and len(self.backup_job) <= BACKUP_JOB_MAX):
            found.append(f"backup job id {self.backup_job!r}: PVE wants [a-z][a-z0-9_-]+, at most {BACKUP_JOB_MAX}")
        for user in (self.drill_user, self.exporter_user):
            if not (_PVE_USERID.fullmatch(user) and 3 <= len(user) <= USERID_MAX):
                found.append(f"user {user!r}: PVE wants <name>@<realm>, 3 to {USERID_MAX} characters")
        for name in [self.drill_pool, *map(self.drill_role, DRILL_ROLE_KEYS), self.exporter_role]:
            if not _PVE_ROLE_OR_POOL.fullmatch(name):
                found.append(f"pool or role {name!r}: PVE wants [A-Za-z0-9._-]+")
        low, high = PBS_JOB_ID_LENGTH
        for job in self.pbs_jobs(datastores):
            if not (_PBS_SAFE_ID.fullmatch(job) and low <= len(job) <= high):
                found.append(f"PBS job id {job!r} ({len(job)} characters): PBS wants a safe id of {low} to {high}")
        return found


LEGACY = StackNames(scope="", legacy=True)

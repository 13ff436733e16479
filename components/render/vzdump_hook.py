"""vzdump hook script for every PVE node: backup outcomes as node_exporter textfile metrics.

vzdump calls the hook as ``<phase>`` for job phases (job-init, job-start, job-end, job-abort) and
as ``<phase> <mode> <vmid>`` for guest phases (backup-start, backup-end, backup-abort, log-end,
pre-stop, pre-restart, post-restart), with VMTYPE, DUMPDIR, STOREID, HOSTNAME, TARGET (backup-end
only) and LOGFILE (log-end only) in the environment; DUMPDIR and LOGFILE are unset for PBS
storages and STOREID is unset when --dumpdir is used directly (pve-manager's
``vzdump-hook-script.pl`` documents this). A hook that exits non-zero fails the backup, so this one
always exits 0 and only reports what it could not write on stderr (vzdump's task log).

The hook is wired in through ``script:`` in /etc/vzdump.conf rather than the job's ``script``
option: PVE only lets root@pam set a job's hook script, and the program runs with a
least-privilege API token (docs/proxmox-privileges.md).

Several stacks on one cluster (docs/environments.md): vzdump.conf holds one ``script:`` line, and
every job on the node runs it. That line names a dispatcher (the same file for every stack, at the
path the hook had before stacks) that runs each stack's own hook from ``HOOK_DIR``. A stack's hook
records only the jobs writing to its own backup storage (``STOREID``, set for every phase of a job
to a storage), into its own state directory and textfile, so no series is written twice. Removing a
stack removes only its own hook and textfile; the ``script:`` line and the dispatcher go with the
last hook.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, StrictUndefined

from components import names
from components.config import StackConfig
from components.inventory import Inventory
from components.render import HostFile

HOOK_PATH = "/usr/local/lib/obsstack/vzdump-hook.sh"  # the dispatcher: the one `script:` line
HOOK_DIR = "/usr/local/lib/obsstack/vzdump-hook.d"
VZDUMP_CONF = "/etc/vzdump.conf"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
STATE_DIR = "/var/lib/obsstack/vzdump-hook"
PROM_FILE = "obs_backup.prom"


@dataclass(frozen=True)
class Placement:
    """Where one stack's hook lives on a node, and which storage's jobs it records."""

    hook_file: str
    state_dir: str
    prom_file: str
    storage: str | None = None  # None: every storage (tests of the hook's machinery)

    @classmethod
    def of(cls, scoped: names.StackNames, storage: str | None) -> Placement:
        if scoped.legacy:  # the state and textfile the stack had before stacks were scoped
            return cls(f"{HOOK_DIR}/{scoped.hook_name}.sh", STATE_DIR, PROM_FILE, storage)
        scope = scoped.scope
        return cls(f"{HOOK_DIR}/{scope}.sh", f"{STATE_DIR}-{scope}", f"obs_backup_{scope}.prom", storage)


LEGACY = Placement.of(names.LEGACY, None)

_ENV = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)  # noqa: S701 (shell)

_HOOK = _ENV.from_string(r"""#!/bin/bash
# obsstack vzdump hook for PVE node {{ node }} (generated; edits are overwritten by `pulumi up`).
# Records each guest's backup outcome and the job's outcome, and rewrites
# {{ textfile_dir }}/{{ prom_file }} atomically (temp file + rename) for node_exporter.
# It must never make a backup fail: every path exits 0. Run by the dispatcher {{ hook_path }}.

NODE="{{ node }}"
ONLY_STORAGE="{{ storage }}"  # empty: every storage
TEXTFILE_DIR="${OBSSTACK_TEXTFILE_DIR:-{{ textfile_dir }}}"
STATE_DIR="${OBSSTACK_STATE_DIR:-{{ state_dir }}}"
PROM_FILE="$TEXTFILE_DIR/{{ prom_file }}"

log() {
    echo "obsstack-vzdump-hook: $*" >&2
}

# Label values come from vzdump; keep only the characters of a PVE storage id.
label_value() {
    printf '%s' "$1" | tr -c 'A-Za-z0-9_.-' '_'
}

# "<storage> <vmid> <field>" state lives in one small file per guest and storage.
guest_file() {
    printf '%s/guests/%s__%s' "$STATE_DIR" "$(label_value "$1")" "$2"
}

read_field() {
    # read_field FILE KEY -> value of "KEY=value" or nothing
    [ -f "$1" ] || return 0
    sed -n "s/^$2=//p" "$1" | tail -n 1
}

write_fields() {
    # write_fields FILE KEY=VALUE...: replace the file atomically with the merged fields.
    local file="$1" tmp key
    shift
    tmp="$(mktemp "$STATE_DIR/.write.XXXXXX")" || return 1
    if [ -f "$file" ]; then
        cp "$file" "$tmp" || return 1
    fi
    for pair in "$@"; do
        key="${pair%%=*}"
        sed -i "/^$key=/d" "$tmp" || return 1
        printf '%s\n' "$pair" >>"$tmp" || return 1
    done
    mv -f "$tmp" "$file"
}

emit_family() {
    # emit_family NAME HELP FIELD: one gauge family over every guest state file (one awk pass).
    local name="$1" help="$2" field="$3"
    printf '# HELP %s %s\n# TYPE %s gauge\n' "$name" "$help" "$name"
    set -- "$STATE_DIR"/guests/*__*
    [ -f "$1" ] || return 0
    awk -F= -v metric="$name" -v field="$field" -v node="$NODE" '
        $1 == field { value[FILENAME] = $2 }
        END {
            for (i = 1; i < ARGC; i++) {
                file = ARGV[i]
                if (!(file in value) || value[file] == "") continue
                base = file
                sub(/.*\//, "", base)
                if (!match(base, /__[0-9]+$/)) continue
                vmid = substr(base, RSTART + 2)
                storage = substr(base, 1, RSTART - 1)
                printf "%s{vmid=\"%s\",node=\"%s\",storage=\"%s\"} %s\n", metric, vmid, node, storage, value[file]
            }
        }' "$@"
}

render() {
    local tmp job_end job_status
    tmp="$(mktemp "$TEXTFILE_DIR/.{{ prom_file }}.XXXXXX")" || return 1
    {
        emit_family obs_backup_last_success_timestamp_seconds \
            "Unix time the guest's last successful vzdump backup ended." last_success
        emit_family obs_backup_last_status \
            "Outcome of the guest's last vzdump backup: 1 success, 0 failure or abort." status
        emit_family obs_backup_last_duration_seconds \
            "Duration of the guest's last vzdump backup (success or failure)." duration
        job_end="$(read_field "$STATE_DIR/job" end)"
        job_status="$(read_field "$STATE_DIR/job" status)"
        if [ -n "$job_end" ] && [ -n "$job_status" ]; then
            printf '# HELP obs_backup_job_last_end_timestamp_seconds %s\n' \
                "Unix time the node's last vzdump job ended (job-end or job-abort)."
            printf '# TYPE obs_backup_job_last_end_timestamp_seconds gauge\n'
            printf 'obs_backup_job_last_end_timestamp_seconds{node="%s"} %s\n' "$NODE" "$job_end"
            printf '# HELP obs_backup_job_last_status %s\n' \
                "Outcome of the node's last vzdump job: 1 every guest succeeded, 0 a guest failed or the job aborted."
            printf '# TYPE obs_backup_job_last_status gauge\n'
            printf 'obs_backup_job_last_status{node="%s"} %s\n' "$NODE" "$job_status"
        fi
    } >"$tmp" || { rm -f "$tmp"; return 1; }
    chmod 0644 "$tmp" && mv -f "$tmp" "$PROM_FILE"
}

guest_outcome() {
    # guest_outcome STATUS: backup-end (1) or backup-abort (0) of guest $vmid on $storage.
    local file start now fields failed
    file="$(guest_file "$storage" "$vmid")"
    now="$(date +%s)"
    start="$(read_field "$file" start)"
    fields=("status=$1")
    if [ "$1" = 1 ]; then
        fields+=("last_success=$now")
    fi
    if [ -n "$start" ]; then
        fields+=("duration=$((now - start))")
    fi
    write_fields "$file" "${fields[@]}" || return 1
    if [ "$1" = 0 ]; then
        failed="$(read_field "$STATE_DIR/job" failed)"
        write_fields "$STATE_DIR/job" "failed=$((${failed:-0} + 1))"
    fi
}

main() {
    local phase="${1:-}" vmid="${3:-}" failed
    if [ -n "$ONLY_STORAGE" ] && [ "${STOREID:-}" != "$ONLY_STORAGE" ]; then
        return 0 # another stack's job (or no storage): its own hook records it
    fi
    storage="$(label_value "${STOREID:-dumpdir}")"
    case "$phase" in
        job-start | job-end | job-abort | backup-start | backup-end | backup-abort) ;;
        *) return 0 ;; # job-init, log-end, pre-stop, pre-restart, post-restart, unknown phases
    esac
    mkdir -p "$STATE_DIR/guests" "$TEXTFILE_DIR" || return 1
    exec 9>"$STATE_DIR/.lock" || return 1
    flock -w 30 9 || return 1
    case "$phase" in
        backup-start | backup-end | backup-abort)
            case "$vmid" in
                '' | *[!0-9]*)
                    log "phase $phase without a numeric vmid ('$vmid'): ignored"
                    return 0
                    ;;
            esac
            ;;
    esac
    case "$phase" in
        # vzdump calls job-end even when guests failed (job-abort only when the job itself dies):
        # the job's status counts the guests that failed since job-start.
        job-start)
            write_fields "$STATE_DIR/job" "failed=0"
            return
            ;;
        backup-start) write_fields "$(guest_file "$storage" "$vmid")" "start=$(date +%s)" || return 1 ;;
        backup-end) guest_outcome 1 || return 1 ;;
        backup-abort) guest_outcome 0 || return 1 ;;
        job-end)
            failed="$(read_field "$STATE_DIR/job" failed)"
            write_fields "$STATE_DIR/job" "end=$(date +%s)" "status=$([ "${failed:-0}" = 0 ] && echo 1 || echo 0)" ||
                return 1
            ;;
        job-abort) write_fields "$STATE_DIR/job" "end=$(date +%s)" "status=0" || return 1 ;;
    esac
    render
}

if ! main "$@"; then
    log "could not update $PROM_FILE in phase '${1:-}' (the backup itself is not affected)"
fi
exit 0
""")

_DISPATCHER = _ENV.from_string(r"""#!/bin/bash
# obsstack vzdump hook dispatcher (generated; edits are overwritten by `pulumi up`).
# vzdump.conf has one `script:` line for every job on the node: this runs the hook of every
# obsstack stack in {{ hook_dir }} with vzdump's arguments. It never fails a backup.
HOOK_DIR="${OBSSTACK_HOOK_DIR:-{{ hook_dir }}}"
for hook in "$HOOK_DIR"/*.sh; do
    [ -x "$hook" ] || continue
    "$hook" "$@" || echo "obsstack-vzdump-hook: $hook failed in phase '${1:-}'" >&2
done
exit 0
""")

_WIRE = _ENV.from_string(r"""#!/bin/bash
# Wire the obsstack vzdump hook into {{ vzdump_conf }} on {{ node }} (the dispatcher and this
# stack's hook come through the install path, components/monitoring/install.py). Idempotent; it
# refuses to replace another hook script.
set -euo pipefail
ROOT="${OBSSTACK_ROOT:-}"
HOOK="$ROOT{{ hook_path }}"
CONF="$ROOT{{ vzdump_conf }}"
mkdir -p "$ROOT{{ state_dir }}/guests" "$ROOT{{ textfile_dir }}"
for installed in "$HOOK" "$ROOT{{ hook_file }}"; do
    if [ ! -x "$installed" ]; then
        echo "error: $installed is not installed: its install step must run first." >&2
        exit 1
    fi
done
current="$(sed -n 's/^script:[[:space:]]*//p' "$CONF" 2>/dev/null | tail -n 1)"
if [ -n "$current" ] && [ "$current" != "{{ hook_path }}" ]; then
    echo "error: $CONF already runs the hook script $current; obsstack will not replace it." >&2
    echo "fix: call it from {{ hook_path }}'s phases yourself, or remove that 'script:' line, then re-run." >&2
    exit 1
fi
if [ -z "$current" ]; then
    printf 'script: %s\n' "{{ hook_path }}" >>"$CONF"
    echo "wired into $CONF"
else
    echo "already wired into $CONF"
fi
""")

_UNINSTALL = _ENV.from_string(r"""#!/bin/bash
# Remove this stack's obsstack vzdump hook from {{ node }}; other stacks' hooks stay, and the
# `script:` line with the dispatcher goes only with the last one. Backups are not touched.
set -euo pipefail
ROOT="${OBSSTACK_ROOT:-}"
CONF="$ROOT{{ vzdump_conf }}"
rm -f "$ROOT{{ hook_file }}" "$ROOT{{ textfile_dir }}/{{ prom_file }}"
set -- "$ROOT{{ hook_dir }}"/*.sh # other stacks' hooks (the pattern itself when there is none)
if [ ! -e "$1" ]; then
    if [ -f "$CONF" ]; then
        sed -i '\#^script:[[:space:]]*{{ hook_path }}[[:space:]]*$#d' "$CONF"
    fi
    rm -f "$ROOT{{ hook_path }}"
    echo "vzdump hook removed from {{ node }}; backups and {{ state_dir }} left in place"
else
    echo "vzdump hook of this stack removed from {{ node }}; $# other stack hook(s) still wired"
fi
""")


def _values(node: str, placement: Placement) -> dict[str, str]:
    return {
        "node": node,
        "hook_path": HOOK_PATH,
        "hook_dir": HOOK_DIR,
        "hook_file": placement.hook_file,
        "vzdump_conf": VZDUMP_CONF,
        "textfile_dir": TEXTFILE_DIR,
        "state_dir": placement.state_dir,
        "prom_file": placement.prom_file,
        "storage": placement.storage or "",
    }


def placement(config: StackConfig) -> Placement:
    return Placement.of(config.stack_names, config.backups.storage)


def render_hook(node: str, where: Placement = LEGACY) -> str:
    """One stack's hook script for one PVE node (the node name is its `node` label)."""
    return _HOOK.render(**_values(node, where))


def render_dispatcher() -> str:
    return _DISPATCHER.render(hook_dir=HOOK_DIR)


def wire_script(node: str, where: Placement = LEGACY) -> str:
    """Shell script run over SSH on the node: wires the installed hook into vzdump.conf."""
    return _WIRE.render(**_values(node, where))


def uninstall_script(node: str, where: Placement = LEGACY) -> str:
    return _UNINSTALL.render(**_values(node, where))


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    where = placement(config)
    shipped = []
    for node in config.pve_nodes():
        shipped.append(HostFile(node.name, HOOK_PATH, render_dispatcher(), mode="0755"))
        shipped.append(HostFile(node.name, where.hook_file, render_hook(node.name, where), mode="0755"))
    return shipped

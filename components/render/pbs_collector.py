"""PBS maintenance collector: outcome of garbage collection, prune and verify jobs as metrics.

A oneshot service on the PBS host, run by a timer, reads the task list
(``proxmox-backup-manager task list --all --limit 1000 --output-format json``: ``worker_type``,
``worker_id``, ``endtime``, ``status`` per task) and writes
``obs_pbs_job_last_success_timestamp_seconds`` and ``obs_pbs_job_last_status`` per datastore and
job type into node_exporter's textfile directory, atomically. The CLI lists at most 1000 tasks (see
:data:`TASK_LIMIT`); what the collector has seen is kept in a state file, so a job whose task has
rotated out of that window keeps its last known values.

Tasks are matched to the jobs this program creates (see :func:`maintenance_jobs`) by
``worker_type`` and the ``worker_id`` PBS records for them (proxmox/proxmox-backup, src/server/):

- garbage collection: ``garbage_collection``, ``<datastore>`` (gc_job.rs: ``Some(store.clone())``);
- prune job: ``prunejob``, ``<datastore>`` (prune_job.rs ``do_prune_job``: the worker id is the
  store, or ``<datastore>:<namespace>`` for a job with a non-root ``ns``; the job id is only in the
  task log). The job id is not recorded, so a hand-made root-namespace prune job on the same
  datastore counts too; one with a namespace, and manual prunes (``worker_type=prune``), do not;
- verify job: ``verificationjob``, ``<datastore>:<job id>`` (verify_job.rs:
  ``format!("{}:{}", &verification_job.store, job.jobname())``; only early 1.x versions recorded the
  bare job id, and those have no prune jobs for this program to create).

Only ``status == "OK"`` is a success: warnings and errors count as failures.

It is also the PBS host's usage source: ``pbs_size``, ``pbs_used`` and ``pbs_available`` per
datastore, under the names (and meaning) of natrontech/pbs-exporter's datastore gauges that the
rules and dashboards use. PBS reports a datastore's total, used and available bytes from the
filesystem statistics of the datastore's path (proxmox/proxmox-backup src/api2/status.rs,
``datastore_status``, served as /status/datastore-usage), which is what ``df -B1`` prints for it.
PBS 3.x/4.x serve no Prometheus endpoint of their own (their metric server only pushes to InfluxDB
or Graphite), so there is no ``pbs`` scrape job: node_exporter's textfile collector on the PBS host
carries these series, and the PBS host counts as covered by the ``node`` job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jinja2 import Environment, StrictUndefined

from components import names
from components.config import PbsSection, StackConfig
from components.inventory import Inventory
from components.render import HostFile, sandbox

SCRIPT_PATH = "/usr/local/lib/obsstack/pbs-collector.sh"
UNIT = "obsstack-pbs-collector"
SERVICE_PATH = f"/etc/systemd/system/{UNIT}.service"
TIMER_PATH = f"/etc/systemd/system/{UNIT}.timer"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
STATE_DIR = "/var/lib/obsstack/pbs-collector"
PROM_FILE = "obs_pbs.prom"
# The collector runs as root without any capability, so it cannot write into node_exporter's
# textfile directory (the package's, prometheus:prometheus 0755: root without CAP_DAC_OVERRIDE is
# refused): it writes into an outbox in its own state directory, and ExecStartPost, with full
# privileges ("+", systemd.service(5)), publishes the file atomically (a temporary name the
# textfile collector ignores, since it reads only *.prom, then a rename), as the drill publishes
# its textfiles (render/drill.py). Found by the twin (tests/twin): "mktemp: ... Permission denied",
# so no PBS series ever reached Prometheus.
OUTBOX = f"{STATE_DIR}/textfile"
PUBLISH = (
    f'/bin/sh -c \'d={TEXTFILE_DIR}; [ -d "$$d" ] || exit 0; '
    f'install -m 0644 {OUTBOX}/{PROM_FILE} "$$d/.{PROM_FILE}.tmp" && mv -f "$$d/.{PROM_FILE}.tmp" "$$d/{PROM_FILE}"\''
)
INTERVAL = "5min"
# The most `task list --limit` accepts: proxmox/proxmox-backup, src/bin/proxmox-backup-manager.rs,
# `task_list` (`limit`: minimum 1, maximum 1000, default 50). A larger value fails parameter
# verification and the CLI exits non-zero (proxmox/proxmox-rs, proxmox-router/src/cli/command.rs:
# `std::process::exit(-1)`), so under `set -e` no metrics would ever be written.
TASK_LIMIT = 1000
# The read-only identity the collector lists snapshots with (components/pbs/scripts.py creates it
# on the PBS host, where its secret stays, root-only).
METRICS_USER = "obsstack-metrics@pbs"
METRICS_TOKEN = "collector"
METRICS_TOKEN_ID = f"{METRICS_USER}!{METRICS_TOKEN}"
METRICS_TOKEN_FILE = "/etc/obsstack/pbs-collector/token"


@dataclass(frozen=True)
class MaintenanceJob:
    """A PBS job this program manages: its id, datastore, the task it runs as and the metric label.

    ``worker_type``/``worker_id`` are what PBS records in the task list for the job's tasks.
    """

    job_id: str
    datastore: str
    worker_type: str
    worker_id: str
    job_type: str  # gc | prune | verify (the metric's job_type label)


def prune_job_id(datastore: str, scoped: names.StackNames = names.LEGACY) -> str:
    return scoped.prune_job(datastore)


def verify_job_ids(datastore: str, scoped: names.StackNames = names.LEGACY) -> tuple[str, str]:
    """(new snapshots daily, full re-verify monthly)."""
    return scoped.verify_jobs(datastore)


def maintenance_jobs(pbs: PbsSection, scoped: names.StackNames = names.LEGACY) -> list[MaintenanceJob]:
    # Sources: proxmox/proxmox-backup. worker_type: src/bin/proxmox-backup-proxy.rs (the schedulers'
    # `let worker_type = "garbage_collection" | "prunejob" | "verificationjob"`).
    jobs: list[MaintenanceJob] = []
    for ds in pbs.datastores:
        # src/server/gc_job.rs: WorkerTask::new_thread(&worker_type, Some(store.clone()), ...)
        jobs.append(MaintenanceJob(ds.name, ds.name, "garbage_collection", ds.name, "gc"))
        # src/server/prune_job.rs, do_prune_job: worker_id is `store` for ns None or root, else
        # `{store}:{ns}`, never the job id. components/pbs/scripts.py:prune_job sets no --ns.
        jobs.append(MaintenanceJob(prune_job_id(ds.name, scoped), ds.name, "prunejob", ds.name, "prune"))
        # src/server/verify_job.rs: job_id = format!("{}:{}", &verification_job.store, job.jobname())
        jobs += [
            MaintenanceJob(job_id, ds.name, "verificationjob", f"{ds.name}:{job_id}", "verify")
            for job_id in verify_job_ids(ds.name, scoped)
        ]
    return jobs


_ENV = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)  # noqa: S701 (shell)

_SCRIPT = _ENV.from_string(r"""#!/bin/bash
# obsstack PBS maintenance collector (generated; edits are overwritten by `pulumi up`).
# Writes {{ textfile_dir }}/{{ prom_file }} atomically from the PBS task list.
set -euo pipefail

TEXTFILE_DIR="${OBSSTACK_TEXTFILE_DIR:-{{ textfile_dir }}}"
STATE_DIR="${OBSSTACK_STATE_DIR:-{{ state_dir }}}"
STATE="$STATE_DIR/state.json"

# job id, datastore, task worker type and worker id (as PBS records them), job_type label
JOBS='{{ jobs_json }}'
# datastore name, path, and the mount point its disk must be mounted at (null: none of its own)
DATASTORES='{{ datastores_json }}'
ROOT="${OBSSTACK_DATASTORE_ROOT:-}"
TOKEN_FILE="${OBSSTACK_TOKEN_FILE:-{{ token_file }}}"

mkdir -p "$STATE_DIR" "$TEXTFILE_DIR"
tasks="$(mktemp "$STATE_DIR/.tasks.XXXXXX")"
state_tmp="$(mktemp "$STATE_DIR/.state.XXXXXX")"
prom_tmp="$(mktemp "$TEXTFILE_DIR/.{{ prom_file }}.XXXXXX")"
trap 'rm -f "$tasks" "$state_tmp" "$prom_tmp"' EXIT

proxmox-backup-manager task list --all --limit {{ task_limit }} --output-format json >"$tasks"

# The datastores whose disk is there: one with a disk of its own (mounted_at) that is not mounted
# has neither usage nor snapshots to report (the root filesystem's numbers would be a lie).
declare -A paths=()
available=()
while IFS=$'\t' read -r name path mounted_at; do
  if [ -n "$mounted_at" ] && ! mountpoint -q "$ROOT$mounted_at"; then continue; fi
  [ -d "$ROOT$path" ] || continue
  paths[$name]=$path
  available+=("$name")
done < <(jq -r '.[] | [.name, .path, (.mounted_at // "")] | @tsv' <<<"$DATASTORES")

# Snapshots of each available datastore's root namespace, listed with the read-only metrics token
# (DatastoreAudit). The secret goes to proxmox-backup-client by PBS_PASSWORD, never on a command line.
snapshots_dir="$(mktemp -d "$STATE_DIR/.snapshots.XXXXXX")"
trap 'rm -rf "$tasks" "$state_tmp" "$prom_tmp" "$snapshots_dir"' EXIT
# pbs_up (natrontech/pbs-exporter's name, read by PbsApiDown): 0 when the API refused a listing
# (down, or the token revoked); the job outcomes and usage above it are still written.
pbs_up=1
if [ -n "${available[*]}" ]; then
  PBS_PASSWORD="$(cat "$TOKEN_FILE")"
  export PBS_PASSWORD PBS_FINGERPRINT={{ fingerprint }}
  for name in "${available[@]}"; do
    if ! proxmox-backup-client snapshot list --output-format json \
      --repository "{{ token_id }}@localhost:{{ port }}:$name" >"$snapshots_dir/$name.json"; then
      pbs_up=0
      rm -f "$snapshots_dir/$name.json"
    fi
  done
  unset PBS_PASSWORD
fi

# natrontech/pbs-exporter's snapshot series (the names the rules use): per guest (backup group of
# type vm or ct) its newest backup time, and 1 when the newest one's last verify
# was "ok" (0 when it failed or was not verified yet); vm_name is that snapshot's comment.
snapshot_metrics() {
  echo "# HELP pbs_snapshot_vm_last_timestamp Unix time of this guest's newest snapshot."
  echo "# TYPE pbs_snapshot_vm_last_timestamp gauge"
  echo "# HELP pbs_snapshot_vm_last_verify 1 if this guest's newest snapshot verified ok, else 0."
  echo "# TYPE pbs_snapshot_vm_last_verify gauge"
  local name
  for name in "${available[@]}"; do
    [ -s "$snapshots_dir/$name.json" ] || continue
    jq -r --arg ds "$name" '
      def esc: tostring | gsub("\\\\"; "\\\\") | gsub("\""; "\\\"") | gsub("\n"; " ");
      ([.[] | select(.["backup-type"] == "vm" or .["backup-type"] == "ct")]
       | group_by(.["backup-id"])[]
       | max_by(.["backup-time"]) as $last
       | ("{datastore=\"\($ds)\",namespace=\"\",vm_id=\"\($last["backup-id"] | esc)\","
          + "vm_name=\"\($last.comment // "" | esc)\"}") as $l
       | "pbs_snapshot_vm_last_timestamp\($l) \($last["backup-time"])",
         "pbs_snapshot_vm_last_verify\($l) \(if $last.verification.state == "ok" then 1 else 0 end)")
    ' "$snapshots_dir/$name.json"
  done
}
[ -s "$STATE" ] || echo '{}' >"$STATE"

# state: {"<datastore>/<job_type>": {"last_success": t, "last_end": t, "last_status": 0|1}}
jq --argjson jobs "$JOBS" --slurpfile previous "$STATE" '
  def matches($job): .worker_type == $job.worker_type and .worker_id == $job.worker_id;
  . as $tasks
  | reduce $jobs[] as $job ($previous[0];
      ($job.datastore + "/" + $job.job_type) as $key
      | [$tasks[] | select(matches($job) and (.endtime != null) and (.status != null))] as $done
      | if ($done | length) == 0 then .
        else ($done | max_by(.endtime)) as $last
        | ([$done[] | select(.status == "OK") | .endtime] | max) as $ok
        | .[$key] = (.[$key] // {})
        | if ((.[$key].last_end // 0) <= $last.endtime) then
            .[$key].last_end = $last.endtime
            | .[$key].last_status = (if $last.status == "OK" then 1 else 0 end)
          else . end
        | if $ok != null and ((.[$key].last_success // 0) < $ok) then .[$key].last_success = $ok else . end
        end)
' "$tasks" >"$state_tmp"

{
  echo "# HELP obs_pbs_job_last_success_timestamp_seconds Unix time the last successful PBS job of this type ended."
  echo "# TYPE obs_pbs_job_last_success_timestamp_seconds gauge"
  jq -r 'to_entries | sort_by(.key)[] | select(.value.last_success != null)
    | (.key | split("/")) as $k
    | "obs_pbs_job_last_success_timestamp_seconds{datastore=\"\($k[0])\",job_type=\"\($k[1])\"}"
      + " \(.value.last_success)"' \
    "$state_tmp"
  echo "# HELP obs_pbs_job_last_status Outcome of the last PBS job of this type: 1 OK, 0 warnings or error."
  echo "# TYPE obs_pbs_job_last_status gauge"
  jq -r 'to_entries | sort_by(.key)[] | select(.value.last_status != null)
    | (.key | split("/")) as $k
    | "obs_pbs_job_last_status{datastore=\"\($k[0])\",job_type=\"\($k[1])\"} \(.value.last_status)"' \
    "$state_tmp"
  # Datastore usage as PBS reports it: the statfs of the datastore's base path. A datastore whose
  # own disk is not mounted has no usage to report (the root filesystem's would be a lie).
  echo "# HELP pbs_size Size of the datastore's filesystem in bytes."
  echo "# TYPE pbs_size gauge"
  echo "# HELP pbs_used Used bytes of the datastore's filesystem."
  echo "# TYPE pbs_used gauge"
  echo "# HELP pbs_available Bytes still available to the datastore."
  echo "# TYPE pbs_available gauge"
  for name in "${available[@]}"; do
    read -r size used avail < <(df -B1 --output=size,used,avail "$ROOT${paths[$name]}" | tail -n 1)
    echo "pbs_size{datastore=\"$name\"} $size"
    echo "pbs_used{datastore=\"$name\"} $used"
    echo "pbs_available{datastore=\"$name\"} $avail"
  done
  snapshot_metrics
  echo "# HELP pbs_up 1 if every datastore's snapshots could be listed through the PBS API, else 0."
  echo "# TYPE pbs_up gauge"
  echo "pbs_up $pbs_up"
} >"$prom_tmp"

chmod 0644 "$prom_tmp"
mv -f "$state_tmp" "$STATE"
mv -f "$prom_tmp" "$TEXTFILE_DIR/{{ prom_file }}"
""")

_SERVICE = _ENV.from_string("""[Unit]
Description=obsstack: PBS garbage collection, prune and verify outcomes for node_exporter
After=proxmox-backup-proxy.service

[Service]
Type=oneshot
# proxmox-backup-client keeps its caches under $HOME; /root is hidden (ProtectHome). The script
# writes its textfile into the outbox (see ExecStartPost).
Environment=HOME={{ state_dir }} OBSSTACK_TEXTFILE_DIR={{ outbox }}
ExecStart={{ script_path }}
# Published into node_exporter's textfile directory (made by the node exporter agent on this host)
# with full privileges: the collector itself cannot write there (see OUTBOX).
ExecStartPost=+{{ publish }}
# Root (proxmox-backup-manager reads PBS's root-only configuration and task logs), without any
# capability, writing only its state directory; the CLI reaches the local API over loopback.
StateDirectory=obsstack/pbs-collector
{{ sandbox }}""")

_TIMER = _ENV.from_string("""[Unit]
Description=obsstack: collect PBS maintenance job outcomes every {{ interval }}

[Timer]
OnBootSec=2min
OnUnitActiveSec={{ interval }}
AccuracySec=30s
Persistent=true

[Install]
WantedBy=timers.target
""")

_PREREQUISITES = """#!/bin/bash
# What the collector needs beyond PBS itself; its files come through the install path
# (components/monitoring/install.py: validated, swapped, timers enabled).
set -euo pipefail
if ! command -v jq >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends jq
fi
echo "pbs collector prerequisites in place"
"""

_UNINSTALL = _ENV.from_string(r"""#!/bin/bash
# Remove the obsstack PBS collector. Datastores and backups are not touched.
set -euo pipefail
ROOT="${OBSSTACK_ROOT:-}"
if [ -z "$ROOT" ]; then
    systemctl disable --now {{ unit }}.timer || true
fi
rm -f "$ROOT{{ timer_path }}" "$ROOT{{ service_path }}" "$ROOT{{ script_path }}"
rm -f "$ROOT{{ textfile_dir }}/{{ prom_file }}"
if [ -z "$ROOT" ]; then
    systemctl daemon-reload
fi
echo "pbs collector removed; datastores, backups and {{ state_dir }} left in place"
""")


def _values() -> dict[str, str]:
    return {
        "script_path": SCRIPT_PATH,
        "service_path": SERVICE_PATH,
        "timer_path": TIMER_PATH,
        "unit": UNIT,
        "textfile_dir": TEXTFILE_DIR,
        "state_dir": STATE_DIR,
        "prom_file": PROM_FILE,
        "interval": INTERVAL,
    }


def render_script(pbs: PbsSection, scoped: names.StackNames = names.LEGACY) -> str:
    jobs = [
        {
            "job_id": j.job_id,
            "datastore": j.datastore,
            "worker_type": j.worker_type,
            "worker_id": j.worker_id,
            "job_type": j.job_type,
        }
        for j in maintenance_jobs(pbs, scoped)
    ]
    stores = [{"name": ds.name, "path": ds.path, "mounted_at": ds.mounted_at} for ds in pbs.datastores]
    token = {"token_file": METRICS_TOKEN_FILE, "token_id": METRICS_TOKEN_ID, "fingerprint": pbs.fingerprint}
    # Datastore names and job ids are [a-z0-9-], paths [A-Za-z0-9._/-] (config validation): safe
    # inside single quotes.
    return _SCRIPT.render(
        jobs_json=json.dumps(jobs, separators=(",", ":")),
        datastores_json=json.dumps(stores, separators=(",", ":")),
        task_limit=TASK_LIMIT,
        port=pbs.port,
        **token,
        **_values(),
    )


SANDBOX = sandbox.Sandbox(dynamic_user=False, network=True, writable=(STATE_DIR,))


def render_service() -> str:
    return _SERVICE.render(sandbox=SANDBOX.text().rstrip("\n"), outbox=OUTBOX, publish=PUBLISH, **_values())


def render_timer() -> str:
    return _TIMER.render(**_values())


def files(config: StackConfig, inventory: Inventory) -> list[HostFile]:
    host = config.pbs.host
    return [
        HostFile(host, SCRIPT_PATH, render_script(config.pbs, config.stack_names), mode="0755"),
        HostFile(host, SERVICE_PATH, render_service()),
        HostFile(host, TIMER_PATH, render_timer()),
    ]


def prerequisites_script() -> str:
    return _PREREQUISITES


def uninstall_script() -> str:
    return _UNINSTALL.render(**_values())

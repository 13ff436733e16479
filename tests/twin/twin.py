"""The twin: boot the hosts of tests/twin/stack.py in their namespaces and provision them.

Pulumi's engine cannot run the stack here (its command and Proxmox providers cannot be fetched),
so the twin runs the same install scripts the components send, through the same steps
(components/monitoring/install.py: packages, layout, staged files, staged secrets, one apply per
service) and in the program's order (__main__.py): the PBS host and its collector, the PVE node's
backup hook, then the monitoring hosts, then the agents on every managed host (an LXC guest's by
`pct exec` on its node, as HostAgents reaches it). Steps marked ``TWIN-ONLY`` stand in for the
real systems: the fake PVE API and a `pct` on the PVE node, the PBS CLIs on the PBS host, and
the tokens the Proxmox provider and PBS would create.

Shortened timings (stated, as the issue allows): scrape and evaluation every 3s instead of 15s;
every rule's ``for``, every route's group_wait/group_interval and the PBS collector's timer divided
by SPEEDUP (10), as tools/lab does; repeat intervals stay production-sized, so a second
notification is a bug.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
import yaml

from components.monitoring import scripts, services
from components.render import HostFile, SecretFile, cloud_init, layout, pbs_collector, pve_exporter, vzdump_hook
from tests.conftest import ROOT, load_sections
from tests.fixtures import fake_pve
from tests.host.stack import Credentials
from tests.twin import net, stack
from tests.twin.machines import Machines, TwinHost
from tools.lab import scaled
from tools.lab.sink import WebhookSink

SPEEDUP = 10
FAKE_PVE_DIR = "/usr/local/lib/twin"
PBS_STANDIN_DIR = "/var/lib/twin-pbs"
# The exporter's token as the Proxmox provider would create it (components/proxmox/exporter_token.py).
PVE_EXPORTER_SECRET = "5b1f3c2e-8d4a-4e6b-9c7d-2a1b0c9d8e7f"
PCT_KEY = "/root/.ssh/twin-pct"


class ProvisionError(RuntimeError):
    pass


def must(result: subprocess.CompletedProcess[str], what: str) -> str:
    if result.returncode != 0:
        raise ProvisionError(f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def scaled_files(files: list[HostFile]) -> list[HostFile]:
    """Rule ``for``, Alertmanager group timings and the PBS collector's timer divided by SPEEDUP
    (see the module doc)."""
    return [_scaled(f) for f in files]


def _scaled(f: HostFile) -> HostFile:
    if f.path.startswith(layout.RULES_DIR + "/"):
        doc = yaml.safe_load(f.content) or {}
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                if "for" in rule:
                    rule["for"] = scaled(rule["for"], SPEEDUP)
        content = yaml.safe_dump(doc, sort_keys=False)
    elif f.path == f"{layout.PROMETHEUS_DIR}/alertmanager.yml":
        doc = yaml.safe_load(f.content)
        _scale_route(doc["route"])
        content = yaml.safe_dump(doc, sort_keys=False)
    elif f.path == pbs_collector.TIMER_PATH:
        content = re.sub(
            r"^(OnBootSec|OnUnitActiveSec|AccuracySec)=(\S+)$",
            lambda m: f"{m[1]}={scaled(_systemd_span(m[2]), SPEEDUP)}",
            f.content,
            flags=re.MULTILINE,
        )
    else:
        return f
    return replace(f, content=content)


def _systemd_span(span: str) -> str:
    """systemd's `5min`/`2min`/`30s` as Prometheus' `5m`/`2m`/`30s` (what tools.lab.scaled reads)."""
    return span.replace("min", "m")


def _scale_route(route: dict[str, Any]) -> None:
    for key in ("group_wait", "group_interval"):
        if key in route:
            route[key] = scaled(route[key], SPEEDUP)
    for child in route.get("routes", []):
        _scale_route(child)


@dataclass
class Twin:
    lan: net.Lan = field(default_factory=net.Lan)
    machines: Machines = field(default_factory=lambda: Machines(list(stack.HOSTS)))
    proxy: net.AptProxy | None = None
    sink: WebhookSink | None = None
    stack: stack.TwinStack | None = None
    creds: Credentials | None = None
    timings: dict[str, float] = field(default_factory=dict)
    installed_at: float = 0.0

    # -- up and down -----------------------------------------------------------------------------
    def create(self) -> Twin:
        self.lan.create()
        for spec in stack.HOSTS:
            self.lan.attach(spec.name, spec.address)
        self.lan.attach("sink", stack.SINK_ADDRESS)
        self.proxy = net.AptProxy().start()
        with net.inside(f"{net.PREFIX}sink"):
            self.sink = WebhookSink(stack.SINK_ADDRESS, stack.SINK_PORT)
        self.sink.start()
        raw = stack.sections(load_sections())
        raw["monitoring"]["apt_proxy"] = self.proxy.url
        built = stack.TwinStack.build(raw)
        built.files = scaled_files(built.files)
        self.stack = built
        self.creds = Credentials.create("twin", tuple(h.address for h in stack.HOSTS))
        self.machines.create(extra_cas=(self.creds.ca_cert,))
        for host in self.machines.hosts.values():
            (host.root / "etc/apt/apt.conf.d/80twin-proxy").write_text(f'Acquire::http::Proxy "{self.proxy.url}";\n')
        started = time.monotonic()
        self.machines.boot_all()
        self.timings["boot"] = time.monotonic() - started
        return self

    def destroy(self) -> None:
        try:
            self.machines.destroy()
        finally:
            if self.sink is not None:
                self.sink.stop()
            if self.proxy is not None:
                self.proxy.stop()
            self.lan.destroy()

    def restart(self) -> None:
        """Power every host off (clean shutdown, data disks unmounted) and boot them again."""
        self.machines.power_off_all()
        self.machines.boot_all()

    def host(self, name: str) -> TwinHost:
        return self.machines[name]

    # -- provisioning ----------------------------------------------------------------------------
    def provision(self) -> None:
        started = time.monotonic()
        steps = {
            "pbs-standin": self._pbs_standin,
            "pbs-collector": self._pbs_collector,
            "fake-pve-api": self._fake_pve_api,
            "pct-standin": self._pct_standin,
            "vzdump-hook": self._vzdump_hook,
            "data-disk": self._data_disk,
            "monitoring": self._monitoring,
            "agents": self._agents,
        }
        for phase in stack.INSTALL_PHASES:
            self._parallel({host: [steps[name] for name in names] for host, names in phase.items()})
        self.installed_at = time.time()
        self.timings["provision"] = time.monotonic() - started

    @staticmethod
    def _parallel(steps: dict[str, list[Callable[[str], None]]]) -> None:
        """Each host's steps in order, the hosts in parallel (re-raises the first failure)."""

        def run_all(host: str) -> None:
            for step in steps[host]:
                step(host)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(steps)) as pool:
            for future in concurrent.futures.as_completed([pool.submit(run_all, host) for host in steps]):
                future.result()

    def _reach(self, name: str) -> tuple[TwinHost, int | None]:
        """The host SSH reaches and the container to `pct exec` into (components/monitoring/agents.py,
        ``reach``): an LXC guest's scripts run on its PVE node."""
        assert self.stack is not None
        asset = self.stack.config.inventory.by_name().get(name)
        if asset is not None and asset.kind == "lxc":
            return self.host(str(asset.node)), asset.vmid
        return self.host(name), None

    def run(self, name: str, script: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        host, container = self._reach(name)
        return host.ssh(scripts.as_root(script, host.user, container), stdin=stdin)

    def install_services(self, name: str, only: tuple[str, ...], paths: tuple[str, ...] | None = None) -> None:
        """What components/monitoring/install.py declares for one install target, with the same
        scripts in the same order: packages -> layout -> stage files -> stage secrets -> apply each."""
        assert self.stack is not None
        config = self.stack.config
        files = [f for f in self.stack.files_of(name) if paths is None or f.path in paths]
        secrets = [s for s in self.stack.secrets_of(name) if paths is None or s.path in paths]
        target = f"{name}-{'-'.join(only)}"
        specs = [
            replace(s, units_manifest=scripts.units_manifest(target)) if s.name == "files" else s
            for s in services.specs(config, stack.address(name), files, secrets, only=only)
        ]
        pkgs = services.packages(config, specs)
        if pkgs:
            units = {s.package: s.unit for s in specs if s.package and s.unit}
            script = scripts.packages_script(
                pkgs, config.monitoring.apt_proxy, None, units, services.release_packages(config, specs)
            )
            must(self.run(name, script), f"{name}: packages")
        layout_script = scripts.layout_script(
            services.directories(specs), self._reach(name)[0].user, scripts.staging_dirs(specs),
            services.group_members(specs),
        )  # fmt: skip
        must(self.run(name, layout_script), f"{name}: layout")
        owned = {m.path for spec in specs for m in spec.files}
        plain = {f.path: f.content for f in files if f.path in owned}
        if plain:
            payload = scripts.stage_payload(plain)
            must(self.run(name, scripts.stage_script(secret=False), payload), f"{name}: stage files")
        secret = {s.path: self._resolve(s) for s in secrets if s.path in owned}
        if secret:
            payload = scripts.stage_payload(secret)
            must(self.run(name, scripts.stage_script(secret=True), payload), f"{name}: stage secrets")
        for spec in specs:
            must(self.run(name, scripts.apply_script(spec)), f"{name}: apply {spec.name}")

    def _resolve(self, secret: SecretFile) -> str:
        """A secret file's content, as components/monitoring/host.py's resolver builds it."""
        assert self.creds is not None
        if secret.source == pve_exporter.TOKEN_SOURCE:
            return pve_exporter.token_env(PVE_EXPORTER_SECRET)
        return self.creds.resolve(secret.source)

    def _data_disk(self, name: str) -> None:
        """cloud-init's data-disk commands (components/render/cloud_init.py), run once at first
        boot; the disk itself is a loop-mounted ext4 image at the data mount."""
        for command in cloud_init.data_disk(stack.DATA_MOUNT)["runcmd"]:
            must(self.host(name).root_ssh(shlex.join(command)), f"{name}: data disk")

    def _monitoring(self, name: str) -> None:
        self.install_services(name, stack.MONITORING_SERVICES)

    def _agents(self, name: str) -> None:
        self.install_services(name, stack.AGENT_SERVICES)

    def _apt(self, host: TwinHost, *packages: str) -> None:
        command = f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {' '.join(packages)}"
        must(host.root_ssh(f"(apt-get update -q || true) >/dev/null && {command}"), f"{host.name}: apt {packages}")

    def _put(self, host: TwinHost, path: str, content: str, mode: str = "0644") -> None:
        script = f"install -d {shlex.quote(str(Path(path).parent))} && cat >{shlex.quote(path)} && chmod {mode} {path}"
        must(host.ssh(scripts.as_root(script, host.user), stdin=content), f"{host.name}: write {path}")

    def _unit(self, host: TwinHost, name: str, body: str) -> None:
        self._put(host, f"/etc/systemd/system/{name}.service", body)
        must(host.root_ssh(f"systemctl daemon-reload && systemctl enable --now {name}"), f"{host.name}: {name}")

    # TWIN-ONLY: the PVE node's API (tests/fixtures/fake_pve) on :8006, with the twin CA's cert;
    # it accepts the exporter's token as the Proxmox provider would have created it.
    def _fake_pve_api(self, name: str) -> None:
        assert self.creds is not None and self.stack is not None
        host = self.host(name)
        self._apt(host, "python3")
        source = ROOT / "tests/fixtures/fake_pve"
        for module in ("__init__.py", "serve.py"):
            self._put(host, f"{FAKE_PVE_DIR}/fake_pve/{module}", (source / module).read_text())
        self._put(host, f"{FAKE_PVE_DIR}/cert.pem", self.creds.host_cert)
        self._put(host, f"{FAKE_PVE_DIR}/key.pem", self.creds.host_key, "0600")
        token = f"{self.stack.config.stack_names.exporter_user}!{pve_exporter.TOKEN_NAME}={PVE_EXPORTER_SECRET}"
        guests = " ".join(
            f"--{'lxc' if a.kind == 'lxc' else 'vm'} {a.vmid}:{a.name}"
            for a in self.stack.config.assets
            if a.is_guest and a.vmid
        )
        monitoring = " ".join(f"--vm {m.vmid}:{m.name}" for m in self.stack.inventory.monitoring)
        self._unit(host, "twin-fake-pve", (
            "[Unit]\nDescription=fake Proxmox VE API (twin)\n[Service]\n"
            f"WorkingDirectory={FAKE_PVE_DIR}\nExecStart=/usr/bin/python3 -m fake_pve.serve "
            f"--address {host.address} --cert cert.pem --key key.pem --node {name} {guests} {monitoring} "
            f"--token {shlex.quote(token)}\n"
            "[Install]\nWantedBy=multi-user.target\n"
        ))  # fmt: skip

    # TWIN-ONLY: `pct exec <vmid> -- <command>` on the PVE node runs the command in the container
    # (pve-container src/PVE/CLI/pct.pm, exec: lxc-attach, stdin passed through). The twin's
    # containers are nspawn hosts of their own, so the stand-in enters them over SSH as root.
    def _pct_standin(self, name: str) -> None:
        assert self.stack is not None
        host = self.host(name)
        containers = {
            str(a.vmid): str(a.address) for a in self.stack.config.assets if a.kind == "lxc" and a.node == name
        }
        cases = "\n".join(f"    {vmid}) address={address} ;;" for vmid, address in sorted(containers.items()))
        self._put(host, PCT_KEY, self.host(name).key.read_text(), "0600")
        self._put(host, "/usr/local/sbin/pct", (
            "#!/bin/bash\n# TWIN-ONLY stand-in for pct exec (tests/twin/twin.py)\nset -euo pipefail\n"
            '[ "$1" = exec ] && [ "$3" = -- ] || { echo "pct stand-in: only exec VMID -- CMD" >&2; exit 2; }\n'
            f'case "$2" in\n{cases}\n'
            '    *) echo "Configuration file \'lxc/$2.conf\' does not exist" >&2; exit 2 ;;\nesac\n'
            'shift 3\n'
            f'exec ssh -i {PCT_KEY} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR '
            '-o BatchMode=yes "root@$address" -- "$(printf \'%q \' "$@")"\n'
        ), "0755")  # fmt: skip

    def _vzdump_hook(self, name: str) -> None:
        """The backup plan's vzdump hook (components/proxmox/backup.py): the same plain-file
        install, then wired into vzdump.conf (a PVE node ships one; the stand-in gets PVE's)."""
        assert self.stack is not None
        where = vzdump_hook.placement(self.stack.config)
        self.install_services(name, ("files",), paths=(vzdump_hook.HOOK_PATH, where.hook_file))
        self._put(self.host(name), "/etc/vzdump.conf", "# vzdump default settings\n")
        must(self.run(name, vzdump_hook.wire_script(name, where)), f"{name}: wire the vzdump hook")
        # The twin begins after its first nightly backup (as the PBS snapshots say): without a job
        # end on record BackupHookSilent fires ("or never"), as it would on a node never backed up.
        for guest in self.stack.inventory.protected:
            if guest.node == name:
                self.backup_job(guest.vmid, ok=True)

    def backup_job(self, vmid: int, ok: bool) -> None:
        """Run the hook on pve1 as vzdump runs it for a one-guest job (phases and arguments as in
        components/render/vzdump_hook.py): the guest's backup ends or aborts, then the job ends."""
        assert self.stack is not None
        host, hook = self.host("pve1"), vzdump_hook.HOOK_PATH
        outcome = "backup-end" if ok else "backup-abort"
        phases = ["job-start", f"backup-start snapshot {vmid}", f"{outcome} snapshot {vmid}", "job-end"]
        for phase in phases:
            must(host.root_ssh(f"STOREID={self.stack.config.backups.storage} {hook} {phase}"), f"vzdump hook {phase}")

    # TWIN-ONLY: PBS itself. `proxmox-backup-manager task list` prints the task list PBS would
    # keep (every maintenance job this stack creates finished OK at install time) and
    # `proxmox-backup-client snapshot list` the main datastore's snapshots (each protected guest
    # backed up at install time: the twin begins after a nightly backup), both in the shapes the
    # collector reads (tests/unit/test_pbs_collector.py's fakes, from proxmox/proxmox-backup). The
    # datastore is a directory on the host's own small disk; the metrics token file is what
    # components/pbs/scripts.py's metrics_token leaves.
    def _pbs_standin(self, name: str) -> None:
        assert self.stack is not None
        host, pbs, now = self.host(name), self.stack.config.pbs, int(time.time())
        self._apt(host, "python3")
        main = next(d for d in pbs.datastores if d.name == pbs.datastore)
        must(host.root_ssh(f"mkdir -p {shlex.quote(main.path)}"), "datastore dir")
        tasks = [
            {"upid": f"UPID:{name}:00001234:0000ABCD:00000000:{now:08X}:{j.worker_type}:{j.worker_id}:root@pam:",
             "node": name, "pid": 4660, "pstart": 43981, "starttime": now - 60, "endtime": now, "status": "OK",
             "worker_type": j.worker_type, "worker_id": j.worker_id, "user": "root@pam"}
            for j in pbs_collector.maintenance_jobs(pbs, self.stack.config.stack_names)
        ]  # fmt: skip
        snapshots = [
            {"backup-type": "ct" if g.kind == "lxc" else "vm", "backup-id": str(g.vmid), "backup-time": now,
             "comment": g.name, "verification": {"state": "ok"}}
            for g in self.stack.inventory.protected
        ]  # fmt: skip
        self._put(host, f"{PBS_STANDIN_DIR}/tasks.json", json.dumps(tasks))
        self._put(host, f"{PBS_STANDIN_DIR}/snapshots-{main.name}.json", json.dumps(snapshots))
        self._put(host, pbs_collector.METRICS_TOKEN_FILE, "twin-metrics-secret\n", "0600")
        self._put(host, "/usr/local/sbin/proxmox-backup-manager", (
            "#!/bin/sh\n# TWIN-ONLY stand-in: task list (tests/twin/twin.py)\n"
            f'[ "$1 $2" = "task list" ] || {{ echo "stand-in: only task list" >&2; exit 255; }}\n'
            f"exec cat {PBS_STANDIN_DIR}/tasks.json\n"
        ), "0755")  # fmt: skip
        self._put(host, "/usr/local/sbin/proxmox-backup-client", (
            "#!/bin/sh\n# TWIN-ONLY stand-in: snapshot list --repository <token>@<host>:<port>:<store>\n"
            '[ "$1 $2" = "snapshot list" ] || { echo "stand-in: only snapshot list" >&2; exit 255; }\n'
            '[ -n "${PBS_PASSWORD:-}" ] || { echo "no PBS_PASSWORD" >&2; exit 255; }\n'
            'repo=""; while [ $# -gt 0 ]; do [ "$1" = --repository ] && repo="$2"; shift; done\n'
            f'exec cat "{PBS_STANDIN_DIR}/snapshots-${{repo##*:}}.json"\n'
        ), "0755")  # fmt: skip

    def _pbs_collector(self, name: str) -> None:
        """PbsServer's collector (components/pbs/server.py): its prerequisites, then its files
        through the install path (timer enabled by the plain-files step)."""
        must(self.run(name, pbs_collector.prerequisites_script()), f"{name}: collector prerequisites")
        collector = (pbs_collector.SCRIPT_PATH, pbs_collector.SERVICE_PATH, pbs_collector.TIMER_PATH)
        self.install_services(name, ("files",), paths=collector)

    def pve_power(self, kind: str, vmid: int, action: str) -> None:
        """Power a guest through the PVE API, as `pct shutdown`/`qm start` do."""
        assert self.creds is not None
        with net.inside(net.LAN):
            response = requests.post(
                f"https://{stack.address('pve1')}:8006{fake_pve.API}/nodes/pve1/{kind}/{vmid}/status/{action}",
                headers={"Authorization": f"PVEAPIToken={fake_pve.TOKEN_ID}={fake_pve.TOKEN_SECRET}"},
                verify=str(self.creds.ca_path),
                timeout=10,
            )
        response.raise_for_status()

    # -- observing -------------------------------------------------------------------------------
    def api(self, host: str, service: str, path: str, params: dict[str, str] | None = None) -> Any:
        """GET Prometheus' or Alertmanager's API on a monitoring host, from the LAN (TLS + auth)."""
        assert self.stack is not None and self.creds is not None
        port = getattr(self.stack.config.monitoring.ports, service)
        with net.inside(net.LAN):
            response = requests.get(
                f"https://{stack.address(host)}:{port}{path}",
                params=params,
                auth=(layout.API_USER, self.creds.passwords["api"]),
                verify=str(self.creds.ca_path),
                timeout=10,
            )
        response.raise_for_status()
        return response.json()

    def query(self, host: str, promql: str) -> list[dict[str, Any]]:
        return list(self.api(host, "prometheus", "/api/v1/query", {"query": promql})["data"]["result"])

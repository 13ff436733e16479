"""Three days of synthetic platform history, as OpenMetrics for `promtool tsdb create-blocks-from`.

Every series is written from a few known events (alert episodes, backups, drills, counter steps)
so the report's figures can be checked against what was written. Used by tests/unit/test_report.py
and to regenerate the committed sample in docs/report-sample/.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests

HOUR = 3_600
DAY = 24 * HOUR
GIB = 1024**3
RESOLUTION = 120  # seconds between written samples
DAYS = 3


@dataclass(frozen=True)
class History:
    """What was written: the window and the events, in seconds from its start."""

    start: int
    end: int
    coverage_dip: tuple[int, int] = (24 * HOUR, 26 * HOUR)  # coverage 0.9 inside, 1.0 outside
    target_down: tuple[tuple[int, int], ...] = ((10 * HOUR, 11 * HOUR), (30 * HOUR, 30 * HOUR + 1_800))
    memory_pressure: tuple[int, int] = (50 * HOUR, 53 * HOUR)
    slack_reset_at: int = 48 * HOUR  # Alertmanager restarted: its counters start again from 0
    slack_failed_at: int = 24 * HOUR
    slack_failed: int = 3
    webhook_sent_at: int = 5 * HOUR
    webhook_sent: int = 10
    # acknowledged critical alerts: (instance, acknowledged from, seconds it took); each stays 30 min
    acks: tuple[tuple[str, int, int], ...] = (
        ("10.0.10.53:9100", 10 * HOUR + 120, 120),
        ("10.0.10.53:9100", 30 * HOUR + 300, 300),
        ("10.0.10.121:9100", 40 * HOUR, 600),
        ("10.0.10.121:9100", 60 * HOUR, 180),
    )
    ack_lasts: int = 30 * 60
    oncall_drill_at: int = 20 * HOUR
    nightly: tuple[int, ...] = (22 * HOUR, 46 * HOUR, 70 * HOUR)
    main_used_gib: float = 400.0
    main_growth_gib_per_day: float = 2.0
    main_size_gib: float = 1024.0
    offsite_used_gib: float = 100.0
    offsite_size_gib: float = 2048.0

    def times(self) -> range:
        return range(self.start, self.end + 1, RESOLUTION)

    @property
    def slack_sent(self) -> int:
        """Hourly notifications before the reset (0..47), then 1 at the restart and hourly after it."""
        before = (self.slack_reset_at - 1) // HOUR
        after = (self.end - self.start - self.slack_reset_at) // HOUR
        return before + 1 + after


def aligned_history(now: float | None = None) -> History:
    end = (int(now if now is not None else time.time()) // HOUR) * HOUR - HOUR
    return History(start=end - DAYS * DAY, end=end)


Value = Callable[[int], float | None]  # seconds from start -> value (None: no sample)


def _family(name: str, kind: str, series: list[tuple[str, str, Value]], h: History) -> list[str]:
    lines = [f"# TYPE {name} {kind}"]
    for sample_name, labels, value in series:
        for t in h.times():
            v = value(t - h.start)
            if v is not None:
                lines.append(f"{sample_name}{{{labels}}} {v!r} {t}")
    return lines


def _inside(spans: tuple[tuple[int, int], ...]) -> Value:
    return lambda s: 1.0 if any(a <= s < b for a, b in spans) else None


def _step_after(start: int, at: tuple[tuple[int, float], ...]) -> Value:
    """A gauge holding `start`, then each value from its time on."""

    def value(s: int) -> float:
        current = float(start)
        for when, v in at:
            if s >= when:
                current = v
        return current

    return value


def openmetrics(h: History) -> str:
    s0 = h.start
    guests = {
        # vmid, node: successful night offsets, failed night offsets
        ("110", "pve1"): (h.nightly, ()),
        ("120", "pve2"): ((h.nightly[0], h.nightly[2]), (h.nightly[1],)),
        ("121", "pve2"): ((h.nightly[0],), (h.nightly[1], h.nightly[2])),
    }
    backup_ts, backup_status = [], []
    for (vmid, node), (good, bad) in guests.items():
        labels = f'node="{node}",storage="pbs-main",vmid="{vmid}"'
        backup_ts.append(
            (
                "obs_backup_last_success_timestamp_seconds",
                labels,
                _step_after(s0 - 2 * HOUR, tuple((g, s0 + g) for g in good)),
            )
        )
        outcomes = sorted([(g, 1.0) for g in good] + [(b, 0.0) for b in bad])
        backup_status.append(("obs_backup_last_status", labels, _step_after(1, tuple(outcomes))))

    drills = {
        # target: runs as (offset, status, rto, rpo); the first entry is the state before the window
        "gitea": ((-14 * DAY, 1, 2_000, 40_000), (12 * HOUR, 1, 1_800, 36_000), (60 * HOUR, 1, 2_400, 20_000)),
        "postgres": ((-14 * DAY, 1, 3_000, 30_000), (36 * HOUR, 0, 7_800, 50_000)),
        "nextcloud": ((-14 * DAY, 1, 1_000, 1_000),),
    }
    drill_families: dict[str, list[tuple[str, str, Value]]] = {
        "obs_restore_drill_last_run_timestamp_seconds": [],
        "obs_restore_drill_last_status": [],
        "obs_restore_drill_rto_seconds": [],
        "obs_restore_drill_rpo_seconds": [],
    }
    for target, runs in drills.items():
        first, *later = runs
        for column, name in enumerate(drill_families):
            if column == 0:
                start, changes = s0 + first[0], tuple((r[0], float(s0 + r[0])) for r in later)
            else:
                start, changes = first[column], tuple((r[0], float(r[column])) for r in later)
            drill_families[name].append((name, f'target="{target}"', _step_after(int(start), changes)))

    def slack_sent(s: int) -> float:
        return float(s // HOUR if s < h.slack_reset_at else 1 + (s - h.slack_reset_at) // HOUR)

    def main_used(s: int) -> float:
        return (h.main_used_gib + h.main_growth_gib_per_day * s / DAY) * GIB

    def acked(instance: str) -> Value:
        spans = [(t, seconds) for i, t, seconds in h.acks if i == instance]
        return lambda s: next((float(v) for t, v in spans if t <= s < t + h.ack_lasts), None)

    td = 'alertname="TargetDown",alertstate="firing",asset="dns1",instance="10.0.10.53:9100",job="node"'
    lines: list[str] = []
    lines += _family(
        "obs:scrape_coverage:ratio",
        "gauge",
        [("obs:scrape_coverage:ratio", "", lambda s: 0.9 if h.coverage_dip[0] <= s < h.coverage_dip[1] else 1.0)],
        h,
    )
    lines += _family(
        "ALERTS",
        "gauge",
        [
            ("ALERTS", f'{td},service="dns",severity="critical"', _inside(h.target_down)),
            (
                "ALERTS",
                'alertname="HostMemoryPressure",alertstate="firing",instance="10.0.10.140:9100",'
                'service="media",severity="warning"',
                _inside((h.memory_pressure,)),
            ),
            ("ALERTS", 'alertname="Watchdog",alertstate="firing",service="meta",severity="none"', lambda s: 1.0),
            (
                "ALERTS",
                'alertname="ServiceProbeFailed",alertstate="pending",service="git",severity="warning"',
                _inside(((5 * HOUR, 5 * HOUR + 60),)),
            ),
        ],
        h,
    )
    lines += _family(
        "alertmanager_notifications",
        "counter",
        [
            ("alertmanager_notifications_total", 'integration="slack"', slack_sent),
            (
                "alertmanager_notifications_total",
                'integration="webhook"',
                _step_after(0, ((h.webhook_sent_at, float(h.webhook_sent)),)),
            ),
            ("alertmanager_notifications_total", 'integration="email"', lambda s: 5.0),
        ],
        h,
    )
    lines += _family(
        "alertmanager_notifications_failed",
        "counter",
        [
            (
                "alertmanager_notifications_failed_total",
                'integration="slack"',
                _step_after(0, ((h.slack_failed_at, float(h.slack_failed)),)),
            ),
            ("alertmanager_notifications_failed_total", 'integration="webhook"', lambda s: 0.0),
        ],
        h,
    )
    lines += _family(
        "obs_alert_ack_seconds",
        "gauge",
        [
            (
                "obs_alert_ack_seconds",
                f'alertname="TargetDown",instance="{instance}",service="{service}"',
                acked(instance),
            )
            for instance, service in (("10.0.10.53:9100", "dns"), ("10.0.10.121:9100", "database"))
        ],
        h,
    )
    lines += _family(
        "obs_oncall_drill_last_success_timestamp_seconds",
        "gauge",
        [
            (
                "obs_oncall_drill_last_success_timestamp_seconds",
                "",
                _step_after(s0 - 10 * DAY, ((h.oncall_drill_at, float(s0 + h.oncall_drill_at)),)),
            )
        ],
        h,
    )
    lines += _family("obs_backup_last_success_timestamp_seconds", "gauge", backup_ts, h)
    lines += _family("obs_backup_last_status", "gauge", backup_status, h)
    for name, series in drill_families.items():
        lines += _family(name, "gauge", series, h)
    lines += _family(
        "pbs_used",
        "gauge",
        [
            ("pbs_used", 'datastore="main"', main_used),
            ("pbs_used", 'datastore="offsite-copy"', lambda s: h.offsite_used_gib * GIB),
        ],
        h,
    )
    lines += _family(
        "pbs_size",
        "gauge",
        [
            ("pbs_size", 'datastore="main"', lambda s: h.main_size_gib * GIB),
            ("pbs_size", 'datastore="offsite-copy"', lambda s: h.offsite_size_gib * GIB),
        ],
        h,
    )
    return "\n".join([*lines, "# EOF", ""])


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the Debian package prometheus (.ci/run does)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prometheus_with(history: History, workdir: Path, basic_auth: tuple[str, str] | None = None) -> Iterator[str]:
    """A real Prometheus on a free 127.0.0.1 port holding the backfilled history, asking for
    basic auth when given (user, password) as the platform's does; stopped after."""
    data = workdir / "data"
    source = workdir / "history.om"
    source.write_text(openmetrics(history))
    subprocess.run(
        [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    web_config = workdir / "web.yml"
    users = {}
    if basic_auth is not None:
        user, password = basic_auth
        users = {user: bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}
    web_config.write_text(json.dumps({"basic_auth_users": users}))
    url = f"http://127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.config.file={web_config}",
            f"--web.listen-address={url.removeprefix('http://')}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/-/ready", auth=basic_auth, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Prometheus did not become ready: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def write_sample(out: Path) -> int:
    """Regenerate the committed sample report: `python -m tests.unit.report_data docs/report-sample`."""
    import tempfile

    from tools.report.__main__ import main

    history = aligned_history(now=1_793_494_800)  # window 2026-10-29 .. 2026-11-01 UTC, stable across runs
    with tempfile.TemporaryDirectory() as tmp, prometheus_with(history, Path(tmp)) as url:
        return main(["--prometheus", url, "--from", str(history.start), "--to", str(history.end), "--out", str(out)])


if __name__ == "__main__":
    import sys

    sys.exit(write_sample(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/report-sample")))

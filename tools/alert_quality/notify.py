"""What Alertmanager notifies, decided by a real Alertmanager running the stack's rendered config.

A scenario's firing alerts per evaluation step (from promtool, see :func:`firing_timeline`) and its
silences are replayed, one distinct state after another, into a real ``prometheus-alertmanager``
with the rendered routes, inhibit rules and time intervals (receivers emptied: nothing leaves the
machine). After each state the API's own view of every alert (``status.inhibitedBy``,
``status.silencedBy``, computed by Alertmanager's inhibitor and silencer for that state) says
which alerts a receiver would get. An alert is notified when it is active (neither inhibited nor
silenced) in some state lasting at least its route's ``group_wait``, at that state's start plus
``group_wait``; an alert routed to the dead-man receiver (Watchdog) is not a notification.

What this does not model: group_interval/repeat_interval (re-notifications of the same alert are
not counted twice) and wall-clock time intervals (the replay's clock is the machine's).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from components import routing
from components.config import StackConfig, duration_seconds
from components.inventory import Inventory
from components.render import alertmanager as am_render
from components.render import prometheus as prom_render
from tools.alert_quality import FiredAlert, ScenarioSilence

BINARY = "prometheus-alertmanager"
LabelSet = tuple[tuple[str, str], ...]


class ReplayError(RuntimeError):
    """Alertmanager could not be started or did not answer (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def relabel(labels: dict[str, str], configs: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Prometheus' alert relabelling (the ``replace`` and ``labeldrop`` actions the rendered
    prometheus.yml uses): source labels joined by ';', the regex anchored, $1 substituted
    (prometheus/prometheus docs/configuration/configuration.md, <relabel_config>)."""
    out = dict(labels)
    for cfg in configs:
        regex = re.compile(f"^(?:{cfg.get('regex', '(.*)')})$")
        action = cfg.get("action", "replace")
        if action == "labeldrop":
            out = {k: v for k, v in out.items() if not regex.match(k)}
        elif action == "replace":
            joined = ";".join(out.get(name, "") for name in cfg.get("source_labels", []))
            match = regex.match(joined)
            if match:
                value = match.expand(cfg.get("replacement", "$1").replace("$", "\\"))
                if value:
                    out[cfg["target_label"]] = value
                else:
                    out.pop(cfg["target_label"], None)
        else:
            raise ReplayError(f"alert_relabel_configs action {action!r} is not replayed")
    return out


def replay_config(config: StackConfig, inventory: Inventory) -> dict[str, Any]:
    """The rendered alertmanager.yml with every receiver left without integrations (a blackhole)."""
    doc = am_render.document(config, inventory)
    doc["global"] = {"resolve_timeout": doc["global"]["resolve_timeout"]}
    doc["receivers"] = [{"name": r["name"]} for r in doc["receivers"]]
    return doc


class Alertmanager:
    """One real Alertmanager on a free 127.0.0.1 port, without clustering, for one replay."""

    def __init__(self, config: StackConfig, inventory: Inventory, binary: str | None = None) -> None:
        found = binary or shutil.which(BINARY)
        if found is None:
            raise ReplayError(f"{BINARY} not found: apt-get install prometheus-alertmanager")
        self.binary = found
        self.config = config
        self.document = replay_config(config, inventory)
        rendered = yaml.safe_load(prom_render.render(config, inventory))
        self.alert_relabel_configs: list[dict[str, Any]] = rendered["alerting"]["alert_relabel_configs"]
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="alert-quality-am-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    def __enter__(self) -> Alertmanager:
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.document, sort_keys=False))
        log = (self.workdir / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ReplayError(f"alertmanager exited: {(self.workdir / 'alertmanager.log').read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if self.session.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise ReplayError("alertmanager not ready after 30s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- API -------------------------------------------------------------------------------------
    def post(self, firing: Sequence[LabelSet], resolved: Sequence[LabelSet]) -> None:
        now = datetime.now(UTC)
        alerts = [
            {"labels": dict(ls), "startsAt": _iso(now - timedelta(seconds=1)), "endsAt": _iso(now + timedelta(hours=1))}
            for ls in firing
        ] + [{"labels": dict(ls), "endsAt": _iso(now - timedelta(seconds=1))} for ls in resolved]
        if alerts:
            self.session.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()

    def silence(self, matchers: tuple[tuple[str, str], ...]) -> str:
        now = datetime.now(UTC)
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers],
            "startsAt": _iso(now - timedelta(seconds=1)),
            "endsAt": _iso(now + timedelta(days=1)),
            "createdBy": "alert-quality",
            "comment": "replayed scenario silence",
        }
        answer = self.session.post(f"{self.url}/api/v2/silences", json=body, timeout=10)
        answer.raise_for_status()
        return str(answer.json()["silenceID"])

    def expire(self, silence_id: str) -> None:
        self.session.delete(f"{self.url}/api/v2/silence/{silence_id}", timeout=10).raise_for_status()

    def active(self, expected: set[LabelSet]) -> set[LabelSet]:
        """Label sets of the alerts Alertmanager would notify now (not inhibited, not silenced).
        Waits until it holds exactly ``expected`` and two reads agree (the inhibitor's view of
        source alerts is updated asynchronously)."""
        previous: set[LabelSet] | None = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alerts = self.session.get(f"{self.url}/api/v2/alerts", timeout=10).json()
            held = {_key(a["labels"]) for a in alerts}
            active = {
                _key(a["labels"]) for a in alerts if not a["status"]["inhibitedBy"] and not a["status"]["silencedBy"]
            }
            if held == expected and active == previous:
                return active
            previous = active if held == expected else None
            time.sleep(0.05)
        raise ReplayError(f"Alertmanager did not settle on {len(expected)} alerts within 10s")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _key(labels: dict[str, str]) -> LabelSet:
    return tuple(sorted(labels.items()))


def _states(
    timeline: Sequence[tuple[float, frozenset[LabelSet]]], silences: Sequence[ScenarioSilence]
) -> list[tuple[float, float, frozenset[LabelSet], frozenset[int]]]:
    """(start, end, firing, active silence indexes) of each run of identical steps; the last run
    lasts one step past the last evaluation."""
    steps = [
        (t, firing, frozenset(j for j, s in enumerate(silences) if s.from_seconds <= t < s.until_seconds))
        for t, firing in timeline
    ]
    runs: list[tuple[float, float, frozenset[LabelSet], frozenset[int]]] = []
    for t, firing, active in steps:
        if runs and runs[-1][2:] == (firing, active):
            continue
        if runs:
            runs[-1] = (runs[-1][0], t, *runs[-1][2:])
        runs.append((t, t, firing, active))
    if runs:
        step = steps[-1][0] - steps[-2][0] if len(steps) > 1 else 0.0
        runs[-1] = (runs[-1][0], steps[-1][0] + step, *runs[-1][2:])
    return runs


def group_wait_seconds(config: StackConfig, labels: dict[str, str]) -> int | None:
    """The route's group_wait, or None when the route is the dead-man's (no notification)."""
    for route in routing.routes(config.alerting):
        if route.matches(labels):
            if route.name == "watchdog":
                return None
            return duration_seconds(route.group_wait)
    return duration_seconds(config.alerting.routing.warning.group_wait)


def notifications(
    am: Alertmanager,
    timeline: Sequence[tuple[float, frozenset[LabelSet]]],
    silences: Sequence[ScenarioSilence] = (),
) -> list[FiredAlert]:
    """Replay the timeline into ``am``; every alert a receiver gets, with when it gets it."""
    first: dict[LabelSet, float] = {}
    active_since: dict[LabelSet, float] = {}
    posted: set[LabelSet] = set()
    silence_ids: dict[int, str] = {}

    def notify_if_waited(labels: LabelSet, now: float) -> None:
        wait = group_wait_seconds(am.config, dict(labels))
        since = active_since[labels]
        if wait is not None and labels not in first and now - since >= wait:
            first[labels] = since + wait

    # What Prometheus sends (alert_relabel_configs applied) -> the alert as the rules fired it.
    as_fired = {_key(relabel(dict(ls), am.alert_relabel_configs)): ls for _, firing in timeline for ls in firing}
    timeline = [(t, frozenset(_key(relabel(dict(ls), am.alert_relabel_configs)) for ls in f)) for t, f in timeline]
    try:
        for start, end, firing, active_silences in _states(timeline, silences):
            for j in sorted(active_silences - silence_ids.keys()):
                silence_ids[j] = am.silence(silences[j].matchers)
            for j in sorted(silence_ids.keys() - active_silences):
                am.expire(silence_ids.pop(j))
            am.post(sorted(firing), sorted(posted - firing))
            posted = set(firing)
            active = am.active(set(firing))
            for labels in set(active_since) - active:
                notify_if_waited(labels, start)
                del active_since[labels]
            for labels in active:
                active_since.setdefault(labels, start)
                notify_if_waited(labels, end)
    finally:
        am.post([], sorted(posted))
        for silence_id in silence_ids.values():
            am.expire(silence_id)
        am.active(set())
    out = []
    for labels, at in first.items():
        named = dict(as_fired[labels])
        out.append(FiredAlert(named.pop("alertname"), named, at))
    return sorted(out, key=lambda n: (n.alertname, sorted(n.labels.items())))
